"""NMCE (Li et al., Neural Manifold Clustering and Embedding): networks, optimisers, training.

Library functions on tensors; the pipeline stages call them. See :mod:`.networks`,
:mod:`.optim`, :mod:`.train`, :mod:`.guards` and :mod:`.restarts`.
"""

from basis_nmce.nmce.guards import CollapseMonitor, check_finite, effective_rank
from basis_nmce.nmce.networks import NETWORKS, NMCENet, build_network, load_network, save_network
from basis_nmce.nmce.optim import LARS, build_optimizer, build_scheduler, warmup_cosine_factor
from basis_nmce.nmce.restarts import Restart, assignment_violation, train_restarts
from basis_nmce.nmce.train import (
    TrainConfig,
    TrainResult,
    embed,
    embed_and_predict,
    predict_clusters,
    train_cluster,
    train_finetune,
    train_joint,
    train_tcr,
)

__all__ = [
    "LARS",
    "NETWORKS",
    "CollapseMonitor",
    "NMCENet",
    "Restart",
    "TrainConfig",
    "TrainResult",
    "assignment_violation",
    "build_network",
    "build_optimizer",
    "build_scheduler",
    "check_finite",
    "effective_rank",
    "embed",
    "embed_and_predict",
    "load_network",
    "predict_clusters",
    "save_network",
    "train_cluster",
    "train_finetune",
    "train_joint",
    "train_restarts",
    "train_tcr",
    "warmup_cosine_factor",
]
