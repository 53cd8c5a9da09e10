"""Counterfactuals: the smallest plausible changes of modifiable features that bring a risk under a target.

The known answers come from a logistic model (a Network with no hidden layer): its logit is linear in the
scaled features, so the cheapest change per training SD is to move the feature with the largest
|weight| (per SD) until the logit crosses logit(target) — computable by hand.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from core.workflow import counterfactuals, default_modifiable, direction_conflicts, sentence, to_json, whatif_meaning
from core.errors import PatientError
from core.model import RiskModel
from core.model import Network
from core.model import Preprocessor
from core.data import Code, Feature, Schema


def logit(p: float) -> float:
    return math.log(p / (1 - p))


def toy_schema() -> Schema:
    return Schema(features=[
        Feature(name="bp", kind="numeric", label="Blood pressure", label_zh="血压", unit="mmHg", min=80, max=220,
                step=1, modifiable=True, direction="decrease"),
        Feature(name="ldl", kind="numeric", label="LDL", label_zh="低密度脂蛋白", unit="mg/dl", min=40, max=300,
                step=1, modifiable=True, direction="decrease"),
        Feature(name="smoker", kind="binary", label="Smoker", label_zh="吸烟", modifiable=True, direction="decrease",
                codes=[Code(value=0.0, label="no", label_zh="否"), Code(value=1.0, label="yes", label_zh="是")]),
        Feature(name="age", kind="numeric", label="Age", label_zh="年龄", unit="years", min=18, max=100, step=1),
        Feature(name="outcome", role="target", kind="binary"),
    ], target="outcome", positive_rule="> 0")


def toy_frame(bp_low: float = 100) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    n = 40
    return pd.DataFrame({
        "bp": np.r_[bp_low, 200, rng.integers(110, 190, n - 2)].astype(float),
        "ldl": np.r_[60, 280, rng.integers(70, 260, n - 2)].astype(float),
        "smoker": rng.integers(0, 2, n).astype(float),
        "age": rng.integers(30, 80, n).astype(float),
        "outcome": rng.integers(0, 2, n).astype(float),
    })


def logistic_model(weights: dict, bias: float, frame: pd.DataFrame | None = None) -> RiskModel:
    """Logistic regression on the preprocessor's inputs: logit = bias + sum w * input."""
    schema = toy_schema()
    pre = Preprocessor(schema).fit(toy_frame() if frame is None else frame)
    W = np.array([[weights.get(name, 0.0)] for name in pre.output_names_])
    model = RiskModel(schema)
    model.preprocessor_ = pre
    model.networks_ = [Network([(W, np.array([bias]))])]
    return model


def scaled(model, name: str, value: float) -> float:
    pre = model.preprocessor_
    j = pre.feature_names.index(name)
    return (value - pre.center_[j]) / pre.scale_[j]


PATIENT = {"bp": 170.0, "ldl": 200.0, "smoker": 1.0, "age": 60.0}


def test_one_feature_known_answer():
    # bp moves the logit 1.5 per SD, ldl 0.5 per SD, smoking 0.2: bp is the cheapest lever.
    model = logistic_model({"bp": 1.5, "ldl": 0.5, "smoker": 0.2, "age": 0.3}, bias=0.0)
    rest = sum(w * scaled(model, n, PATIENT[n]) for n, w in (("ldl", 0.5), ("age", 0.3))) + 0.2
    # bp_new must give 1.5 * scaled(bp_new) + rest < logit(0.2): the largest whole mmHg below the bound
    pre = model.preprocessor_
    j = pre.feature_names.index("bp")
    bound = pre.center_[j] + pre.scale_[j] * (logit(0.2) - rest) / 1.5
    expected = math.ceil(bound) - 1
    assert model.predict_risk_raw(pre.encode(pd.DataFrame([PATIENT])))[0] > 0.2

    result = counterfactuals(model, PATIENT, target=0.2)
    first = result.alternatives[0]
    assert [c.feature for c in first.changes] == ["bp"]
    assert first.changes[0].new == expected
    assert first.changes[0].old == 170.0
    assert first.distance == pytest.approx((170 - expected) / pre.scale_[j])
    assert first.risk_after < 0.2 <= first.risk_before
    # one mmHg less of a change would not reach the target
    values = dict(PATIENT, bp=expected + 1)
    assert model.predict_risk_raw(pre.encode(pd.DataFrame([values])))[0] >= 0.2


