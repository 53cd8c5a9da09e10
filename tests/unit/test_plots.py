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


def test_waterfall_sorts_by_effect_and_takes_translated_labels():
    reasons = pd.DataFrame({"label": ["small", "large down", "medium up"], "shap_value": [0.01, -0.2, 0.05]})
    fig = plots.waterfall(reasons, 0.3, 0.16, max_features=2, title="为何", x_title="风险，%",
                          start_label="平均患者", end_label="该患者", other_label="其他 {n} 项")
    trace = fig.data[0]
    # top-down on the reversed axis: average patient, the smaller effects, the largest, this patient
    assert list(trace.y) == ["平均患者", "其他 2 项", "large down", "该患者"]
    assert np.allclose(np.asarray(trace.x, dtype=float), [30, 6, -20, 16])
    assert list(trace.text) == ["30%", "+6.0", "-20.0", "16%"]
    assert fig.layout.title.text == "为何" and fig.layout.xaxis.title.text == "风险，%"
    assert fig.layout.yaxis.autorange == "reversed"


def test_sensitivity_strip_marks_the_current_value():
    curve = pd.DataFrame({"value": [60.0, 120.0, 180.0], "risk": [0.6, 0.4, 0.2]})
    fig = plots.sensitivity_strip(curve, 150, "Max heart rate", "bpm", title="{axis} 变化时的风险", now_label="当前")
    (line,) = fig.layout.shapes
    assert line.x0 == line.x1 == 150 and (line.yref, line.y0, line.y1) == ("y domain", 0, 1)
    assert fig.layout.annotations[0].text == "当前" and fig.layout.annotations[0].x == 150
    assert fig.layout.xaxis.title.text == "Max heart rate (bpm)" and list(fig.layout.yaxis.range) == [0, 1]
    assert fig.layout.title.text == "Max heart rate (bpm) 变化时的风险"


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


def test_a_long_waterfall_label_wraps_instead_of_running_off_the_figure():
    long = "Major vessels coloured by fluoroscopy (0 vessels)"
    reasons = pd.DataFrame({"label": [long, "荧光透视着色的主要血管数（0 支）", "Age 56 years"],
                            "shap_value": [0.1, -0.05, 0.01]})
    fig = plots.waterfall(reasons, 0.3, 0.36)
    y = list(fig.data[0].y)
    assert "Major vessels coloured by<br>fluoroscopy (0 vessels)" in y and "Age 56 years" in y
    assert "荧光透视着色的主要血管数（0<br>支）" in y
    assert fig.layout.yaxis.automargin is True
    assert plots.wrap_label("x" * 70).split("<br>") == ["x" * 28, "x" * 28, "x" * 14]


def test_a_coded_distribution_keeps_its_code_names_whole_and_apart_from_the_legend():
    values = pd.Series(["asymptomatic", "non-anginal pain", "typical angina", "asymptomatic"])
    fig = plots.distribution_by_outcome(values, pd.Series([1.0, 0.0, 0.0, 1.0]), "Chest pain type", True)
    assert fig.layout.xaxis.tickangle == 0 and fig.layout.xaxis.automargin is True  # not rotated out of the figure
    assert "non-anginal<br>pain" in list(fig.data[0].x)


def test_the_page_s_distribution_puts_its_legend_above_the_plot(monkeypatch):
    import ui.figures as figures
    from core.data import cleveland_schema
    from types import SimpleNamespace
    monkeypatch.setattr(figures, "lang", lambda: "en")
    monkeypatch.setattr(figures, "t", lambda key, **kw: key)
    schema = cleveland_schema()
    cohort = SimpleNamespace(df=pd.DataFrame({"cp": [1.0, 4.0, 4.0]}), y=np.array([0.0, 1.0, 1.0]))
    fig = figures.distribution(cohort, schema["cp"])
    assert fig.layout.legend.yanchor == "bottom" and fig.layout.legend.y >= 1  # not over the codes' names


def test_calibration_bands_take_the_diagonals_name_in_the_page_language():
    """QA in Chromium: the external-validation chart's diagonal read "perfect" on the Chinese page (the
    calibration tab renamed it afterwards, the external tab did not)."""
    curve = pd.DataFrame({"mean_predicted": [0.2, 0.6], "observed_rate": [0.25, 0.55], "low": [0.1, 0.4],
                          "high": [0.4, 0.7], "n": [20, 20]})
    fig = plots.calibration_bands({"模型": curve}, perfect="理想校准")
    assert [trace.name for trace in fig.data] == ["理想校准", "模型"]
