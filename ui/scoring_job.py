"""A large cohort scored as a background job (issue 17.6), through the CLI's own code:
:func:`core.workflow.batch.score` (``python -m core score``), so the dashboard's numbers, part files, bad-row
report and manifest are the command's.

One job per session, in a thread of this server, with the ``inline`` engine: the dashboard runs on one
machine whose cores its other sessions' pages share, and a Ray instance per job would start worker
processes (seconds and hundreds of MB each) inside the web server to compete with them; the exact-SHAP
kernel releases the GIL in its matrix products, so pages stay responsive. A cluster is the CLI's job
(docs/scale-out.md).

The job's input (the cohort, or the uploaded file's bytes as uploaded) and its Parquet parts are written
to a private temporary folder (mkdtemp: readable by this server's user only) and removed as soon as the
job ends, is cancelled or fails: the result lives in the job object, in memory, like the session's cohort.
The job object is kept under the session's token (ui.resume), so a reload re-attaches to it; its thread
never belonged to a browser session. No Streamlit call is made from the thread.
"""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
import time
import traceback
from pathlib import Path

import pandas as pd

from core.errors import CoreError
from ui.jobs import BackgroundJob, import_shared_modules

log = logging.getLogger(__name__)

# Above this many patients (with reasons) the Score page scores in the background. Exact SHAP reasons run at
# ~300-470 patients/s on one core here (issue 17), so 5,000 patients are 10-17 s: about the longest a page
# may stay busy, since any click during a page's own run restarts it and a reload loses it. Risk and band
# alone take well under a second for 100,000 patients: without reasons the page scores in its own run.
BACKGROUND_ROWS = 5000
BACKGROUND_ENV = "HEART_RISK_BACKGROUND_ROWS"  # a lower threshold (the browser test's small cohort)
PART_ROWS_MIN = 500  # rows per part at least: ~1-2 s of reasons, so progress moves and a cancel is heard soon
JOBS_ENV = "HEART_RISK_SCORE_JOBS"  # how many jobs of all sessions score at once (the others wait their turn)


def _job_slots() -> int:
    """One core is left to the pages (and the browser on a one-machine setup): on 2 cores, one job at a
    time; a second session's job waits instead of halving both jobs' speed and starving every page."""
    try:
        return max(int(os.environ[JOBS_ENV]), 1)
    except (KeyError, ValueError):
        try:
            cores = len(os.sched_getaffinity(0))
        except AttributeError:
            cores = os.cpu_count() or 1
        return max(cores - 1, 1)


_SLOTS = threading.BoundedSemaphore(_job_slots())


def background_rows() -> int:
    try:
        return max(int(os.environ.get(BACKGROUND_ENV, BACKGROUND_ROWS)), 0)
    except ValueError:
        return BACKGROUND_ROWS