def test_a_bounded_lever_is_used_to_its_bound_then_the_next():
    # bp alone cannot reach the target within the training range (lowest seen: 150), so the cheapest
    # change takes bp to 150 and lowers ldl just enough.
    frame = toy_frame(bp_low=150)
    frame["bp"] = frame["bp"].clip(lower=150)
    model = logistic_model({"bp": 1.5, "ldl": 0.5, "smoker": 0.05}, bias=0.0, frame=frame)
    pre = model.preprocessor_
    assert pre.raw_min_[pre.feature_names.index("bp")] == 150
    fixed = 1.5 * scaled(model, "bp", 150) + 0.05
    k = pre.feature_names.index("ldl")
    bound = pre.center_[k] + pre.scale_[k] * (logit(0.2) - fixed) / 0.5
    expected_ldl = math.ceil(bound) - 1
    assert expected_ldl >= pre.raw_min_[k], "the test's numbers must make the pair reachable"

    result = counterfactuals(model, PATIENT, target=0.2)
    first = result.alternatives[0]
    assert sorted(c.feature for c in first.changes) == ["bp", "ldl"]
    new = {c.feature: c.new for c in first.changes}
    assert new == {"bp": 150.0, "ldl": expected_ldl}
    # outside the training range (within the plausible 80-220) bp alone would do it
    wide = counterfactuals(model, PATIENT, target=0.2, within_training=False)
    assert [c.feature for c in wide.alternatives[0].changes] == ["bp"]
    assert wide.alternatives[0].changes[0].new < 150


def test_alternatives_are_diverse_plausible_and_really_under_the_target():
    model = logistic_model({"bp": 1.0, "ldl": 0.9, "smoker": 1.2, "age": 0.4}, bias=0.5)
    result = counterfactuals(model, PATIENT, target=0.3)
    assert 1 <= len(result.alternatives) <= 3
    sets = [frozenset(a.features) for a in result.alternatives]
    assert len(set(sets)) == len(sets)
    for i, a in enumerate(sets):  # no answer is a cheaper answer plus more changes
        assert not any(b < a for b in sets[:i])
    distances = [a.distance for a in result.alternatives]
    assert distances == sorted(distances)
    pre, schema = model.preprocessor_, model.schema
    for alt in result.alternatives:
        assert "age" not in alt.features  # not modifiable
        assert alt.values["age"] == PATIENT["age"]
        risk = model.predict_risk_raw(pre.encode(pd.DataFrame([alt.values])))[0]
        assert risk == pytest.approx(alt.risk_after) and risk < 0.3
        for change in alt.changes:
            f = schema[change.feature]
            if f.kind == "binary":
                assert change.new in f.code_values() and change.new != change.old
                assert change.cost == 1
            else:
                j = pre.feature_names.index(f.name)
                assert max(f.min, pre.raw_min_[j]) <= change.new <= min(f.max, pre.raw_max_[j])
                assert float(change.new).is_integer()  # on the 1-unit step grid
    assert result.rows_scored > 0


def test_smoking_alone_when_it_is_the_cheapest():
    model = logistic_model({"bp": 0.1, "ldl": 0.1, "smoker": 3.0}, bias=-2.0)
    result = counterfactuals(model, PATIENT, target=0.2)
    first = result.alternatives[0]
    assert first.features == ["smoker"] and first.changes[0].new == 0.0 and first.distance == 1


def test_the_first_answer_is_no_costlier_than_any_single_change():
    """Brute force over every single-feature grid value of a non-linear network."""
    rng = np.random.default_rng(5)
    schema = toy_schema()
    pre = Preprocessor(schema).fit(toy_frame())
    n = pre.n_outputs_
    model = RiskModel(schema)
    model.preprocessor_ = pre
    model.networks_ = [Network([(rng.normal(size=(n, 6)), rng.normal(size=6)), (rng.normal(size=(6, 1)), [1.5])])]
    patient = dict(PATIENT)
    base = model.predict_risk_raw(pre.encode(pd.DataFrame([patient])))[0]
    target = min(0.9, base * 0.7)
    result = counterfactuals(model, patient, target=target)
    best_single = math.inf
    for name in ("bp", "ldl"):
        j = pre.feature_names.index(name)
        grid = np.arange(pre.raw_min_[j], pre.raw_max_[j] + 1)
        grid = grid[grid < patient[name]]  # both are modifiable downwards only
        rows = pre.encode(pd.DataFrame([patient] * len(grid)))
        rows[:, j] = grid
        ok = model.predict_risk_raw(rows) < target
        costs = np.abs(grid - patient[name]) / pre.scale_[j]
        if ok.any():
            best_single = min(best_single, costs[ok].min())
    rows = pre.encode(pd.DataFrame([dict(patient, smoker=0.0)]))
    if model.predict_risk_raw(rows)[0] < target:
        best_single = min(best_single, 1.0)
    if math.isinf(best_single):
        assert not result.alternatives or len(result.alternatives[0].changes) > 1
    else:
        assert result.alternatives[0].distance <= best_single + 1e-9


