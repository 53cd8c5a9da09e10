"""Stand-in models for tests that need a model shape the fixtures do not train."""
from __future__ import annotations

import numpy as np

from core.model import Network


def logistic_model(background_rows: int = 100):
    """A RiskModel whose network is a logistic regression fitted on the demo cohort (numpy only, no Keras)."""
    from sklearn.linear_model import LogisticRegression

    from core.data import demo_cohort
    from core.model import RiskModel
    from core.model import Preprocessor
    from core.data import cleveland_schema
    df = demo_cohort()
    schema = cleveland_schema()
    pre = Preprocessor(schema).fit(df)
    fit = LogisticRegression(max_iter=1000).fit(pre.transform(df), (df["num"] > 0).astype(int).to_numpy())
    model = RiskModel(schema)
    model.preprocessor_ = pre
    model.networks_ = [Network([(fit.coef_.T, fit.intercept_)])]
    model.background_ = pre.encode(df.iloc[:background_rows])
    return model


class ScaledEnsemble:
    """The interface an ensemble offers (core.model: ``n_members_``, ``predict_interval_raw``), built from a
    one-network model whose first layer is scaled by each of ``scales``: members that disagree, cheaply."""

    def __init__(self, base, scales=(0.8, 1.0, 1.2)):
        self.preprocessor_, self.schema, self.background_ = base.preprocessor_, base.schema, base.background_
        W, b = base.networks_[0].layers[0]
        self.networks_ = [Network([(W * s, b)]) for s in scales]
        self.n_members_ = len(scales)

    def predict_risk_raw(self, raw):
        return self.predict_interval_raw(raw)[0]

    def member_risks_raw(self, raw):
        X = self.preprocessor_.transform_raw(raw)
        return np.array([net.proba(X) for net in self.networks_])

    def predict_interval_raw(self, raw):
        X = self.preprocessor_.transform_raw(raw)
        members = np.array([net.proba(X) for net in self.networks_])
        return members.mean(axis=0), members.min(axis=0), members.max(axis=0)
