"""Load and validate the experiment configuration (one YAML, one JSON schema).

The Snakefile, the CLI and DVC's params all read the same ``config.yaml``; this module
validates it against ``schemas/config.schema.yaml``, fills the documented defaults, and
resolves each data set's effective ``graph`` / ``features`` / ``basis`` / ``nmce`` sections
(global values overridden by ``datasets.<name>.graph`` / ``.features`` / ...).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from .errors import ConfigError

OVERRIDABLE_SECTIONS = ("graph", "features", "basis", "nmce", "baselines", "joint")


@cache
def schema() -> dict[str, Any]:
    """The configuration's JSON schema (packaged with the library)."""
    text = resources.files("basis_nmce").joinpath("schemas/config.schema.yaml").read_text()
    return yaml.safe_load(text)


def _resolve_ref(sub: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    while "$ref" in sub:
        ref = sub["$ref"]
        if not ref.startswith("#/"):
            raise ValueError(f"only local $ref supported, got {ref}")
        target: Any = root
        for part in ref[2:].split("/"):
            target = target[part]
        merged = {k: v for k, v in sub.items() if k != "$ref"}
        sub = {**target, **merged}
    return sub


def _fill_defaults(
    instance: dict[str, Any],
    sub: Mapping[str, Any],
    root: Mapping[str, Any],
    skip: tuple[str, ...] = (),
) -> None:
    """Fill defaults along ``properties`` only, leaving the keys in ``skip`` as given."""
    sub = _resolve_ref(sub, root)
    for key, prop in sub.get("properties", {}).items():
        if key in skip:
            continue
        prop = _resolve_ref(prop, root)
        if key not in instance and "default" in prop:
            instance[key] = copy.deepcopy(prop["default"])
        if isinstance(instance.get(key), dict) and "properties" in prop:
            _fill_defaults(instance[key], prop, root)


def _key_path(error: jsonschema.ValidationError) -> str:
    parts = [str(p) for p in error.absolute_path]
    return ".".join(parts) if parts else "<top level>"


def validate_config(config: Mapping[str, Any] | None) -> dict[str, Any]:
    """Validate ``config`` and return a copy with defaults filled.

    Raises :class:`ConfigError` naming the first offending key and what is allowed.
    """
    cfg: dict[str, Any] = copy.deepcopy(dict(config or {}))
    root = schema()
    validator = jsonschema.Draft202012Validator(root)
    _coerce_strings(cfg, validator)
    errors = sorted(validator.iter_errors(cfg), key=lambda e: (len(e.absolute_path), e.path))
    if errors:
        err = errors[0]
        raise ConfigError(_describe(err))
    _fill_defaults(cfg, root, root)
    for name in cfg["run"]["datasets"]:
        if name not in cfg["datasets"]:
            known = ", ".join(sorted(cfg["datasets"])) or "none"
            raise ConfigError(
                f"run.datasets: unknown data set {name!r}; declare it under `datasets:` "
                f"(declared: {known})"
            )
    for name in cfg["run"]["joint"]:
        if name not in cfg["datasets"]:
            known = ", ".join(sorted(cfg["datasets"])) or "none"
            raise ConfigError(
                f"run.joint: unknown data set {name!r}; declare it under `datasets:` "
                f"(declared: {known})"
            )
    for name, spec in cfg["datasets"].items():
        # Overrides keep only the keys they name; the global section supplies the rest.
        _fill_defaults(spec, root["$defs"]["dataset"], root, skip=OVERRIDABLE_SECTIONS)
        if spec["source"] in ("npz", "npy", "csv") and "path" not in spec:
            raise ConfigError(
                f"datasets.{name}.path: source {spec['source']!r} needs `path:` to the file"
            )
    if cfg["graph"]["sigma_mode"] == "fixed" and cfg["graph"].get("sigma_value") is None:
        raise ConfigError("graph.sigma_value: sigma_mode 'fixed' needs a positive sigma_value")
    for name in cfg["datasets"]:
        graph = dataset_section(cfg, name, "graph")
        if graph["sigma_mode"] == "fixed" and graph.get("sigma_value") is None:
            raise ConfigError(
                f"datasets.{name}.graph.sigma_value: sigma_mode 'fixed' needs a positive sigma_value"
            )
        if graph.get("n_components") == 1 and not graph.get("drop_first"):
            raise ConfigError(
                f"datasets.{name}: graph.n_components 1 with graph.drop_first false is the "
                "trivial eigenvector alone (no cluster structure); set drop_first: true for the "
                "first non-trivial one, or n_components >= 2"
            )
        if graph["sigma_neighbor"] > graph["n_neighbors"]:
            raise ConfigError(
                f"datasets.{name}.graph.sigma_neighbor: {graph['sigma_neighbor']} exceeds "
                f"n_neighbors {graph['n_neighbors']}; sigma is read off the kNN distances"
            )
        nmce = dataset_section(cfg, name, "nmce")
        for stage in ("tcr", "cluster"):
            if nmce[stage]["steps"] < 1:
                raise ConfigError(
                    f"datasets.{name}.nmce.{stage}.steps: must be >= 1 (only finetune may be 0)"
                )
    return cfg


def _coerce_strings(cfg: dict[str, Any], validator: jsonschema.Validator) -> None:
    """Parse strings as YAML where the schema wants another type.

    Snakemake's ``--config graph={n_neighbors: 30}`` hands nested values over as strings.
    """
    for _ in range(100):
        fixed = False
        for err in validator.iter_errors(cfg):
            if (
                err.validator != "type"
                or not isinstance(err.instance, str)
                or not err.absolute_path
            ):
                continue
            try:
                value = yaml.safe_load(err.instance)
            except yaml.YAMLError:
                continue
            if isinstance(value, str):
                continue
            node: Any = cfg
            *parents, last = err.absolute_path
            for part in parents:
                node = node[part]
            node[last] = value
            fixed = True
            break
        if not fixed:
            return


def _describe(err: jsonschema.ValidationError) -> str:
    key = _key_path(err)
    msg = err.message
    if err.validator == "additionalProperties":
        allowed = sorted(err.schema.get("properties", {}))
        hint = f"; allowed keys: {', '.join(allowed)}" if allowed else ""
        return f"{key}: {msg}{hint}"
    if err.validator == "enum":
        return f"{key}: {err.instance!r} is not one of {err.validator_value}"
    desc = err.schema.get("description")
    return f"{key}: {msg}" + (f" ({desc})" if desc else "")


def load_config(path: str | Path, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Read ``path`` (YAML), apply dotted-key ``overrides``, validate and fill defaults."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: config file not found; pass --config PATH to an existing YAML")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level must be a mapping of keys to values")
    for dotted, value in (overrides or {}).items():
        set_dotted(raw, dotted, value)
    return validate_config(raw)


def set_dotted(cfg: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``cfg['a']['b'] = value`` for ``dotted == 'a.b'``, creating mappings as needed."""
    parts = dotted.split(".")
    node = cfg
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{dotted}: {part!r} is not a mapping")
    node[parts[-1]] = value


def dataset_section(cfg: Mapping[str, Any], dataset: str, section: str) -> dict[str, Any]:
    """The effective ``section`` for ``dataset``: global values updated by its overrides."""
    if section not in OVERRIDABLE_SECTIONS:
        raise KeyError(section)
    if dataset not in cfg["datasets"]:
        raise ConfigError(f"datasets.{dataset}: unknown data set; declare it under `datasets:`")
    merged = copy.deepcopy(dict(cfg[section]))
    override = cfg["datasets"][dataset].get(section) or {}
    for key, value in override.items():
        if _replaces(section, key, value, cfg[section]):
            merged[key] = copy.deepcopy(value)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = copy.deepcopy(value)
    if section == "nmce" and merged.get("network") != cfg[section].get("network"):
        # another network brings none of the global network's options
        merged["network_options"] = copy.deepcopy(override.get("network_options") or {})
    return merged


def _replaces(section: str, key: str, value: Any, glob: Mapping[str, Any]) -> bool:
    """Whether an override replaces a nested mapping of the global section ``glob`` instead of
    merging into it: another augmentation kind brings none of the global kind's options."""
    if section == "nmce" and key == "augmentation" and isinstance(value, dict):
        return value.get("kind", glob[key].get("kind")) != glob[key].get("kind")
    return False
