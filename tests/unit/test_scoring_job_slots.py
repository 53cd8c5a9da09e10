"""ui.scoring_job: the Score page's background jobs of all sessions share a few slots (one on two cores),
a job waiting for one says so and can be cancelled; a job that cannot load its model fails with the
reason, never a traceback."""
from __future__ import annotations

import threading
import time

import pandas as pd
import pytest

import ui.scoring_job as scoring_job
from core.data import demo_cohort
from i18n_table import tr


@pytest.fixture
def one_slot(monkeypatch):
    slots = threading.BoundedSemaphore(1)
    monkeypatch.setattr(scoring_job, "_SLOTS", slots)
    return slots


def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_job_waits_for_a_slot_says_so_and_can_be_cancelled_meanwhile(one_slot, tmp_path, monkeypatch):
    monkeypatch.setattr("ui.i18n.lang", lambda: "en")
    one_slot.acquire()  # another session's job is scoring
    try:
        job = scoring_job.ScoringJob(tmp_path / "no-bundle", name="x", total=20_000, with_reasons=True, lang="en",
                                     table=demo_cohort(n=10)).start()
        wait_for(lambda: job.snapshot()["waiting"])
        snap = job.snapshot()
        assert snap["rows_done"] == 0 and not job.finished
        assert scoring_job.progress_text(snap) == tr("scoring.job_waiting", total="20,000")
        job.cancel()
        assert job.wait(5) and job.status == "cancelled"
    finally:
        one_slot.release()


def test_a_job_that_cannot_load_its_model_fails_with_the_reason_and_frees_its_slot(one_slot, tmp_path):
    job = scoring_job.ScoringJob(tmp_path / "no-bundle", name="x", total=10, with_reasons=True, lang="en",
                                 table=demo_cohort(n=10)).start()
    assert job.wait(30)
    assert job.status == "failed" and not job.internal_error and "metadata.json" in job.error
    assert one_slot.acquire(timeout=1)  # released
    one_slot.release()
    assert not list(tmp_path.glob("heart-score-*"))


def test_part_sizes_keep_progress_moving():
    assert scoring_job.part_rows_for(6_000) == scoring_job.PART_ROWS_MIN
    assert scoring_job.part_rows_for(100_000) == 2_000
    assert scoring_job.part_rows_for(10_000_000) == 20_000  # never more than the CLI's parts


def test_the_cohort_parquet_has_one_row_group_per_part(tmp_path):
    import pyarrow.parquet as pq
    df = demo_cohort(n=1_234)
    df["ward"] = ["A", 3, None, "B"] * 308 + ["C", "D"]  # mixed text and numbers: written as text
    scoring_job.write_cohort_parquet(df, tmp_path / "c.parquet", 500)
    meta = pq.ParquetFile(tmp_path / "c.parquet").metadata
    assert [meta.row_group(g).num_rows for g in range(meta.num_row_groups)] == [500, 500, 234]
    back = pd.read_parquet(tmp_path / "c.parquet")
    assert back["ward"].tolist()[:2] == ["A", "3"] and pd.isna(back["ward"][2])
    pd.testing.assert_frame_equal(back.drop(columns="ward"), df.drop(columns="ward"))
