"""The estimator families, one subpackage each (see README, "Adding an estimator").

=========================  ===============================================================
subpackage                 estimators
=========================  ===============================================================
``score_function``         REINFORCE, REINFORCE-LOO
``augment_reinforce``      AR, ARM, DisARM (binary)
``swap``                   ARS, ARSM, ARS+, ARSM+, ARSM+CE (categorical)
``relaxation``             straight-through, Gumbel-Softmax, ST-Gumbel-Softmax, I-MLE, AIMLE
``ksubset_perturbation``   I-MLE and AIMLE on k-subsets, SIMPLE
``st_variants``            Gumbel-Rao, gapped straight-through (GST), ReinMax (categorical)
=========================  ===============================================================

Every family folder holds the same four files: ``numpy_reference.py`` (formulas, NumPy
backend, registry records), ``device.py`` (arithmetic shared by CPU and CUDA), ``cpu.py`` and
``cuda.py``; its exact-moment method is in ``verify/moments/<family>.py``. The records are
collected in :mod:`reference.registry`; this package imports nothing itself.
"""
