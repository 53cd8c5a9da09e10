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


class TrainingJob:
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

    def _progress(self, epoch: int, metrics: dict) -> None:
        with self._lock:
            self.epoch = epoch
            for key, value in metrics.items():
                self.history.setdefault(key, []).append(float(value))

    def _run(self) -> None:
        first_import = "tensorflow" not in sys.modules  # no warm-up ran: this thread imports TensorFlow
        try:
            result = self._train(self.cohort, self.config, progress=self._progress, should_stop=self.stop_event.is_set)
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

    @property
    def running(self) -> bool:
        return not self._done.is_set() and self.status == "running"

    @property
    def finished(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    def snapshot(self) -> dict:
        """A consistent copy for drawing: epoch, history lists, status."""
        with self._lock:
            return {"epoch": self.epoch, "history": {k: list(v) for k, v in self.history.items()},
                    "status": self.status, "stopping": self.stop_event.is_set(),
                    "elapsed": time.perf_counter() - self.started if self.started else 0.0}
