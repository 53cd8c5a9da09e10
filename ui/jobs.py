"""A training run in a background thread, one per session.

The page starts it and returns at once; the thread calls :func:`core.pipeline.train_on_cohort` (TensorFlow
releases the GIL while it trains, so the page and other sessions stay responsive) and writes each epoch's
metrics into this object. The page's fragment reads :meth:`TrainingJob.snapshot` every half second. Stop
sets an Event that the engine polls after every epoch (the best weights so far are kept). No Streamlit
call is made from the thread.
"""
from __future__ import annotations

import gc
import logging
import sys
import threading
import time
import traceback

from core.errors import CoreError

log = logging.getLogger(__name__)


def freeze_imported() -> None:
    """Move everything alive now (TensorFlow's ~400k module objects) out of the cyclic GC's sight.

    Once TensorFlow is imported, every full collection that Python starts by itself scans them: ~230 ms
    with the GIL held, i.e. a random what-if change, or another session's page, stalls that long.
    gc.freeze() after the import (with the garbage collected first, so none of it is kept) makes those
    collections take microseconds; frozen objects are still freed by reference counting."""
    gc.collect()
    gc.freeze()


def import_tensorflow() -> None:
    """The background warm-up: import Keras/TensorFlow, then freeze the heap it built."""
    import keras  # noqa: F401
    freeze_imported()


def import_shared_modules() -> None:
    """Finish, in the calling (page) thread, imports that TensorFlow's import would otherwise run in a
    background thread while the page reads them: plotly looks up ``PIL.Image`` in sys.modules without
    importing it, and found it half-initialised while Keras was importing it (AttributeError when a
    figure was drawn). Call before starting a thread that may import TensorFlow."""
    try:
        import PIL.Image  # noqa: F401
    except ImportError:  # Pillow is optional for plotly; then nobody imports it
        pass


class BackgroundJob:
    """What a page asks of a job in a background thread (training, cohort scoring): is it running, has it
    finished, wait for it. A subclass sets ``status`` and the Event ``_done`` (set once, when it ends)."""
    status: str
    _done: threading.Event

    @property
    def running(self) -> bool:
        return not self._done.is_set() and self.status == "running"

    @property
    def finished(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)


class TrainingJob(BackgroundJob):
    def __init__(self, cohort, config, train=None):
        if train is None:
            from core.workflow import train_on_cohort as train
        self.cohort = cohort
        self.config = config
        self._train = train
        self.stop_event = threading.Event()
        self._lock = threading.Lock()
        self._done = threading.Event()
        self.history: dict[str, list[float]] = {}
        self.epoch = 0
        # Over the whole job (an ensemble trains one network after another): network k of n, its epoch,
        # and when each network started (to estimate the time left from the ones already done).
        self.network, self.networks, self.network_epoch = 1, int(getattr(config, "members", 1) or 1), 0
        self.network_started: list[float] = []
        self.network_epochs: list[int] = []  # epochs each finished network ran (early stopping: fewer than the limit)
        self.status = "pending"  # pending | running | done | stopped | failed
        self.result = None
        self.error: str | None = None  # CoreError message, or the exception's type name when internal
        self.internal_error = False
        self.started: float | None = None
        self.seconds: float | None = None
        self.adopted = False  # the page has taken the result (or shown the error) once
        self.thread: threading.Thread | None = None

    def start(self) -> "TrainingJob":
        import_shared_modules()  # the thread imports TensorFlow if nothing has yet
        self.status = "running"
        self.started = time.perf_counter()
        self.thread = threading.Thread(target=self._run, daemon=True, name="train-session")
        self.thread.start()
        return self

    def _network_progress(self, k: int, n: int, epoch: int) -> None:
        with self._lock:
            now = time.perf_counter()
            if not self.network_started:  # the first epoch's end: TensorFlow's import and tracing are behind
                self.network_started.append(now)
            if k != self.network:  # network k - 1 ended with its last reported epoch
                self.network_epochs.append(self.network_epoch)
                self.network_started.append(now)
            self.network, self.networks, self.network_epoch = k, n, epoch

    def _progress(self, epoch: int, metrics: dict) -> None:
        with self._lock:
            self.epoch = epoch
            for key, value in metrics.items():
                self.history.setdefault(key, []).append(float(value))

    def _run(self) -> None:
        first_import = "tensorflow" not in sys.modules  # no warm-up ran: this thread imports TensorFlow
        try:
            result = self._train(self.cohort, self.config, progress=self._progress, should_stop=self.stop_event.is_set,
                                 network_progress=self._network_progress)
        except CoreError as exc:
            self._finish("failed", error=str(exc))
        except Exception as exc:  # an engine bug: a readable line for the page, the stack (no values) for the log
            log.error("training failed with %s\n%s", type(exc).__name__, "".join(traceback.format_tb(exc.__traceback__)))
            self.internal_error = True
            self._finish("failed", error=type(exc).__name__)
        else:
            stopped = bool(getattr(result.model, "stopped_by_user_", False))
            self._finish("stopped" if stopped else "done", result=result)
        finally:
            if first_import:
                freeze_imported()

    def _finish(self, status: str, result=None, error: str | None = None) -> None:
        with self._lock:
            self.result, self.error = result, error
            self.seconds = time.perf_counter() - (self.started or time.perf_counter())
            self.status = status
        self._done.set()

    def stop(self) -> None:
        self.stop_event.set()

    def snapshot(self) -> dict:
        """A consistent copy for drawing: epoch, history lists, status, and progress over the whole job."""
        with self._lock:
            now = time.perf_counter()
            snap = {"epoch": self.epoch, "history": {k: list(v) for k, v in self.history.items()},
                    "status": self.status, "stopping": self.stop_event.is_set(),
                    "elapsed": now - self.started if self.started else 0.0,
                    "network": self.network, "networks": self.networks, "network_epoch": self.network_epoch,
                    "early_stopping": bool(getattr(self.config, "early_stopping", False))}
            done_seconds = [b - a for a, b in zip(self.network_started, self.network_started[1:])]
            current = now - self.network_started[-1] if self.network_started else 0.0
            max_epochs = int(getattr(self.config, "epochs", 0) or 0)
            snap.update(job_progress(self.network, self.networks, self.network_epoch, max_epochs,
                                     self.network_epochs, done_seconds, current,
                                     bool(getattr(self.config, "early_stopping", False))))
            return snap


