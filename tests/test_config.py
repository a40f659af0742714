"""The config schema: defaults, per-dataset overrides, and errors that name the key."""

from pathlib import Path

import pytest
import yaml
from snakemake.utils import update_config

from basis_nmce.config import dataset_section, load_config, schema, validate_config
from basis_nmce.errors import ConfigError
from basis_nmce.stages.params import STAGES, stage_params, stage_params_json

ROOT = Path(__file__).resolve().parents[1]


def test_default_config_is_valid_and_filled():
    cfg = load_config(ROOT / "config.yaml")
    assert cfg["graph"]["n_neighbors"] == 50
    assert cfg["graph"]["sigma_neighbor"] == 7
    assert cfg["graph"]["laplacian"] == "sym"
    assert set(cfg["run"]["datasets"]) <= set(cfg["datasets"])
    assert len(cfg["run"]["datasets"]) >= 3


@pytest.mark.parametrize("preset", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_preset_is_valid_over_the_default_config(preset):
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    update_config(cfg, yaml.safe_load(preset.read_text()))  # what --configfile does
    cfg = validate_config(cfg)
    assert set(cfg["run"]["datasets"]) <= set(cfg["datasets"])


def test_schema_symlink_points_at_packaged_schema():
    link = ROOT / "workflow" / "schemas" / "config.schema.yaml"
    packaged = ROOT / "src" / "basis_nmce" / "schemas" / "config.schema.yaml"
    assert link.resolve() == packaged.resolve()


def test_overrides_take_only_named_keys():
    cfg = validate_config(
        {
            "graph": {"n_neighbors": 30},
            "datasets": {"a": {"source": "moons", "graph": {"n_components": 2}}},
            "run": {"datasets": ["a"]},
        }
    )
    assert cfg["datasets"]["a"]["graph"] == {"n_components": 2}
    g = dataset_section(cfg, "a", "graph")
    assert g["n_components"] == 2 and g["n_neighbors"] == 30 and g["laplacian"] == "sym"


@pytest.mark.parametrize(
    ("config", "key"),
    [
        ({"graph": {"n_neighbors": 0}}, "graph.n_neighbors"),
        ({"graph": {"laplacian": "normalized"}}, "graph.laplacian"),
        ({"graph": {"laplacan": "sym"}}, "graph"),
        ({"seed": -1}, "seed"),
        ({"threads": "two"}, "threads"),
        ({"datasets": {"x": {"source": "imagenet"}}}, "datasets.x.source"),
        ({"datasets": {"x": {"source": "npz"}}}, "datasets.x.path"),
        ({"run": {"datasets": ["nope"]}}, "run.datasets"),
        ({"graph": {"sigma_mode": "fixed"}}, "graph.sigma_value"),
        ({"graph": {"n_neighbors": 5, "sigma_neighbor": 7}}, "sigma_neighbor"),
        (
            {"datasets": {"x": {"source": "moons", "test_fraction": 1.5}}},
            "datasets.x.test_fraction",
        ),
        ({"features": {"raw": {"pca": 0}}}, "features.raw.pca"),
    ],
)
def test_invalid_values_name_the_key(config, key):
    config = {"datasets": {"digits": {"source": "digits"}}, **config}
    if "run" not in config:
        config["run"] = {"datasets": [next(iter(config["datasets"]))]}
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        validate_config(config)


def test_load_config_overrides_and_missing_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        yaml.safe_dump({"datasets": {"d": {"source": "digits"}}, "run": {"datasets": ["d"]}})
    )
    cfg = load_config(path, {"graph.n_neighbors": 12, "seed": 3})
    assert cfg["graph"]["n_neighbors"] == 12 and cfg["seed"] == 3
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    path.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(path)


def test_stage_params_are_stable_and_scoped():
    cfg = load_config(ROOT / "config.yaml")
    for stage in STAGES:
        p = stage_params(cfg, stage, "moons", "raw")
        assert p["seed"] == cfg["seed"]
    a = stage_params_json(cfg, "analytic", "moons", "raw")
    assert a == stage_params_json(cfg, "analytic", "moons", "raw")
    # A change to the evaluate section does not touch analytic's params (no needless rerun).
    cfg2 = load_config(ROOT / "config.yaml", {"evaluate.kmeans_n_init": 3})
    assert stage_params_json(cfg2, "analytic", "moons", "raw") == a
    assert stage_params_json(cfg2, "evaluate", "moons", "raw") != stage_params_json(
        cfg, "evaluate", "moons", "raw"
    )


