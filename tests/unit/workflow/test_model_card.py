"""The model card: built from a bundle's metadata dict (or a just-trained model's), in Markdown and HTML."""
import json
import re
from types import SimpleNamespace

import pytest

from core.model import TrainConfig
from core.workflow import (METRIC_KEYS, card_extra, card_html, card_markdown, cohort_summary, known_limits, training_metadata)
from core.i18n import tr
from core.data import cleveland_schema

METRICS = {"n": 46, "prevalence": 0.456, "threshold": 0.5, "accuracy": 0.8261, "sensitivity": 0.7619,
           "specificity": 0.88, "ppv": 0.8421, "npv": 0.8148, "roc_auc": 0.9124, "pr_auc": 0.8876,
           "brier": 0.1234, "calibration_slope": 0.9312, "calibration_intercept": -0.0456,
           "tn": 22, "fp": 3, "fn": 5, "tp": 16}


def fake_model(**overrides):
    values = dict(schema=cleveland_schema(), config=TrainConfig(), best_epoch_=17, epochs_run_=37, n_train_=211,
                  n_val_=46, prevalence_=0.46, stopped_by_user_=False)
    values.update(overrides)
    return SimpleNamespace(**values)


def cohort_dict(**overrides):
    values = {"name": "Cleveland clinic 1988", "rows": 303, "rows_in": 303, "prevalence": 0.4587,
              "fingerprint": "ab" * 32, "synthetic": False}
    values.update(overrides)
    return values


def meta(**overrides):
    m = training_metadata(fake_model(), METRICS, name="heart-mlp", cohort=cohort_dict(),
                          sizes={"train": 211, "validation": 46, "test": 46},
                          created_utc="2025-01-02T03:04:05+00:00").to_json_dict()
    m.update(overrides)
    return m


def test_the_training_metadata_has_the_bundle_shape():
    m = meta()
    assert m["config"]["hidden"] == [10, 5]
    assert m["data_fingerprint"] == "ab" * 32
    sizes = {"train": 211, "validation": 46, "test": 46}
    assert {k: m["extra"][k] for k in ("cohort", "sizes")} == card_extra(cohort_dict(), sizes)
    assert json.loads(json.dumps(m)) == m  # plain JSON, like metadata.json


def test_the_card_says_what_the_metadata_says():
    md = card_markdown(meta())
    for text in ("# Model card: heart-mlp", "2025-01-02T03:04:05+00:00", "Cleveland clinic 1988", "303", "45.9%",
                 "ab" * 32, "211 / 46 / 46", "num > 0", "0.912", "0.762", "0.880", "0.123", "0.931", "-0.046",
                 "hidden layers 10-5", "Adam", "ReLU", "binary cross-entropy", "Best epoch (weights kept) | 17",
                 "Epochs run | 37"):
        assert text in md, text
    assert "Decision support for clinicians, not a diagnosis" in md


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_the_intended_use_names_the_specialist_inputs_and_the_bands_status(lang):
    # The inputs include thallium scintigraphy and fluoroscopy: not "routine findings"; meant for patients
    # who had those tests. The bands are no guideline's and say who set them.
    md = card_markdown(meta(), lang=lang)
    words = {"en": ("thallium scintigraphy", "fluoroscopy", "who have had the tests", "no clinician has chosen"),
             "zh": ("铊心肌灌注显像", "冠状动脉透视", "已完成这些检查的患者", "尚无临床医生")}[lang]
    for text in words:
        assert text in md, text
    assert "from routine clinical and exercise-test findings" not in md and "根据常规临床" not in md
    banded = dict(meta(), bands={"low": 0.1, "high": 0.5, "set_by": "Dr Li", "set_utc": "2026-11-30T01:30:00+00:00"})
    assert "Dr Li" in card_markdown(banded, lang=lang) and "2026-11-30 01:30 UTC" in card_markdown(banded, lang=lang)


def test_every_metric_has_a_row():
    md = card_markdown(meta())
    for key in METRIC_KEYS:
        assert f"| {tr(f'metric.{key}')} | {METRICS[key]:.3f} |" in md


def test_every_model_feature_is_listed_with_its_range_or_codes():
    md = card_markdown(meta())
    assert "| chol | Serum cholesterol | numeric | 80–700 mg/dl |" in md
    assert "typical angina, atypical angina, non-anginal pain, asymptomatic" in md
    assert "| num |" not in md  # the target is not an input


def test_a_metric_that_was_not_computed_says_so():
    md = card_markdown(meta(metrics={**METRICS, "calibration_slope": None}))
    assert f"| {tr('metric.calibration_slope')} | not recorded |" in md


def test_cross_validation_appears_only_when_recorded():
    assert "## Cross-validation" not in card_markdown(meta())
    cv = {"n_splits": 5, "n_repeats": 5, "summary": [
        {"model": "mlp", "metric": "roc_auc", "mean": 0.9012, "sd": 0.0301, "low": 0.84, "high": 0.95}]}
    m = meta()
    m["extra"]["cv"] = cv
    md = card_markdown(m)
    assert "## Cross-validation" in md
    assert "| mlp | roc_auc | 0.901 | 0.030 | 0.840–0.950 |" in md
    assert "5-fold cross-validation repeated 5 times" in md


def test_the_limits_follow_the_data():
    real = known_limits(meta())
    assert not any("synthetic" in line for line in real)
    synthetic = meta()
    synthetic["extra"]["cohort"]["synthetic"] = True
    assert "synthetic" in known_limits(synthetic)[0]
    assert any("211 patients" in line for line in real)
    off = meta(metrics={**METRICS, "calibration_slope": 0.55})
    assert any("0.55" in line and "recalibration" in line for line in known_limits(off))
    assert not any("recalibration" in line for line in real)


