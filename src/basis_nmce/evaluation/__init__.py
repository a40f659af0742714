"""How embeddings and clusterings are scored (BASiS Sec. 5.1 metrics; NMCE's protocols).

* ``metrics.py``: Grassmann distance d_G (Eq. 17), orthogonality d_perp, NMI (Eq. 18 and the
  arithmetic normalisation), Hungarian ACC, ARI, k-means on an embedding, the linear probe.
* ``subspace_clustering.py``: the NMCE paper's subspace clustering and nearest-subspace probe.
* ``compare.py``: the exact embedding, BASiS and the baselines on one graph, over seeds (Table 1).
"""
