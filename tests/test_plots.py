import numpy as np
import pandas as pd

from core import plots


def test_history_frame_is_tidy_and_keeps_order():
    history = {"loss": [0.7, 0.5], "val_loss": [0.72, 0.6], "auc": [0.6, 0.8], "val_auc": [0.55, 0.79], "lr": [1, 1]}
    frame = plots.history_frame(history)
    assert set(frame.metric) == {"loss", "auc"}  # unknown keys left out
    val = frame[(frame.metric == "loss") & (frame.split == "validation")]
    assert val.epoch.tolist() == [1, 2] and val.value.tolist() == [0.72, 0.6]


def test_training_curves_have_both_splits():
    fig = plots.training_curves({"loss": [0.7, 0.5, 0.4], "val_loss": [0.7, 0.6, 0.65]}, "loss", best_epoch=2)
    names = [trace.name for trace in fig.data]
    assert names == ["training", "validation"]
    assert list(fig.data[1].y) == [0.7, 0.6, 0.65]


def test_waterfall_adds_up_to_the_patient_risk():
    reasons = pd.DataFrame({"label": [f"f{i}" for i in range(15)], "shap_value": np.linspace(-0.05, 0.09, 15)})
    base = 0.4
    risk = base + reasons.shap_value.sum()
    fig = plots.waterfall(reasons, base, risk, max_features=8)
    trace = fig.data[0]
    x = np.asarray(trace.x, dtype=float)
    assert trace.measure[0] == "absolute" and trace.measure[-1] == "total"
    assert np.isclose(x[0] + x[1:-1].sum(), risk * 100)  # bars reach the total
    assert len(trace.y) == 8 + 2 and "other features" in trace.y[1]


def test_sensitivity_strip_and_calibration():
    curve = pd.DataFrame({"value": [100, 150, 200], "risk": [0.2, 0.3, 0.5]})
    fig = plots.sensitivity_strip(curve, 150, "Resting blood pressure", "mmHg")
    assert list(fig.data[0].y) == [0.2, 0.3, 0.5]
    table = pd.DataFrame({"mean_predicted": [0.1, 0.5], "observed_rate": [0.12, 0.45], "n": [10, 12]})
    cal = plots.calibration_curve(table)
    assert list(cal.data[1].x) == [0.1, 0.5]


def test_distribution_by_outcome_splits_groups():
    values = pd.Series([1.0, 1.0, 2.0, 3.0, 3.0])
    outcome = pd.Series([0.0, 1.0, 1.0, 0.0, 1.0])
    fig = plots.distribution_by_outcome(values, outcome, "Chest pain", categorical=True)
    assert [t.name for t in fig.data] == ["no disease", "disease"]
    assert sum(fig.data[1].y) == 3
