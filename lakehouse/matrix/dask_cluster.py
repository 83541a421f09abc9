"""The Dask cluster matrices are computed on: a local `distributed` cluster unless a scheduler is set."""

from __future__ import annotations

import os
from contextlib import contextmanager


@contextmanager
def dask_client(address: str | None = None, workers: int | None = None):
    """A `distributed.Client`: on `address` (or the `dask_scheduler` setting), else a LocalCluster on
    127.0.0.1."""
    from distributed import Client, LocalCluster

    from lakehouse.settings import Settings

    address = address or Settings.load().dask_scheduler
    if address:
        with Client(address) as client:
            yield client
        return
    workers = workers or min(2, os.cpu_count() or 1)
    with (
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            memory_limit="4GiB",
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client
