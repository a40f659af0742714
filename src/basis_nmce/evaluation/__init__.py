"""How embeddings and clusterings are scored (BASiS Sec. 5.1 metrics; NMCE's protocols).

* ``metrics.py``: Grassmann distance d_G (Eq. 17), orthogonality d_perp, NMI (Eq. 18 and the
  arithmetic normalisation), Hungarian ACC, ARI, k-means on an embedding, the linear probe.
* ``nmce.py``: NMCE's scores (cluster head under both NMI normalisations, kNN / SVM /
  nearest-subspace probes of the features, augmented views, subspace clustering).
* ``subspace_clustering.py``: EnSC / SSC-OMP subspace clustering (NMCE Sec. 3.6).
* ``compare.py``: the exact embedding, BASiS and the baselines on one graph, over seeds (Table 1).
"""