def test_nmce_section_defaults_and_documented_eps():
    cfg = load_config(ROOT / "config.yaml")
    nmce = cfg["nmce"]
    assert nmce["eps"] == 0.1  # the paper's eps (the authors' code's --eps 0.01 is eps^2)
    assert nmce["tcr"]["optimizer"] == "adam" and nmce["finetune"]["lambda"] is None
    assert cfg["evaluate"]["nmce"]["subspace_clustering"] in ("ensc", "ssc_omp", "none")
    eps_doc = schema()["$defs"]["nmce"]["properties"]["eps"]["description"]
    assert "eps^2" in eps_doc and "eps_from_authors_code" in eps_doc


@pytest.mark.parametrize(
    ("nmce", "key"),
    [
        ({"eps": 0}, "nmce.eps"),
        ({"network": "vgg"}, "nmce.network"),
        ({"augmentation": {"kind": "mixup"}}, "nmce.augmentation.kind"),
        ({"tcr": {"optimizer": "rmsprop"}}, "nmce.tcr.optimizer"),
        ({"tcr": {"stepz": 3}}, "nmce.tcr"),
        ({"lambda": -1}, "nmce.lambda"),
        ({"n_clusters": 1}, "nmce.n_clusters"),
        ({"tcr": {"steps": 0}}, "nmce.tcr.steps"),
    ],
)
def test_invalid_nmce_values_name_the_key(nmce, key):
    config = {"datasets": {"d": {"source": "digits"}}, "run": {"datasets": ["d"]}, "nmce": nmce}
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        validate_config(config)
    # The same mistake in a data set's override names that key.
    config = {"datasets": {"d": {"source": "digits", "nmce": nmce}}, "run": {"datasets": ["d"]}}
    with pytest.raises(ConfigError, match=r"datasets\.d\.nmce"):
        validate_config(config)


def test_nmce_overrides_per_dataset():
    cfg = validate_config(
        {
            "nmce": {
                "network_options": {"width": 64},
                "augmentation": {"kind": "noise", "options": {"std": 0.1}},
                "tcr": {"steps": 50, "lr": 0.01},
            },
            "datasets": {
                "a": {"source": "moons", "nmce": {"tcr": {"steps": 5}}},
                "b": {
                    "source": "digits",
                    "nmce": {"network": "cnn_small", "augmentation": {"kind": "grey"}},
                },
                "c": {
                    "source": "digits",
                    "nmce": {"network": "cnn_small", "network_options": {"pre_feature_dim": 8}},
                },
            },
            "run": {"datasets": ["a", "b", "c"]},
        }
    )
    a, b = dataset_section(cfg, "a", "nmce"), dataset_section(cfg, "b", "nmce")
    assert dataset_section(cfg, "c", "nmce")["network_options"] == {"pre_feature_dim": 8}
    assert a["tcr"]["steps"] == 5 and a["tcr"]["lr"] == 0.01  # merged key by key
    assert a["network_options"] == {"width": 64}
    # Another network or augmentation kind brings none of the global options.
    assert b["network_options"] == {} and b["augmentation"] == {"kind": "grey"}


def test_nmce_stage_params_are_scoped():
    cfg = load_config(ROOT / "config.yaml")
    later = load_config(ROOT / "config.yaml", {"nmce.finetune.steps": 7, "nmce.joint": True})
    assert stage_params_json(later, "nmce_tcr", "moons", "raw") == stage_params_json(
        cfg, "nmce_tcr", "moons", "raw"
    )
    assert stage_params_json(later, "nmce_finetune", "moons", "raw") != stage_params_json(
        cfg, "nmce_finetune", "moons", "raw"
    )
    # NMCE settings do not rerun the BASiS evaluations, and vice versa.
    ev = load_config(ROOT / "config.yaml", {"evaluate.nmce.knn_k": 5})
    assert stage_params_json(ev, "evaluate", "moons", "raw", "analytic") == stage_params_json(
        cfg, "evaluate", "moons", "raw", "analytic"
    )
    assert stage_params_json(ev, "evaluate", "moons", "raw", "nmce_tcr") != stage_params_json(
        cfg, "evaluate", "moons", "raw", "nmce_tcr"
    )
    tcr = stage_params(cfg, "features", "moons", "tcr")["nmce"]["tcr"]
    assert tcr == dataset_section(cfg, "moons", "nmce")["tcr"]  # moons' own stage-1 steps
    assert "nmce" not in stage_params(cfg, "features", "moons", "raw")