def part_rows_for(total: int) -> int:
    """Parts small enough for the progress to move every second or two, at most ~50 parts per 25k rows
    beyond that (each part is a file read, a Parquet write and a hash), never more than the CLI's."""
    from core.workflow.batch import PART_ROWS
    return int(min(PART_ROWS, max(PART_ROWS_MIN, total // 50)))


class JobCancelled(Exception):
    """Raised in the job's progress callback: batch.score stops between parts (parts written stay whole)."""


def write_cohort_parquet(df: pd.DataFrame, path: Path, row_group_rows: int) -> None:
    """The cohort as Parquet with one row group per part (a part then reads its own rows only). Text
    columns stay text (a column mixing numbers and text is written as text, as the CLI's parts are)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    df = df.reset_index(drop=True).copy()
    df.columns = [str(c) for c in df.columns]
    for c in df.columns:
        if df[c].dtype == object or isinstance(df[c].dtype, pd.StringDtype):
            df[c] = df[c].map(lambda v: None if v is None or (isinstance(v, float) and v != v) else str(v)).astype(object)
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), path, row_group_size=max(row_group_rows, 1))


class ScoringJob(BackgroundJob):
    """Score ``total`` patients with the bundle at ``model_dir``; ``table`` (a DataFrame: the active cohort)
    or ``data`` (an uploaded file's bytes, with ``suffix``) is the input. ``model``: the session's model
    (the same as the bundle), used only for an ensemble's spread once the job is done."""

    def __init__(self, model_dir, *, name: str, total: int, with_reasons: bool, lang: str, model=None,
                 table: pd.DataFrame | None = None, data: bytes | None = None, suffix: str = ".csv",
                 top: int = 3, model_label: str | None = None):
        if (table is None) == (data is None):
            raise ValueError("give the cohort's table or the file's bytes")
        self.model_dir = Path(model_dir)
        self.name, self.total, self.with_reasons, self.lang, self.top = name, int(total), with_reasons, lang, top
        self.model_label = model_label
        self._model, self._table, self._data, self._suffix = model, table, data, suffix
        self.part_rows = part_rows_for(self.total)
        self._lock = threading.Lock()
        self._cancel = threading.Event()
        self._done = threading.Event()
        self.status = "pending"  # pending | running | done | cancelled | failed
        self.waiting = False  # for a slot: other sessions' jobs are scoring
        self.rows_done = 0
        self.started: float | None = None
        self.seconds: float | None = None
        self._first_report: tuple[float, int] | None = None  # (time, rows) at the first part's end
        self._last_report: tuple[float, int] | None = None
        self.scored = None  # core.workflow.ScoredCohort when done
        self.manifest: dict | None = None
        self.error: str | None = None
        self.internal_error = False
        self.audited = False  # the page has written the audit lines once
        self.thread: threading.Thread | None = None

    # ---- the thread --------------------------------------------------------------------------
    def start(self) -> "ScoringJob":
        import_shared_modules()  # the thread may import TensorFlow (loading the bundle)
        self.status = "running"
        self.started = time.perf_counter()
        self.thread = threading.Thread(target=self._run, daemon=True, name="score-session")
        self.thread.start()
        return self

    def _progress(self, info: dict) -> None:
        now = time.perf_counter()
        with self._lock:
            self.rows_done = int(info.get("rows_done", 0))
            if self._first_report is None:
                self._first_report = (now, self.rows_done)
            self._last_report = (now, self.rows_done)
        if self._cancel.is_set():
            raise JobCancelled

    def _run(self) -> None:
        with self._lock:
            self.waiting = True
        while not _SLOTS.acquire(timeout=0.5):
            if self._cancel.is_set():
                self._data = self._table = None
                self._finish("cancelled")
                return
        with self._lock:
            self.waiting = False
            self.started = time.perf_counter()  # the rate and the time left count from here
        try:
            self._score()
        finally:
            _SLOTS.release()

    def _score(self) -> None:
        from core.workflow import scored_from_batch
        from core.workflow.batch import Options, read_scores, score
        work = Path(tempfile.mkdtemp(prefix="heart-score-"))
        try:
            if self._table is not None:
                source = work / "cohort.parquet"
                write_cohort_parquet(self._table, source, self.part_rows)
            else:
                source = work / f"upload{self._suffix}"
                source.write_bytes(self._data)
            self._table = self._data = None  # the file holds it now; the session keeps its own copy
            options = Options(reasons=self.with_reasons, top=self.top, lang=self.lang)
            result = score(self.model_dir, [str(source)], work / "scores", options, engine="inline",
                           part_rows=self.part_rows, progress=self._progress)
            manifest = result.manifest
            if not manifest.get("parts_written"):
                failed = manifest.get("bad_files") or [{}]
                raise CoreError(str(failed[0].get("error") or "no part was scored"))
            table = read_scores(work / "scores")
            scored = scored_from_batch(self._model, table, time.perf_counter() - self.started,
                                       with_reasons=self.with_reasons, top=self.top)
        except JobCancelled:
            self._finish("cancelled")
        except CoreError as exc:
            self._finish("failed", error=str(exc))
        except Exception as exc:  # a bug: a readable line for the page, the stack (no values) for the log
            log.error("scoring job failed with %s\n%s", type(exc).__name__, "".join(traceback.format_tb(exc.__traceback__)))
            self.internal_error = True
            self._finish("failed", error=type(exc).__name__)
        else:
            self._finish("done", scored=scored, manifest=manifest)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _finish(self, status: str, scored=None, manifest=None, error: str | None = None) -> None:
        with self._lock:
            self.scored, self.manifest, self.error = scored, manifest, error
            self.seconds = time.perf_counter() - (self.started or time.perf_counter())
            self.status = status
            self._model = None
        self._done.set()

    # ---- the page's side ---------------------------------------------------------------------
    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelling(self) -> bool:
        return self._cancel.is_set() and not self.finished

    def snapshot(self) -> dict:
        """rows_done, total, elapsed, rows_per_s and seconds_left (None while there is no basis)."""
        with self._lock:
            now = time.perf_counter()
            elapsed = now - self.started if self.started else 0.0
            rate = None
            first, last = self._first_report, self._last_report
            # Timed from the first part's end: loading the model (TensorFlow's import, ~7 s the first
            # time) is behind it and would make the early rate far too low.
            if first is not None and last is not None and last[0] > first[0] and last[1] > first[1]:
                rate = (last[1] - first[1]) / (last[0] - first[0])
            elif last is not None and last[1] and elapsed > 0:
                rate = last[1] / elapsed
            left = (self.total - self.rows_done) / rate if rate else None
            return {"rows_done": self.rows_done, "total": self.total, "elapsed": elapsed, "rows_per_s": rate,
                    "seconds_left": left, "status": self.status, "cancelling": self._cancel.is_set(),
                    "waiting": self.waiting}

    def bad_rows(self) -> tuple[list[dict], int]:
        """The rows the job refused, as its manifest lists them (row, column, rule), and their count."""
        manifest = self.manifest or {}
        return list(manifest.get("bad_rows") or []), int((manifest.get("rows") or {}).get("bad", 0))


def progress_text(snap: dict) -> str:
    """'1,500 of 20,000 patients · 420 patients/s · about 44 s left'."""
    from ui.i18n import t
    if snap.get("waiting"):
        return t("scoring.job_waiting", total=f"{snap['total']:,}")
    parts = [t("scoring.job_rows", done=f"{snap['rows_done']:,}", total=f"{snap['total']:,}")]
    if snap.get("rows_per_s"):
        parts.append(t("scoring.job_rate", rate=f"{snap['rows_per_s']:,.0f}"))
    left = snap.get("seconds_left")
    parts.append(t("scoring.job_left", time=duration_text(left)) if left is not None
                 else t("scoring.job_starting", seconds=f"{snap['elapsed']:.0f}"))
    return " · ".join(parts)


def seconds_text(seconds: float) -> str:
    """A measured time in seconds: whole from 10 s on ("152 s", not "152.51 s"); a short run keeps hundredths."""
    return f"{seconds:.0f}" if seconds >= 10 else f"{seconds:.2f}"


def duration_text(seconds: float) -> str:
    from ui.i18n import t
    seconds = max(float(seconds), 1.0)
    if seconds < 90:
        return t("scoring.seconds", n=f"{seconds:.0f}")
    if seconds < 90 * 60:
        return t("scoring.minutes", n=f"{seconds / 60:.0f}")
    return t("scoring.hours", n=f"{seconds / 3600:.1f}")
