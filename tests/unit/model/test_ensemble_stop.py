"""A stop during ensemble training, and bootstrap resamples that must hold both outcomes (issue 13, bugs 3, 7)."""
from __future__ import annotations

import numpy as np
import pytest

from core.data import DEMO_NAME, cleveland_schema, cohort_from_frame, demo_cohort
from core.model import TrainConfig, load_bundle, save_bundle
from core.model import estimator
from core.workflow import card_markdown, train_on_cohort

CONFIG = TrainConfig(epochs=5, early_stopping=False, members=3)


@pytest.fixture(scope="module")
def cohort():
    return cohort_from_frame(demo_cohort(), cleveland_schema(), name=DEMO_NAME, synthetic=True)


def test_a_stop_during_the_ensemble_keeps_the_finished_members_and_says_so(cohort, tmp_path):
    calls = []

    def should_stop():
        # first network: 5 calls; member 2: 1 at its start + 5; member 3: 1 at its start, then 2 epochs
        calls.append(1)
        return len(calls) > 14

    result = train_on_cohort(cohort, CONFIG, should_stop=should_stop)
    model = result.model
    assert model.stopped_by_user_
    assert model.n_members_ == 2 and model.config.members == 2  # the interrupted third member is not kept
    assert model.members_requested_ == 3
    path = save_bundle(model, tmp_path / "b", result.metrics, "fp", "stopped")
    loaded = load_bundle(path)
    assert loaded.n_members_ == 2 and loaded.stopped_by_user_
    card = card_markdown(loaded.metadata_)
    assert "stopped by hand" in card and "2 of the 3 ensemble networks" in card


def test_a_stop_before_a_member_starts_is_recorded(cohort):
    calls = []
    result = train_on_cohort(cohort, CONFIG, should_stop=lambda: calls.append(1) or len(calls) > 5)
    assert result.model.stopped_by_user_ and result.model.n_members_ == 1 and result.model.config.members == 1


def test_an_ensemble_that_is_not_stopped_is_not_marked(cohort):
    result = train_on_cohort(cohort, CONFIG.model_copy(update={"members": 2}), should_stop=lambda: False)
    assert not result.model.stopped_by_user_ and result.model.n_members_ == 2


_default_rng = np.random.default_rng


class _OneRowRng:
    """A generator whose plain bootstrap always draws row 0 (a one-class resample every time)."""

    def __init__(self, seed):
        self._rng = _default_rng(seed)

    def integers(self, low, high, size):
        return np.zeros(size, dtype=int)

    def __getattr__(self, name):
        return getattr(self._rng, name)


def test_bootstrap_member_never_trains_on_one_outcome(monkeypatch):
    model = estimator.RiskModel(cleveland_schema(), TrainConfig())
    seen = []
    monkeypatch.setattr(model, "_train_network", lambda trainer, X, y, *a, **k: (seen.append(y) or ([], None, None)))
    monkeypatch.setattr(estimator.np.random, "default_rng", _OneRowRng)
    model._stopped = False
    y = np.array([0.0] * 30 + [1.0] * 10)
    model._bootstrap_member(None, np.zeros((40, 3)), y, None, None, 1)
    assert len(seen[0]) == 40 and 0 < seen[0].sum() < 40
    assert seen[0].sum() == 10  # the fallback is stratified: each outcome keeps its count


def test_bootstrap_rows_refuses_one_outcome():
    from core.errors import CohortError
    with pytest.raises(CohortError):
        estimator.bootstrap_rows(np.ones(10), np.random.default_rng(0))