def test_reasons_when_there_is_no_answer():
    model = logistic_model({"bp": 1.5, "ldl": 0.5, "smoker": 0.2, "age": 3.0}, bias=0.0)
    low = counterfactuals(model, dict(PATIENT, bp=110.0, ldl=80.0, smoker=0.0, age=30.0), target=0.9)
    assert low.alternatives == [] and low.reason == "already_below"
    assert "already below" in low.message()
    # age (not modifiable) dominates: nothing plausible reaches 1%
    far = counterfactuals(model, dict(PATIENT, age=79.0), target=0.01)
    assert far.alternatives == [] and far.reason == "unreachable"
    assert "1%" in far.message() and "1%" in far.message("zh")
    none = counterfactuals(model, PATIENT, target=0.2, features=[])
    assert none.reason == "no_features"


def test_bad_requests_are_refused():
    model = logistic_model({"bp": 1.0}, bias=0.0)
    with pytest.raises(PatientError, match="not features of this model: pulse"):
        counterfactuals(model, PATIENT, features=["pulse"])
    with pytest.raises(PatientError, match="target"):
        counterfactuals(model, PATIENT, target=1.5)
    with pytest.raises(PatientError, match="bp: outside the plausible range"):
        counterfactuals(model, dict(PATIENT, bp=400.0))


def test_an_input_not_measured_is_not_moved_and_the_risk_is_the_one_the_page_shows():
    # bp not measured: the page's risk is the mean over its conditional imputations; the what-if starts from
    # that same risk, and lowers what was measured (ldl), never the unmeasured bp (measure it first).
    from core.workflow import patient_risk
    model = logistic_model({"bp": 1.0, "ldl": 2.0}, bias=0.0)
    patient = dict(PATIENT, bp=None)
    shown = patient_risk(model, patient, with_reasons=False)
    assert shown.missing is not None
    result = counterfactuals(model, patient, target=0.2)
    assert result.risk == pytest.approx(shown.risk, abs=1e-9)
    assert result.alternatives and all("bp" not in a.features for a in result.alternatives)
    for alt in result.alternatives:  # the new risk is the page's risk of the changed patient
        assert alt.risk_after == pytest.approx(patient_risk(model, alt.values, with_reasons=False).risk, abs=1e-9)
    assert counterfactuals(model, patient, target=0.2, features=["bp"]).reason == "unreachable"


def test_sentences_in_both_languages():
    model = logistic_model({"bp": 1.5, "ldl": 1.4, "smoker": 0.2}, bias=1.0)
    result = counterfactuals(model, PATIENT, target=0.2, features=["bp", "ldl"])
    alt = result.alternatives[0]
    en = sentence(alt, model.schema, "en")
    zh = sentence(alt, model.schema, "zh")
    change = alt.changes[0]
    assert en.startswith("If ") and f"{change.new:.0f} instead of {change.old:.0f}" in en
    assert f"{alt.risk_before:.0%} → " in en
    assert zh.startswith("如果") and "而不是" in zh
    data = to_json(result, model.schema)
    assert data["alternatives"][0]["sentence"] == en
    assert data["alternatives"][0]["changes"][0]["new"] == change.new


def test_cleveland_schema_marks_the_modifiable_features():
    from core.data import cleveland_schema
    schema = cleveland_schema()
    assert default_modifiable(schema) == ["trestbps", "chol", "fbs"]
    assert {n: schema[n].direction for n in default_modifiable(schema)} == {
        "trestbps": "decrease", "chol": "decrease", "fbs": "decrease"}
    fixed = ["age", "sex", "cp", "restecg", "thalach", "exang", "oldpeak", "slope", "ca", "thal"]
    assert not any(schema[n].modifiable or schema[n].actionable for n in fixed)
    # fasting blood sugar: "yes" -> "no" is the clinical way, "no" -> "yes" never
    assert schema["fbs"].allowed_move(1.0, 0.0) and not schema["fbs"].allowed_move(0.0, 1.0)
    assert schema["trestbps"].allowed_move(140, 130) and not schema["trestbps"].allowed_move(130, 140)
    assert not schema["age"].allowed_move(60, 50)


