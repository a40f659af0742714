"""The graph every spectral method shares (BASiS paper Sec. 3-4; Table 2 settings).

* ``neighbours.py``: exact k nearest neighbours on every CPU (float32 candidates, float64 check).
* ``laplacian.py``: Gaussian kNN affinity with a per-point sigma, the Laplacians (L, L_sym, L_rw),
  the exact spectral embedding and the diffusion map (Eq. 1-3), and a batch's own embedding.
* ``eigensolvers.py``: sparse (LOBPCG / ARPACK) and dense solvers with their checks.
* ``batch.py``: the rule that derives a batch's graph (k, sigma) from the target graph.
"""