def job_progress(network: int, networks: int, epoch: int, max_epochs: int, epochs_done: list[int],
                 seconds_done: list[float], seconds_current: float, early_stopping: bool) -> dict:
    """The fraction of the job done and an estimate of the seconds left (None while there is no basis).

    A network that stops early runs fewer epochs than the limit, so the limit is a poor yardstick once a
    network has finished: later networks are then taken to run as many epochs, and as long, as the
    finished ones did on average. During the first network of an early-stopping run nothing is known yet
    (it may stop at any epoch); without early stopping every network runs the limit."""
    networks = max(networks, 1)
    if epochs_done:
        expected = max(sum(epochs_done) / len(epochs_done), 1.0)
        per_network = sum(seconds_done) / len(seconds_done)
        within = min(epoch / expected, 1.0)
        left = max(per_network - seconds_current, 0.0) + per_network * (networks - network)
    else:
        expected = max(max_epochs, 1)
        within = min(epoch / expected, 1.0)
        per_epoch = seconds_current / (epoch - 1) if epoch > 1 else None  # timed from the first epoch's end
        left = None if early_stopping or per_epoch is None else per_epoch * (expected * networks - epoch)
    return {"fraction": min((network - 1 + within) / networks, 1.0), "seconds_left": left}


def progress_text(snap: dict, max_epochs: int) -> str:
    """'Network 2 of 5 · Epoch 40 of at most 2000 · 12 s · about 30 s left': the same words on the Train
    page and in the sidebar."""
    from ui.i18n import t
    parts = []
    if snap["networks"] > 1:
        parts.append(t("train.progress_network", network=snap["network"], networks=snap["networks"]))
    epoch = snap["network_epoch"] if snap["networks"] > 1 else snap["epoch"]
    parts.append(t("train.progress", epoch=epoch, epochs=max_epochs, seconds=f"{snap['elapsed']:.0f}"))
    left = snap.get("seconds_left")
    if left is not None and left < 1 and snap["network"] >= snap["networks"]:
        # The networks' time is up; the test metrics and their bootstrap intervals follow (seconds): "about
        # 1 s left" stood still for 12 s (QA).
        parts.append(t("train.progress_finishing"))
    elif left is not None:
        parts.append(t("train.progress_left", seconds=f"{max(left, 1):.0f}"))
    elif snap.get("early_stopping"):  # the first network may stop at any epoch: no basis yet
        parts.append(t("train.progress_left_unknown"))
    return " · ".join(parts)
