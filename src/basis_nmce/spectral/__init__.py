"""The learnt spectral embeddings BASiS is compared with (BASiS paper Sec. 3, Table 1).

Each is an estimator with :class:`basis_nmce.BASiS`'s face and graph construction, built on
:class:`~basis_nmce.spectral.base.NeuralSpectralEstimator`:

* :class:`SpectralNet` (``spectralnet.py``): Rayleigh quotient (Eq. 8) behind an
  orthonormalisation layer.
* :class:`SpecNet2` (``specnet2.py``): orthogonalisation-free loss (Eq. 9), rotation (Eq. 10).
* :class:`DiffusionNet` (``diffusionnet.py``): regression on one batch's diffusion map (Eq. 7).
"""

from .base import NeuralSpectralEstimator
from .diffusionnet import DiffusionNet
from .specnet2 import SpecNet2
from .spectralnet import SpectralNet

__all__ = ["DiffusionNet", "NeuralSpectralEstimator", "SpecNet2", "SpectralNet"]
