"""NMCE (Li et al., Neural Manifold Clustering and Embedding): networks, optimisers, training.

:class:`NMCE` (:mod:`.estimator`) is the scikit-learn style estimator the pipeline stages call;
under it, library functions on tensors: :mod:`.networks`, :mod:`.optim`, :mod:`.train`,
:mod:`.guards`, :mod:`.constraint` (the constraint functional D) and :mod:`.restarts`.
"""

from basis_nmce.nmce.constraint import Violation, assignment_violation
from basis_nmce.nmce.estimator import NMCE
from basis_nmce.nmce.guards import CollapseMonitor, check_finite, effective_rank
from basis_nmce.nmce.networks import NETWORKS, NMCENet, build_network, load_network, save_network
from basis_nmce.nmce.optim import LARS, build_optimizer, build_scheduler, warmup_cosine_factor
from basis_nmce.nmce.restarts import Restart, train_restarts
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
    "NMCE",
    "CollapseMonitor",
    "NMCENet",
    "Restart",
    "TrainConfig",
    "TrainResult",
    "Violation",
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
