"""Thread settings for the scripts; imported before NumPy and Numba (it imports neither)."""

from __future__ import annotations

import os


def early_env(argv: list[str]) -> None:
    """Thread settings must reach BLAS and Numba before NumPy and Numba are imported.

    * Numba's threading layer defaults to ``workqueue`` here: with the OpenMP layer, Numba's
      spinning OpenMP workers and OpenBLAS's spinning pthreads fight over the cores after every
      switch between a matrix product and a Numba kernel (measured on 2 cores: 2 training
      steps/s with OpenMP, 20 with workqueue). ``NUMBA_THREADING_LAYER`` set by the caller wins.
    * ``--threads N`` sets the BLAS, OpenMP and Numba thread counts (on a machine shared with
      other jobs, 1 thread is the robust choice).
    """
    os.environ.setdefault("NUMBA_THREADING_LAYER", "workqueue")
    for i, a in enumerate(argv):
        n = a.split("=", 1)[1] if a.startswith("--threads=") else (argv[i + 1] if a == "--threads" and
                                                                    i + 1 < len(argv) else None)
        if n is not None and n.isdigit() and int(n) >= 1:  # bad values: the script's own error
            for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
                os.environ[var] = n
