"""Ray, started or attached, for the commands that spread work over cores or a cluster.

* :func:`ray_session`: ``engine="local"`` starts a Ray instance on this machine (``workers`` CPUs, default
  all of them) and shuts it down afterwards; ``engine="ray"`` attaches to an existing cluster at
  ``address`` or $RAY_ADDRESS (a HOST:PORT nobody listens at is refused at once). Workers find this
  repository through PYTHONPATH (set in the job's runtime environment), and their logs stay out of the
  driver's output. When Ray is already initialised in this
  process (a test, a notebook), that instance is used and left running.
* :class:`RayMap`: ``run(fn, shared, items)`` runs ``fn(shared, item)`` for every item as a Ray task (one
  CPU each) and returns the results in the items' order: what ``cross_validate(run=...)`` and
  ``RiskModel.fit(run=...)`` spread their folds and ensemble members with. ``shared`` (the training
  arrays and settings, built by this program: numpy arrays, data frames, JSON) is put in Ray's object store
  once and read by every task. The serial reference is ``[fn(shared, item) for item in items]``; each task
  seeds everything it draws from its own seed, so both give the same numbers.

Ray is imported here only inside functions: the other commands and the dashboard never pay for it.
"""
from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from core.errors import CoreError

ENGINES = ("local", "ray")
# The object store of a local instance for score: part descriptions and reports only.
OBJECT_STORE_BYTES = 200 * 2**20
ONEDNN_SWITCH = ("TF_ENABLE_ONEDNN_OPTS",)


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def resolve_address(engine: str, address: str | None) -> str | None:
    """The cluster address for ``engine="ray"`` (``address`` or $RAY_ADDRESS); None for "local"."""
    if engine not in ENGINES:
        raise CoreError(f"--engine {engine!r}: use local or ray")
    if engine == "local":
        return None
    address = address or os.environ.get("RAY_ADDRESS")
    if not address:
        raise CoreError("--engine ray needs --address (or $RAY_ADDRESS): the cluster to run on")
    return address


def check_reachable(address: str) -> None:
    """CoreError unless something listens at a HOST:PORT ``address``: ray.init would otherwise retry an
    unreachable head for minutes, printing Ray's C++ warnings. "auto" and ray:// addresses are Ray's to
    resolve and are not checked here."""
    if address == "auto" or "://" in address:
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise CoreError(f"--address {address}: give the head node's HOST:PORT (e.g. 10.0.0.5:6379), or auto")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except OSError as exc:
        raise CoreError(f"cannot reach the Ray cluster at {address} ({exc.strerror or type(exc).__name__}); "
                        "is it running? (`ray status` on its head node)") from None


def check_workers(workers: int | None) -> None:
    if workers is not None and workers < 1:
        raise CoreError("--workers must be at least 1")


@contextlib.contextmanager
def ray_session(engine: str, address: str | None = None, workers: int | None = None,
                object_store_bytes: int | None = OBJECT_STORE_BYTES) -> Iterator[None]:
    """Ray ready for tasks inside the block (see the module docstring). ``object_store_bytes``: the
    object store of a local instance (None: Ray's default, a share of the machine's memory)."""
    address = resolve_address(engine, address)
    check_workers(workers)
    import ray

    if ray.is_initialized():
        yield
        return
    root = str(Path(__file__).resolve().parents[2])
    env = {"TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": os.pathsep.join(
        [root] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])),
           # A task holds one CPU (as Ray's own OMP_NUM_THREADS=1 says); TensorFlow's default pools of one
           # thread per core would make two workers on two cores spin against each other. Same numbers:
           # a fit's weights do not depend on the thread count (measured, 1 vs 2 threads, graph and XLA).
           "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"}
    # TensorFlow picks its CPU kernels by this switch (oneDNN or Eigen), and their sums round differently
    # (measured: a fit's weights change when it flips): workers compute as the driver would.
    env.update({k: os.environ[k] for k in ONEDNN_SWITCH if k in os.environ})
    kwargs = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False,
              "runtime_env": {"env_vars": env}}
    if engine == "ray":
        check_reachable(address)
    try:
        if engine == "ray":
            ray.init(address=address, **kwargs)
        else:
            if object_store_bytes is not None:
                kwargs["object_store_memory"] = object_store_bytes
            ray.init(address="local", num_cpus=workers or cpu_count(), **kwargs)
    except Exception as exc:  # an unreachable address, a version mismatch: one line, not Ray's traceback
        where = f"the Ray cluster at {address}" if engine == "ray" else "a local Ray instance"
        raise CoreError(f"could not start or reach {where} ({type(exc).__name__}: {_first_line(exc)})") from None
    try:
        yield
    finally:
        ray.shutdown()


