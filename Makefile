# Two commands on a fresh machine with Python 3.11 and pip: `make run`, `make test`.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
CORES ?= 2
# torch and scikit-learn each bring an OpenMP runtime; spinning idle threads fight
# for the cores (see benchmarks/omp_wait_policy.py). Passive waiting everywhere.
export OMP_WAIT_POLICY := PASSIVE
export PIP_DISABLE_PIP_VERSION_CHECK := 1

# The stage folders DVC hashes as inputs. `dvc repro --dry` hashes them even in a dry run
# (treeverse/dvc#9021), so the set-up creates them empty; tests check the list against dvc.yaml.
STAGE_FOLDERS := data/raw data/prepared $(addprefix results/,features analytic basis_reference \
	basis_train basis_joint spectralnet specnet2 diffusionnet nmce_tcr nmce_cluster nmce_finetune \
	evaluate compare report)

.PHONY: run run-rotating run-joint test test-cluster lint format venv stage-folders report pull clean dvc-repro bench help

help:
	@echo "make run          - create $(VENV) if missing, install, run the default pipeline"
	@echo "make test         - same set-up, then the test suite"
	@echo "make report       - make run, then results/report.html (snakemake --report)"
	@echo "make pull         - dvc pull, then snakemake --touch (the pulled results count as up to date)"
	@echo "make test-cluster - a one-node SLURM on this machine (root, Debian), the pipeline through it"
	@echo "make lint         - ruff and snakefmt checks"
	@echo "make bench        - benchmarks (printed tables; not part of the tests)"

# A new venv takes about 6 GiB (torch 2.14.1's wheel for x86_64 is a CUDA build): say so up front
# rather than as pip's "No space left on device" halfway through.
VENV_MIN_FREE_GIB ?= 7

$(BIN)/.installed: pyproject.toml envs/constraints.txt
	@test -x $(BIN)/python || { \
		dir="$(abspath $(VENV)/..)"; while [ ! -d "$$dir" ]; do dir=$$(dirname "$$dir"); done; \
		free_kib=$$(df -Pk "$$dir" | awk 'NR == 2 {print $$4}'); \
		if [ -n "$$free_kib" ] && [ "$$free_kib" -lt $$(( $(VENV_MIN_FREE_GIB) * 1048576 )) ]; then \
			echo "make: a new $(VENV) needs about $(VENV_MIN_FREE_GIB) GiB free on this disk;" \
				"$$(( free_kib / 1048576 )) GiB free (df -h $$dir): free some space, or set" \
				"VENV= to a folder on a roomier disk" >&2; \
			exit 1; \
		fi; \
		$(PYTHON) -m venv $(VENV); }
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -c envs/constraints.txt -e ".[pipeline,dev]"
	@touch $@

# Order-only: an existing folder is up to date whatever its time (so `make -q venv` can say 0).
venv: $(BIN)/.installed | $(STAGE_FOLDERS)

stage-folders: | $(STAGE_FOLDERS)

$(STAGE_FOLDERS):
	@mkdir -p $@

run: venv
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/snakemake --cores $(CORES)
	@echo
	@echo "Results: $(CURDIR)/results/<stage>/<dataset>/<features>/  (metrics.json, embedding.npz)"
	@echo "Report:  $(CURDIR)/results/report/report.md  (table: results/report/metrics.csv, figures: results/report/figures/)"
	@echo "HTML:    make report  (results/report.html)"

# BASiS Sec. 5.3 (Fig. 5): the diffusion map of a rotating object (configs/rotating.yaml)
run-rotating: venv
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/snakemake --cores $(CORES) --configfile configs/rotating.yaml

# BASiS Algorithm 2 (Figs. 6, 8) with the paper's settings on digits (configs/joint-digits.yaml)
run-joint: venv
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/snakemake --cores $(CORES) --configfile configs/joint-digits.yaml

report: venv
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/snakemake --cores $(CORES)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/snakemake --cores $(CORES) --report results/report.html
	@echo "Report: $(CURDIR)/results/report.html"

test: venv
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -q -p no:cacheprovider

# Installs Debian's SLURM and munge (root), starts a one-node cluster, runs the tiny pipeline
# through `--executor slurm` and the cluster-generic profile's sbatch template, compares the
# results with a local run's, prints the SLURM job ids and stops the daemons.
test-cluster: venv
	PATH="$(CURDIR)/$(BIN):$$PATH" bash tests/cluster/slurm.sh run \
		$(BIN)/python -m pytest -q -p no:cacheprovider -s -rs tests/test_cluster_slurm.py

lint: venv
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/snakefmt --check Snakefile workflow/rules

format: venv
	$(BIN)/ruff check --fix src tests benchmarks
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/snakefmt Snakefile workflow/rules

dvc-repro: venv
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro

# After `dvc pull` (or `dvc checkout`) the files have new modification times in no particular
# order and Snakemake has no records of them; Snakemake 9 compares modification times whatever
# its rerun triggers, so `--touch` marks them up to date in pipeline order and records them
# (it runs no job). DVC's own stages do not need this (profiles/dvc).
pull: venv
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc pull
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/snakemake --touch

bench: venv
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python benchmarks/run_all.py

clean:
	rm -rf results data/prepared data/raw .snakemake
