"""The model's average direction per feature against the clinical one (Feature.risk_direction)."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd

from core.data import Code, Feature, Schema, cleveland_schema
from core.evaluate import direction_contradictions, model_directions
from core.model import Network, Preprocessor, RiskModel
from core.workflow import known_limits, training_metadata


def _schema() -> Schema:
    return Schema(features=[
        Feature(name="age", kind="numeric", label="Age", label_zh="年龄", unit="years", min=18, max=100, step=1,
                risk_direction="increases"),
        Feature(name="thalach", kind="numeric", label="Maximum heart rate", label_zh="最大心率", unit="bpm",
                min=60, max=220, step=1, risk_direction="decreases"),
        Feature(name="exang", kind="binary", label="Exercise angina", label_zh="运动诱发心绞痛",
                risk_direction="increases",
                codes=[Code(value=0.0, label="no", label_zh="否"), Code(value=1.0, label="yes", label_zh="是")]),
        Feature(name="noise", kind="numeric", label="Noise", min=0, max=10, step=0.1),
        Feature(name="outcome", role="target", kind="binary"),
    ], target="outcome", positive_rule="> 0")


def _model(weights: dict) -> RiskModel:
    rng = np.random.default_rng(5)
    n = 60
    df = pd.DataFrame({"age": rng.integers(35, 80, n).astype(float), "thalach": rng.integers(90, 200, n).astype(float),
                       "exang": rng.integers(0, 2, n).astype(float), "noise": rng.uniform(0, 10, n),
                       "outcome": rng.integers(0, 2, n).astype(float)})
    schema = _schema()
    pre = Preprocessor(schema).fit(df)
    W = np.array([[weights.get(name, 0.0)] for name in pre.output_names_])
    model = RiskModel(schema)
    model.preprocessor_ = pre
    model.networks_ = [Network([(W, np.array([0.0]))])]
    model.background_ = pre.encode(df)
    model.n_train_ = n
    return model


def test_a_model_that_lowers_risk_with_age_is_named_and_a_consistent_one_is_not():
    backwards = _model({"age": -1.0, "thalach": -1.0, "exang": 1.0})
    found = direction_contradictions(backwards)
    assert [d.feature for d in found] == ["age"]
    (age,) = found
    assert age.low < age.high and age.risk_low > age.risk_high and age.model_direction == "decreases"
    text = age.sentence(backwards.schema)
    assert text.startswith("In this model, higher age lowers the estimate")
    assert "contrary to clinical knowledge: an artefact of the training data, not a finding" in text
    assert "年龄越高，估计值反而降低" in age.sentence(backwards.schema, "zh")
    # a feature without a clinical direction is not checked; every one with a direction is
    assert [d.feature for d in model_directions(backwards)] == ["age", "thalach", "exang"]

    consistent = _model({"age": 1.0, "thalach": -1.0, "exang": 1.0, "noise": -3.0})
    assert direction_contradictions(consistent) == []
    # a backwards effect of a tenth of a point is noise, not a contradiction worth a sentence
    flat = _model({"age": -0.005})
    (age,) = [d for d in model_directions(flat) if d.feature == "age"]
    assert 0 < age.risk_low - age.risk_high < 0.005 and not age.contradicts


def test_a_backwards_coded_feature_and_a_higher_heart_rate_raising_risk_are_named():
    model = _model({"age": 1.0, "thalach": 1.0, "exang": -1.0})
    found = {d.feature: d for d in direction_contradictions(model)}
    assert set(found) == {"thalach", "exang"}
    assert found["thalach"].sentence(model.schema).startswith("In this model, higher maximum heart rate raises")
    assert found["exang"].sentence(model.schema).startswith("In this model, exercise angina “yes” instead of “no” "
                                                            "lowers the estimate")


def test_the_model_card_lists_the_contradictions_in_its_known_limits():
    backwards = _model({"age": -1.0})
    meta = training_metadata(backwards, {}, name="t", cohort={"synthetic": True})
    meta = type(meta).model_validate(json.loads(meta.model_dump_json(by_alias=True)))  # as saved and read back
    limits = known_limits(meta)
    assert any(s.startswith("In this model, higher age lowers the estimate") for s in limits)
    assert any("年龄越高" in s for s in known_limits(meta, "zh"))
    consistent = training_metadata(_model({"age": 1.0}), {}, name="t", cohort={})
    assert not any("contrary to clinical knowledge" in s for s in known_limits(consistent))


def test_the_cleveland_schema_and_the_vocabulary_know_the_clinical_directions():
    schema = cleveland_schema()
    directions = {f.name: f.risk_direction for f in schema.model_features}
    assert directions == {"age": "increases", "sex": "increases", "cp": None, "trestbps": "increases",
                          "chol": "increases", "fbs": "increases", "restecg": None, "thalach": "decreases",
                          "exang": "increases", "oldpeak": "increases", "slope": None, "ca": "increases",
                          "thal": None}
    assert [c.label for c in schema["sex"].codes] == ["female", "male"]  # "male" later: raises the risk
    # a bundle saved before the field existed gets the shipped directions back
    old = json.loads(schema.to_json())
    for f in old["features"]:
        f.pop("risk_direction", None)
    assert Schema.model_validate(old)["age"].risk_direction == "increases"
    from core.data import concept_feature, vocabulary
    vocab = {c.id: c for c in vocabulary().concepts}
    assert concept_feature("sbp", vocab["systolic_bp"]).risk_direction == "increases"
    assert concept_feature("hdl", vocab["hdl_cholesterol"]).risk_direction == "decreases"
    assert concept_feature("hr", vocab["heart_rate"]).risk_direction is None
