"""What an NMCE network reads, from a pipeline config's ``nmce`` section and a data set:
the number of clusters, the inputs of either split (vectors or images), the augmentation
(the constraint D's views, NMCE Sec. 3.3) and a fresh network."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from basis_nmce import data
from basis_nmce.errors import ConfigError
from basis_nmce.nmce.augment import make_augmenter
from basis_nmce.nmce.networks import NMCENet, build_network


def resolve_n_clusters(nmce: dict[str, Any], ds: data.Dataset) -> int:
    """``nmce.n_clusters``, else the data set's declared class count (never read off labels)."""
    if nmce.get("n_clusters") is not None:
        return int(nmce["n_clusters"])
    if ds.n_classes:
        return int(ds.n_classes)
    raise ConfigError(
        f"nmce.n_clusters: data set {ds.name!r} declares no classes; set nmce.n_clusters"
    )


def augmenter_from(nmce: dict[str, Any]):
    aug = nmce["augmentation"]
    return make_augmenter(aug.get("kind", "noise"), **(aug.get("options") or {}))


def images_to_tensor(x: np.ndarray) -> torch.Tensor:
    """Prepared images ``(n, H, W)`` / ``(n, H, W, C)`` -> float32 ``(n, C, H, W)`` in [0, 1]."""
    t = torch.from_numpy(np.ascontiguousarray(x))
    t = t.unsqueeze(1) if t.dim() == 3 else t.permute(0, 3, 1, 2)
    t = t.to(torch.float32)
    return t / 255.0 if x.dtype == np.uint8 else t


def network_inputs(
    network: str, ds: data.Dataset, vectors: dict[str, np.ndarray] | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, test) inputs of ``network``: the given vectors for ``mlp``, else the images."""
    if network == "mlp":
        if vectors is None:
            raise ConfigError("nmce.network mlp reads the features of the rule's kind; none given")
        return (
            torch.from_numpy(np.ascontiguousarray(vectors["train"], dtype=np.float32)),
            torch.from_numpy(np.ascontiguousarray(vectors["test"], dtype=np.float32)),
        )
    if not ds.is_image:
        raise ConfigError(
            f"nmce.network {network!r} needs images, but data set {ds.name!r} holds vectors; "
            "use network mlp"
        )
    return images_to_tensor(ds.x_train), images_to_tensor(ds.x_test)


def new_network(nmce: dict[str, Any], in_shape, n_clusters: int, seed: int) -> NMCENet:
    try:
        return build_network(
            nmce["network"],
            tuple(in_shape),
            int(nmce["feature_dim"]),
            n_clusters,
            seed=seed,
            **(nmce.get("network_options") or {}),
        )
    except ValueError as exc:
        raise ConfigError(f"nmce.network: {exc}") from exc
