"""The only place that starts or joins Ray."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

# Quiet Tune before it is imported: we print our own progress (sweep/progress.py), one line per trial.
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")


@contextlib.contextmanager
def connect(address: str | None = None, num_cpus: int | None = None, num_gpus: int | None = None) -> Iterator[None]:
    """Join the cluster at `address`, or start an embedded single-node Ray that stops on exit.

    The embedded Ray runs no dashboard; when one is wanted it binds to 127.0.0.1 only.
    """
    import ray

    if ray.is_initialized():
        yield
        return
    quiet = dict(configure_logging=True, logging_level=logging.ERROR, log_to_driver=False)
    if address:
        ray.init(address=address, **quiet)
    else:
        ray.init(num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=False, dashboard_host="127.0.0.1", **quiet)
    try:
        yield
    finally:
        ray.shutdown()
