"""The out-of-distribution check never writes onto the model: a loaded bundle is shared read-only
between sessions through st.cache_resource (issue 13, bug 6)."""
from __future__ import annotations

import numpy as np

from core.data import cleveland_schema
from core.evaluate import ood_check
from core.model import Preprocessor, RiskModel, TrainConfig, initial_weights
from core.data import demo_cohort


def test_ood_check_of_a_model_without_a_saved_reference_leaves_the_model_unchanged():
    schema = cleveland_schema()
    df = demo_cohort(n=120, seed=3)
    model = RiskModel(schema, TrainConfig())
    model.preprocessor_ = Preprocessor(schema).fit(df)
    model._weights = initial_weights(model.preprocessor_.n_outputs_, model.config, 0)
    model._set_networks()
    model.background_ = model.preprocessor_.encode(df.iloc[:60])
    model.input_reference_ = None  # as a bundle saved before the reference existed
    before = dict(vars(model))
    first = ood_check(model, model.background_[0])
    second = ood_check(model, model.background_[0])
    assert model.input_reference_ is None and set(vars(model)) == set(before)
    assert np.isfinite(first.distance2) and first.distance2 == second.distance2
