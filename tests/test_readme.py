"""The README runs: its Python blocks and offline shell commands, and every link resolves.

* Python blocks run in a scratch folder with ``x_train`` / ``x_test`` (1,500 / 297 scikit-learn
  digits) defined, ``n_iter`` capped at 20 (the small-data switch).
* Shell commands (a fenced block whose lines start with a known command) run in pipeline
  order in a scratch project holding the repository's workflow, config and presets:
  ``basis-nmce`` for real, ``snakemake`` as a dry run (``-n``), ``$ command`` transcripts
  compared with their output. :data:`SKIPPED` says why the others do not run.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from basis_nmce.stages.params import STAGES

from .helpers import ROOT, env, make_project

README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)
# First words that make a fenced block a shell block (a block with none is a diagram).
SHELL_WORDS = {"make", "snakemake", "dvc", "basis-nmce", "python", "pip", "git", "cd", "bash"}
# Commands that do not run here, by prefix, with the reason (shown as the skip reason).
SKIPPED = {
    "make run": "the whole default pipeline (minutes on 2 cores); tests/test_pipeline.py runs "
    "the same Snakefile on a tiny config",
    "make test": "the test suite itself",
    "make bench": "benchmarks take minutes and are never part of the tests",
    "dvc repro --dry": "needs a git + DVC repository; tests/test_dvc.py runs it in a fresh clone "
    "after make stage-folders",
    "dvc repro": "runs stages (minutes for the default config); tests/test_dvc.py runs dvc "
    "repro, dvc repro <stage> and dvc repro -s <stage> on a tiny config",
    "dvc exp run": "runs the whole pipeline as an experiment (minutes)",
    "dvc metrics show": "reads the metrics of a finished run",
    "dvc status": "needs a git + DVC repository with a run; tests/test_dvc.py checks it clean "
    "after dvc repro",
    "dvc plots show": "reads a finished run; tests/test_dvc.py runs it on the tiny one",
    "dvc remote add": "a remote round trip: tests/test_dvc.py pushes to a local remote and pulls "
    "into a fresh clone",
    "dvc push": "a remote round trip: tests/test_dvc.py",
    "git clone": "a remote round trip: tests/test_dvc.py",
    "make pull": "needs a DVC remote holding a run: tests/test_dvc.py runs dvc pull and "
    "snakemake --touch",
}
# the Python blocks' small-data switch: BASiS iterations, NMCE stage steps
SMALL_DATA = {r"\bn_iter=\d+": "n_iter=20", r'"steps": \d+': '"steps": 10'}


@dataclass
class Command:
    text: str  # one logical line, continuations joined, comment dropped
    line: int  # where it starts in README.md
    prelude: list[str] = field(default_factory=list)  # VAR=value lines before it in its block
    output: list[str] | None = None  # a transcript's expected output

    @property
    def words(self) -> list[str]:
        return shlex.split(self.text)

    @property
    def skip(self) -> str | None:
        return next((why for p, why in SKIPPED.items() if self.text.startswith(p)), None)

    def order(self) -> tuple[int, int]:
        """basis-nmce commands first, in pipeline order; then the rest in README order."""
        w = self.words
        if w[0] == "basis-nmce":
            return (0, STAGES.index(w[1]) if w[1] in STAGES else -1)
        return (1, 0)


def _blocks() -> list[tuple[str, str, int]]:
    text = README.read_text()
    return [(m[1], m[2], text[: m.start()].count("\n") + 2) for m in FENCE.finditer(text)]


def _first_word(line: str) -> str:
    return line.lstrip("$ ").split(" ", 1)[0]


def _is_shell(lang: str, body: str) -> bool:
    lines = [ln for ln in body.splitlines() if ln.strip() and not ln.startswith("#")]
    return lang in ("", "sh", "bash", "console") and any(
        _first_word(ln) in SHELL_WORDS or re.match(r"[A-Z_]+=", ln) for ln in lines
    )


def _logical_lines(body: str, start: int) -> list[tuple[int, str]]:
    """``(README line, text)`` of each line, ``\\`` continuations joined."""
    out: list[tuple[int, str]] = []
    pending: tuple[int, str] | None = None
    for i, raw in enumerate(body.splitlines()):
        line, text = pending if pending else (start + i, "")
        text = f"{text} {raw.strip()}" if text else raw
        if raw.endswith("\\"):
            pending = (line, text[:-1].rstrip())
            continue
        pending = None
        out.append((line, text))
    return out


def shell_commands() -> list[Command]:
    commands: list[Command] = []
    for lang, body, start in _blocks():
        if not _is_shell(lang, body):
            continue
        prelude: list[str] = []
        lines = _logical_lines(body, start)
        transcript_output: set[int] = set()
        for i, (line, raw) in enumerate(lines):
            text = " ".join(re.sub(r"\s+#\s.*$", "", raw).split())
            if not text or text.startswith("#") or i in transcript_output:
                continue
            if re.match(r"[A-Z_]+=", text):
                prelude.append(text)
            elif text.startswith("$ "):
                out = []
                for j in range(i + 1, len(lines)):
                    if not lines[j][1].strip() or lines[j][1].startswith("$ "):
                        break
                    out.append(lines[j][1].strip())
                    transcript_output.add(j)
                commands.append(Command(text[2:], line, list(prelude), out))
            elif _first_word(text) in SHELL_WORDS:
                commands.append(Command(text, line, list(prelude)))
    return commands


COMMANDS = shell_commands()


def _id(c: Command) -> str:
    return f"L{c.line}:{c.text[:60]}"


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    proj = make_project(tmp_path_factory.mktemp("readme"))
    shutil.copy(ROOT / "config.yaml", proj / "config.yaml")
    shutil.copytree(ROOT / "configs", proj / "configs")
    (proj / "tmp").mkdir()
    return proj


@pytest.fixture(scope="module")
def ran(project) -> dict[str, subprocess.CompletedProcess]:
    """Every runnable command, run once in pipeline order (later ones read earlier outputs)."""
    results = {}
    for c in sorted((c for c in COMMANDS if c.skip is None), key=Command.order):
        text = c.text.replace(" /tmp/", " tmp/")  # keep outputs inside the scratch project
        cwd = project
        if c.words[0] == "snakemake" and "--unlock" not in c.words:
            text += " -n"  # a dry run: the real one takes minutes
        if c.words[:2] == ["make", "lint"]:
            cwd = ROOT  # lints the repository itself
        script = "set -e\n" + "\n".join([*c.prelude, text])
        results[_id(c)] = subprocess.run(
            ["bash", "-c", script], cwd=cwd, env=env(), capture_output=True, text=True, timeout=600
        )
    return results


def test_the_readme_has_commands_of_each_kind():
    words = {c.words[0] for c in COMMANDS}
    assert {"basis-nmce", "snakemake", "make", "dvc"} <= words
    assert any(c.output for c in COMMANDS), "the check-config transcript is no longer found"


@pytest.mark.parametrize("command", COMMANDS, ids=_id)
def test_readme_command(command, ran):
    if command.skip:
        pytest.skip(command.skip)
    if command.words[:2] == ["make", "lint"]:
        up_to_date = subprocess.run(["make", "-q", "venv"], cwd=ROOT, env=env(), check=False)
        if up_to_date.returncode != 0:
            pytest.skip("make's venv target would reinstall the environment first")
    proc = ran[_id(command)]
    if command.output is not None:  # a transcript: same output, line by line
        got = [ln.strip() for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
        assert got == command.output, f"README line {command.line}: {command.text}"
        return
    assert proc.returncode == 0, (
        f"README line {command.line}: {command.text}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )
    assert "Traceback" not in proc.stderr


PYTHON = [(body, line) for lang, body, line in _blocks() if lang == "python"]


@pytest.fixture(scope="module")
def small_data() -> dict[str, np.ndarray]:
    from sklearn.datasets import load_digits

    x = (load_digits().data / 16.0).astype(np.float32)
    order = np.random.default_rng(0).permutation(len(x))
    return {"x_train": x[order[:1500]], "x_test": x[order[1500:]]}


@pytest.mark.parametrize("body, line", PYTHON, ids=[f"L{line}" for _, line in PYTHON])
def test_readme_python_block(body, line, small_data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = body
    for pattern, small in SMALL_DATA.items():
        code = re.sub(pattern, small, code)
    namespace = {"__name__": "readme", **small_data}
    exec(compile(code, f"README.md:{line}", "exec"), namespace)


def test_python_blocks_exist():
    assert PYTHON, "no ```python block found in README.md"


# ------------------------------------------------------------------------------------- links
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
GENERATED = {"report.md", "metrics.md", "results/report/report.md"}  # outputs of a run


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    return {_slug(m[1]) for m in re.finditer(r"^#+ (.*)$", path.read_text(), re.M)}


@pytest.mark.parametrize("doc", [README, *DOCS], ids=lambda p: p.name)
def test_every_link_resolves_inside_the_repository(doc):
    links = LINK.findall(doc.read_text())
    assert doc != README or links, "README.md has no links"
    for target in links:
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        file, _, anchor = target.partition("#")
        path = (doc.parent / file).resolve() if file else doc
        assert path.is_relative_to(ROOT), f"{doc.name}: {target} leaves the repository"
        assert path.exists(), f"{doc.name}: {target} does not exist"
        if anchor:
            assert anchor in _anchors(path), f"{doc.name}: no heading #{anchor} in {file}"


def test_readme_names_no_file_outside_the_repository():
    text = README.read_text()
    assert not re.search(r"(?<!\.)\.\./", text), "README.md points outside the repository"
    for name in set(re.findall(r"[\w./-]+\.md\b", LINK.sub("", text))):
        if name in GENERATED or name.startswith("results/"):  # written by a run
            continue
        assert (ROOT / name).exists() or (ROOT / "docs" / name).exists(), name