def _first_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return (lines[0] if lines else type(exc).__name__)[:300]


class RayMap:
    """``run(fn, shared, items)`` on Ray tasks, at most ``workers`` at a time (default: every CPU of the
    cluster). Use inside :func:`ray_session`.

    A task that raises a CoreError (training diverged, one outcome only) re-raises that same error here, as
    the serial run would. A worker that dies is retried by Ray (``max_retries``); when it keeps failing, or a
    task fails with any other error, the remaining tasks are cancelled and a one-line CoreError says so.
    """

    def __init__(self, workers: int | None = None, max_retries: int = 2):
        check_workers(workers)
        self.workers = workers
        self.max_retries = max_retries
        self.used_workers = 0

    def __call__(self, fn: Callable, shared, items: Sequence,
                 progress: Callable[[int, int], None] | None = None) -> list:
        import ray

        items = list(items)
        if not items:
            return []
        cpus = int(ray.cluster_resources().get("CPU", 1))
        limit = max(1, min(self.workers or cpus, len(items)))
        self.used_workers = limit
        remote = ray.remote(num_cpus=1, max_retries=self.max_retries)(fn)
        shared_ref = ray.put(shared)
        pending: dict = {}
        results: dict[int, object] = {}
        queue = list(enumerate(items))
        try:
            while queue or pending:
                while queue and len(pending) < limit:
                    index, item = queue.pop(0)
                    pending[remote.remote(shared_ref, item)] = index
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    index = pending.pop(ref)
                    results[index] = ray.get(ref)
                    if progress is not None:
                        progress(len(results), len(items))
        except Exception as exc:
            for ref in pending:
                with contextlib.suppress(Exception):  # already finished or gone: nothing to cancel
                    ray.cancel(ref, force=True)
            cause = getattr(exc, "cause", None)
            if isinstance(cause, CoreError):  # the task's own error, as the serial run raises it
                raise cause from None
            if isinstance(exc, CoreError):
                raise
            detail = f"{type(cause).__name__}: {_first_line(cause)}" if isinstance(cause, BaseException) \
                else f"{type(exc).__name__}: {_first_line(exc)}"
            raise CoreError(f"a Ray worker failed ({detail}); nothing was kept from this run") from None
        return [results[i] for i in range(len(items))]


@contextlib.contextmanager
def fitting_run(engine: str | None, address: str | None = None,
                workers: int | None = None) -> Iterator[Callable | None]:
    """The ``run=`` for cross-validation and ensemble fitting: None (in this process, one fit after
    another: the default) when ``engine`` is None, else a :class:`RayMap` inside a :func:`ray_session`."""
    if engine is None:
        if address is not None or workers is not None:
            raise CoreError("--address and --workers need --engine local or ray")
        yield None
        return
    # The store holds one copy of the training data (a whole cohort for CV): Ray's default size, not the
    # small one that part descriptions need.
    with ray_session(engine, address, workers, object_store_bytes=None):
        yield RayMap(workers)


__all__ = ["ENGINES", "RayMap", "check_reachable", "check_workers", "cpu_count", "fitting_run", "ray_session", "resolve_address"]
