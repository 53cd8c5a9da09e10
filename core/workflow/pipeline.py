"""Cohort in, trained and evaluated model out: the one training path the CLI and the dashboard share."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.data.cohort import Cohort
from core.metrics.decision import proposed_threshold
from core.metrics.discrimination import binary_metrics
from core.metrics.intervals import interval_fields, metric_intervals
from core.model.config import TrainConfig, split
from core.explain.background import summarise_background
from core.model.estimator import RiskModel


@dataclass
class TrainResult:
    model: RiskModel
    metrics: dict              # test split, at ``threshold``
    test_index: np.ndarray     # row positions of the test split in the cohort table
    test_y: np.ndarray
    test_risk: np.ndarray
    sizes: dict                # rows in train / validation / test
    threshold: float = 0.5     # proposed default decision threshold, chosen on the training split
    threshold_rule: str = "fixed"  # 'fixed' (0.5, a common outcome) or 'youden' (a rare one)


def train_on_cohort(cohort: Cohort, config: TrainConfig | None = None, progress=None,
                    should_stop=None, network_progress=None, run=None) -> TrainResult:
    """Stratified 70/15/15 split; preprocessing and network fitted on the training split only;
    early stopping on the validation split; metrics on the untouched test split. ``run``: how the
    ensemble's networks are trained (RiskModel.fit; core.workflow.engine.fitting_run for Ray)."""
    config = config or TrainConfig()
    df, y = cohort.df.reset_index(drop=True), np.asarray(cohort.y, dtype=float)
    train_idx, val_idx, test_idx = split(y, config)
    model = RiskModel(cohort.schema, config).fit(
        df.iloc[train_idx], y[train_idx], df.iloc[val_idx], y[val_idx],
        progress=progress, should_stop=should_stop, network_progress=network_progress,
        run=run)
    summarise_background(model)  # cluster centres, not patients' rows, from here on (and in its bundle)
    test_risk = model.predict_risk(df.iloc[test_idx])
    # 0.5 flags nobody for a 15% outcome: a rare outcome gets a threshold chosen on the training split.
    threshold, rule, _ = proposed_threshold(y[train_idx], model.predict_risk(df.iloc[train_idx]))
    metrics = binary_metrics(y[test_idx], test_risk, threshold)
    # Stored with the bundle: its model card and reports give each test metric with its 95% interval.
    metrics.update(interval_fields(metric_intervals(y[test_idx], test_risk, threshold)))
    sizes = {"train": len(train_idx), "validation": len(val_idx), "test": len(test_idx)}
    return TrainResult(model, metrics, np.asarray(test_idx), y[test_idx], test_risk, sizes, threshold, rule)