def test_an_old_cleveland_bundle_schema_gets_the_directions():
    # saved before features had a direction: modifiable trestbps/chol/fbs without one
    from core.data import cleveland_schema
    old = json.loads(cleveland_schema().to_json())
    for f in old["features"]:
        f.pop("direction", None)
    schema = Schema.model_validate(old)
    assert default_modifiable(schema) == ["trestbps", "chol", "fbs"]
    assert schema["fbs"].direction == "decrease"


def test_an_inferred_schema_moves_only_what_the_vocabulary_knows():
    from core.data import infer_schema
    from core.data.concepts import infer_clinical_schema  # not re-exported by core.data (yet)
    rng = np.random.default_rng(0)
    unknown = pd.DataFrame({"marker_a": rng.normal(5, 1, 40), "marker_b": rng.integers(0, 2, 40).astype(float),
                            "outcome": rng.integers(0, 2, 40).astype(float)})
    schema = infer_clinical_schema(unknown, target="outcome")
    assert default_modifiable(schema) == [] and default_modifiable(infer_schema(unknown, target="outcome")) == []
    assert default_modifiable(schema) == [] and not any(f.modifiable for f in schema.features)
    # columns the clinical vocabulary recognises carry its direction (a treatment lowers blood pressure)
    known = infer_clinical_schema(toy_frame().rename(columns={"bp": "systolic_bp", "smoker": "smoking"}),
                                  target="outcome")
    assert known["systolic_bp"].actionable and known["systolic_bp"].direction == "decrease"
    assert known["smoking"].allowed_move(1.0, 0.0) and not known["smoking"].allowed_move(0.0, 1.0)
    assert not known["age"].modifiable


def test_a_feature_moves_only_in_its_clinical_direction():
    # Here the model lowers the risk for higher blood pressure and for smoking: the search must not follow.
    model = logistic_model({"bp": -1.5, "ldl": 1.5, "smoker": -2.0}, bias=1.0)
    result = counterfactuals(model, dict(PATIENT, smoker=0.0), target=0.3)
    assert result.alternatives, "ldl alone can reach the target"
    for alt in result.alternatives:
        assert alt.features == ["ldl"]
        assert alt.changes[0].new < PATIENT["ldl"]
    # the research mode follows the model either way, and says it is research
    research = counterfactuals(model, dict(PATIENT, smoker=0.0), target=0.3, features=["bp", "smoker", "age"],
                               research=True)
    moves = {(c.feature, c.new > c.old) for a in research.alternatives for c in a.changes}
    assert ("smoker", True) in moves or ("bp", True) in moves
    assert research.research and all(a.research for a in research.alternatives)
    assert sentence(research.alternatives[0], model.schema).startswith("[Research, not advice] If ")
    assert sentence(research.alternatives[0], model.schema, "zh").startswith("【研究用途，非建议】如果")
    assert to_json(research, model.schema)["research"] is True


def test_a_feature_that_is_not_modifiable_is_refused_outside_research():
    model = logistic_model({"bp": 1.5, "age": 2.0}, bias=0.0)
    with pytest.raises(PatientError, match="not modifiable in a known clinical direction: age"):
        counterfactuals(model, PATIENT, target=0.2, features=["bp", "age"])
    found = counterfactuals(model, PATIENT, target=0.2, features=["age"], research=True)
    assert found.alternatives and found.alternatives[0].features == ["age"]


def test_the_model_direction_that_contradicts_the_clinic_is_named():
    # smoking lowers this model's risk: said in words, and never suggested
    model = logistic_model({"bp": 1.0, "smoker": -2.0}, bias=0.0)
    model.background_ = model.preprocessor_.encode(toy_frame())
    model.n_train_ = 40
    conflicts = direction_conflicts(model)
    assert [c.feature for c in conflicts] == ["smoker"]
    c = conflicts[0]
    assert (c.better, c.worse) == (0.0, 1.0) and c.risk_better > c.risk_worse
    text = c.sentence(model.schema)
    assert text.startswith("In this model, smoker “yes” instead of “no” lowers the estimate")
    assert "an artefact of 40 patients, not advice" in text
    assert "40" in c.sentence(model.schema, "zh") and "不是建议" in c.sentence(model.schema, "zh")
    # a measurement: higher bp lowering the estimate
    model = logistic_model({"bp": -1.0, "ldl": 1.0}, bias=0.0)
    model.background_ = model.preprocessor_.encode(toy_frame())
    model.n_train_ = 40
    (c,) = direction_conflicts(model)
    assert c.feature == "bp" and c.better < c.worse
    assert c.sentence(model.schema).startswith("In this model, higher blood pressure lowers the estimate")


