"""A Dask worker preload: a worker process ignores Ctrl-C (SIGINT).

Ctrl-C on `make run` reaches every process in the terminal's group, the LocalCluster's
worker processes too: each printed a KeyboardInterrupt traceback, as if it had crashed. The
app closes its cluster itself (their nanny stops them), so they need not hear it.
"""

from __future__ import annotations

import signal
import threading
from typing import Any


def dask_setup(worker: Any) -> None:
    """Ignore SIGINT in this worker process (only its main thread may set a handler)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
