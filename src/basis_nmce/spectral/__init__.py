"""The spectral estimators: BASiS and the learnt baselines it is compared with (BASiS paper
Sec. 3-4, Table 1), each with one face (``fit``, ``transform``, ``predict``, ``save``/``load``).

* ``estimator.py``: :class:`SpectralEstimator`, what all four share (graph settings, the
  batch-graph rule, input checks, out-of-sample transform, k-means predict, save/load).
* BASiS (Algorithm 1): ``basis.py`` (:class:`BASiS`: batch targets Eq. 12, the regression
  Eqs. 13-15), ``anchors.py`` (the reference, Eq. 11), ``align.py`` (the robust affine map
  fitted on the anchors, RANSAC), ``batch_limits.py`` (what a batch can honour).
* BASiS Algorithm 2 (Sec. 4.3): ``joint.py`` (:class:`~basis_nmce.spectral.joint.BASiSJoint`:
  Siamese features and a BASiS network trained together, the reference carried by T_G).
* ``base.py``: :class:`NeuralSpectralEstimator`, the baselines' Adam loop on a loss, with
  checkpoint/resume; on it :class:`SpectralNet` (``spectralnet.py``: Rayleigh quotient, Eq. 8,
  behind an orthonormalisation layer), :class:`SpecNet2` (``specnet2.py``: the
  orthogonalisation-free loss, Eq. 9, and rotation, Eq. 10) and :class:`DiffusionNet`
  (``diffusionnet.py``: regression on one batch's diffusion map, Eq. 7).
"""

from .base import NeuralSpectralEstimator
from .basis import BASiS
from .diffusionnet import DiffusionNet
from .estimator import SpectralEstimator
from .specnet2 import SpecNet2
from .spectralnet import SpectralNet

__all__ = [
    "BASiS",
    "DiffusionNet",
    "NeuralSpectralEstimator",
    "SpecNet2",
    "SpectralEstimator",
    "SpectralNet",
]