def _moves_are_clinical(model, df, rows) -> tuple[int, list]:
    """Every suggestion for these rows: the number of suggestions and the ones that break the rules."""
    from core.workflow import patient_from_row
    pre, schema = model.preprocessor_, model.schema
    n, bad = 0, []
    for i in rows:
        values = patient_from_row(model, df, int(i))
        result = counterfactuals(model, values, target=0.2)
        raw = pre.impute_raw(np.array([[pre.encode_value(j, values.get(f.name))
                                        for j, f in enumerate(pre.features)]]))[0]
        for alt in result.alternatives:
            n += 1
            for c in alt.changes:
                j = pre.feature_names.index(c.feature)
                old = c.old if c.old is not None else pre.decode_value(j, raw[j])
                if not schema[c.feature].allowed_move(old, c.new):
                    bad.append((int(i), c.feature, old, c.new))
    return n, bad


def test_no_suggestion_on_cleveland_or_the_demo_cohort_moves_a_fixed_feature_or_the_wrong_way(cleveland_path):
    from core.data import cleveland_schema, cohort_from_frame, demo_cohort, load_cohort
    from core.workflow import train_on_cohort
    cleveland = load_cohort(cleveland_path)
    trained = train_on_cohort(cleveland)
    model = trained.model
    df = cleveland.df.reset_index(drop=True)
    n_test, bad_test = _moves_are_clinical(model, df, trained.test_index)
    demo = cohort_from_frame(demo_cohort(), cleveland_schema(), "demo", synthetic=True)
    n_demo, bad_demo = _moves_are_clinical(model, demo.df.reset_index(drop=True), range(demo.n))
    assert bad_test == [] and bad_demo == []
    assert n_test > 0 and n_demo > 0  # the check saw suggestions
    # and the Cleveland model's blood-sugar artefact is named (higher sugar lowers its estimate)
    assert "fbs" in [c.feature for c in direction_conflicts(model)]


def test_the_command_line(tmp_path, capsys):
    import json

    from core.cli import main
    from core.model import TrainConfig, save_bundle
    model = logistic_model({"bp": 1.5, "ldl": 0.5, "smoker": 0.2, "age": 0.3}, bias=0.0)
    model.config = TrainConfig(hidden=())
    model._weights = [layer for pair in model.networks_[0].layers for layer in pair]
    model.background_ = model.preprocessor_.encode(toy_frame())
    bundle = save_bundle(model, tmp_path / "bundle", metrics={}, data_fingerprint="x", name="toy")
    patients = tmp_path / "patients.csv"
    pd.DataFrame([PATIENT, dict(PATIENT, bp=110.0, ldl=80.0, smoker=0.0, age=30.0)]).to_csv(patients, index=False)

    assert main(["counterfactual", "--model", str(bundle), "--input", str(patients), "--target-risk", "0.2",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    first, second = out["patients"]
    expected = counterfactuals(model, PATIENT, target=0.2)
    assert [a["sentence"] for a in first["alternatives"]] == [sentence(a, model.schema) for a in expected.alternatives]
    assert second["alternatives"] == [] and second["reason"] == "already_below"

    assert main(["counterfactual", "--model", str(bundle), "--input", str(patients), "--lang", "zh",
                 "--features", "bp,smoker"]) == 0
    text = capsys.readouterr().out
    assert "第 1 行" in text and "血压为" in text and "低密度脂蛋白" not in text
    assert "风险已低于目标 20%" in text
    assert main(["counterfactual", "--model", str(bundle), "--input", str(patients), "--target-risk", "2"]) == 2
    assert "--target-risk" in capsys.readouterr().err
    # what the answers are, said first; a feature that is not modifiable only in research mode, marked
    assert main(["counterfactual", "--model", str(bundle), "--input", str(patients)]) == 0
    assert capsys.readouterr().out.startswith(whatif_meaning("en"))
    assert main(["counterfactual", "--model", str(bundle), "--input", str(patients), "--features", "bp,age"]) == 2
    err = capsys.readouterr().err
    assert "--features: age not modifiable" in err and "--research-any-feature" in err and "Traceback" not in err
    assert main(["counterfactual", "--model", str(bundle), "--input", str(patients), "--features", "bp,age",
                 "--research-any-feature", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["research"] is True and "not the effect of a treatment" in out["meaning"]
    assert out["patients"][0]["alternatives"][0]["sentence"].startswith("[Research, not advice] If ")
