"""Progress over a whole training job (issue 16.6): an ensemble's networks one after another, with the
time left estimated from the networks already done, in the same words on the Train page and the sidebar."""
from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest

from i18n_table import tr
from ui.jobs import TrainingJob, job_progress, progress_text


def test_the_fraction_covers_every_network_and_the_time_left_comes_from_the_finished_ones():
    # network 1 of 5, early stopping: no basis for the time left yet; the bar is a fifth of the job at most
    first = job_progress(1, 5, 50, 2000, [], [], 4.0, early_stopping=True)
    assert first["fraction"] == pytest.approx(50 / 2000 / 5) and first["seconds_left"] is None
    # network 3 of 5 after two networks of ~100 epochs and 8 s each: 4 s into the third
    later = job_progress(3, 5, 50, 2000, [100, 100], [8.0, 8.0], 4.0, early_stopping=True)
    assert later["fraction"] == pytest.approx((2 + 0.5) / 5)
    assert later["seconds_left"] == pytest.approx(4.0 + 2 * 8.0)
    # no early stopping: every network runs the limit; the per-epoch time gives the rest
    plain = job_progress(1, 2, 11, 100, [], [], 2.0, early_stopping=False)  # 10 epochs since the first ended
    assert plain["seconds_left"] == pytest.approx(0.2 * (200 - 11))


class Config:
    epochs, members, early_stopping = 20, 3, True


def test_a_job_reports_network_k_of_n_in_the_page_s_and_the_sidebar_s_words():
    step = threading.Event()
    seen = []

    def train(cohort, config, progress=None, should_stop=None, network_progress=None):
        for k in (1, 2, 3):
            for epoch in range(1, 6):
                if k == 1:
                    progress(epoch, {"loss": 1.0 / epoch})
                network_progress(k, 3, epoch)
                time.sleep(0.002)
            if k == 2:
                step.set()
                while not seen:
                    time.sleep(0.005)
        return SimpleNamespace(model=SimpleNamespace())

    job = TrainingJob(cohort=None, config=Config(), train=train).start()
    assert step.wait(10)
    snap = job.snapshot()
    seen.append(snap)
    assert snap["network"] == 2 and snap["networks"] == 3 and snap["network_epoch"] == 5
    assert snap["fraction"] == pytest.approx((1 + 1.0) / 3)  # the second network ran as long as the first
    assert snap["seconds_left"] is not None
    text = progress_text(snap, Config.epochs)
    assert text.startswith(tr("train.progress_network", network=2, networks=3))
    assert tr("train.progress", epoch=5, epochs=20, seconds="0") in text
    assert job.wait(10)


def test_the_last_networks_time_up_says_finishing_not_one_second_left():
    """QA: 'about 1 s left' stood for 12 s while the test metrics and intervals were computed."""
    snap = {"networks": 5, "network": 5, "network_epoch": 29, "epoch": 29, "elapsed": 14.0, "seconds_left": 0.0,
            "early_stopping": True}
    assert progress_text(snap, 100).endswith(tr("train.progress_finishing"))
    snap.update(network=4, seconds_left=0.0)  # a network still to come: the estimate stands
    assert progress_text(snap, 100).endswith(tr("train.progress_left", seconds="1"))