def test_a_loaded_bundle_without_extra_still_gives_a_card():
    m = {"name": "old", "created_utc": "2024-05-06T07:08:09+00:00", "schema": json.loads(cleveland_schema().to_json()),
         "config": TrainConfig().model_dump(mode="json"), "data_fingerprint": "cd" * 32, "metrics": METRICS,
         "history": {"loss": [0.7, 0.6, 0.5]}, "best_epoch": 2, "n_train": 211, "n_val": 46, "extra": {}}
    md = card_markdown(m)
    assert "| Source | not recorded |" in md
    assert "Epochs run | 3" in md
    assert "cd" * 32 in md


def test_chinese_card_uses_the_chinese_table_and_labels():
    md = card_markdown(meta(), lang="zh")
    assert "# 模型卡：heart-mlp" in md
    assert "## 预期用途" in md and "## 已知局限" in md
    assert "血清胆固醇" in md and "典型心绞痛" in md
    assert "Intended use" not in md
    # the settings and kinds in words, as the training form shows them (issue 16.9: "bce / adam / relu")
    cells = {c.strip() for line in md.splitlines() if line.startswith("|") for c in line.split("|")}
    assert {"二元交叉熵", "Adam（自适应矩估计）", "ReLU（线性整流）", "数值", "分类"} <= cells
    assert not {"bce", "adam", "relu", "numeric", "categorical", "ordinal", "binary"} & cells


def test_html_escapes_user_text():
    m = meta(name="<script>alert(1)</script>")
    m["extra"]["cohort"]["name"] = 'ward "A" & <b>B</b>'
    page = card_html(m)
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "ward &quot;A&quot; &amp; &lt;b&gt;B&lt;/b&gt;" in page
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")


def test_html_and_markdown_carry_the_same_numbers():
    m = meta()
    numbers = set(re.findall(r"\d+\.\d{3}", card_markdown(m)))
    assert numbers and numbers <= set(re.findall(r"\d+\.\d{3}", card_html(m)))


def test_markdown_table_cells_cannot_break_the_table():
    m = meta()
    m["extra"]["cohort"]["name"] = "a | b"
    assert "| Source | a \\| b |" in card_markdown(m)


def test_cohort_summary_reads_a_cohort():
    from core.data import cohort_from_frame
    from core.data import demo_cohort
    cohort = cohort_from_frame(demo_cohort(n=50, seed=1), cleveland_schema(), name="demo", synthetic=True)
    summary = cohort_summary(cohort)
    assert summary == {"name": "demo", "rows": cohort.n, "rows_in": 50, "prevalence": pytest.approx(cohort.prevalence),
                       "fingerprint": cohort.fingerprint, "synthetic": True}


def _metrics_with_intervals(n=46, seed=3):
    import numpy as np
    from core.metrics import binary_metrics, interval_fields, metric_intervals
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.45).astype(float)
    p = np.clip(0.25 * y + 0.75 * rng.random(n), 0, 1)
    return {**binary_metrics(y, p), **interval_fields(metric_intervals(y, p, n_boot=200))}


def test_test_metrics_show_their_stored_95_percent_intervals():
    metrics = _metrics_with_intervals()
    md = card_markdown(meta(metrics=metrics))
    for key in ("accuracy", "sensitivity", "specificity", "ppv", "npv", "roc_auc", "brier",
                "calibration_slope", "calibration_intercept"):
        low, high = metrics[f"{key}_low"], metrics[f"{key}_high"]
        assert low < metrics[key] < high  # holds the estimate, has a width
        assert f"| {tr(f'metric.{key}')} | {metrics[key]:.3f} ({low:.3f}–{high:.3f}) |" in md
    assert "Wilson" in md and "DeLong" in md


def test_too_few_test_patients_with_disease_says_so_instead_of_a_number():
    metrics = _metrics_with_intervals()
    metrics.update(roc_auc_too_few=True, roc_auc_low=None, roc_auc_high=None)
    md = card_markdown(meta(metrics=metrics))
    assert f"| {tr('metric.roc_auc')} | {tr('metric.too_few')} |" in md
    assert f"{metrics['roc_auc']:.3f}" not in md.split(tr("metric.roc_auc"))[1].split("\n")[0]


def test_chinese_card_says_units_subgroups_and_the_demo_name_in_chinese():
    """QA (issue 16.9): "18–100 years", subgroup rows "sex: male", "age: < 45" and the demo cohort's English
    name on the Chinese card. A subgroup is stored in the language of the session that computed it."""
    from core.data.demo import DEMO_NAME
    groups = [{"column": "sex", "group": "male", "n": 30, "prevalence": 0.5, "small": False, "too_few": True},
              {"column": "sex", "group": "female", "n": 12, "prevalence": 0.3, "small": True, "too_few": True},
              {"column": "age", "group": "< 45", "n": 20, "prevalence": 0.2, "small": False, "too_few": True}]
    m = meta(extra={**meta()["extra"], "trust": {"n_test": 46, "roc_auc": 0.9, "subgroups": groups},
                    "cohort": cohort_dict(name=DEMO_NAME, synthetic=True)})
    md = card_markdown(m, lang="zh")
    cells = {c.strip() for line in md.splitlines() if line.startswith("|") for c in line.split("|")}
    assert {"性别：男", "性别：女 *", "年龄：< 45", "18–100 岁", tr("cohort.demo_name", "zh")} <= cells, cells
    assert not re.search(r"\byears\b|sex:|age:|male|Synthetic|sigmoid", md)
    english = card_markdown(m, lang="en")
    assert "| Sex: male |" in english and "| Age: < 45 |" in english and "18–100 years" in english
