import os

# One BLAS thread per process, set before numpy loads: the workers already use every core,
# and a BLAS thread pool in each worker only fights them (profile scoring is many small
# matrix products; docs/performance.md).
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

from .celery import app as celery_app  # noqa: E402

__all__ = ["celery_app"]
