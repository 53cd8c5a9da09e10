"""The patients of a cohort most like this one, what happened to them, and what the model says of them.

Distance is Euclidean on the model's own inputs (``Preprocessor.transform_raw``): measurements in training
standard deviations, a code as its one-hot column (a different code adds sqrt(2)), a missing value as the
value the model imputes. So "similar" means similar as the model sees patients, not by any outside rule.

The training table is not kept in a model bundle (only a few hundred rows of SHAP background); the
neighbours come from a cohort the caller names (the dashboard: the active cohort), and say so.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.errors import PatientError
from core.metrics.intervals import MIN_PER_CLASS, wilson_interval
from core.workflow.risk import check_patient, risk_of_rows


@dataclass
class SimilarPatients:
    table: pd.DataFrame  # row (1-based, in the cohort), distance, the features, outcome, risk; nearest first
    outcome_rate: float  # share of the neighbours with the outcome (NaN without outcomes)
    mean_risk: float  # the model's mean risk over the neighbours
    patient_risk: float  # the model's risk for the patient
    k: int
    # Wilson 95% interval of outcome_rate; NaN (and ``outcome_too_few``) with fewer than MIN_PER_CLASS
    # neighbours whose outcome is known: "too few patients" instead of a rate.
    outcome_low: float = float("nan")
    outcome_high: float = float("nan")
    outcome_too_few: bool = True


def similar_patients(model, values: dict, cohort_df: pd.DataFrame, outcome=None, k: int = 10) -> SimilarPatients:
    """The ``k`` cohort rows nearest to the patient ``values`` on the model's scaled features.

    ``outcome``: the cohort's 0/1 outcomes (same length as ``cohort_df``) or None. Rows keep their
    cohort numbering (1 = first row); ties go to the earlier row.
    """
    pre = model.preprocessor_
    if k < 1:
        raise PatientError("the number of similar patients must be at least 1")
    missing = [n for n in pre.feature_names if n not in cohort_df.columns]
    if missing:
        raise PatientError(f"the cohort lacks columns the model needs: {', '.join(missing)}")
    if len(cohort_df) == 0:
        raise PatientError("the cohort has no patients")
    check_patient(values, model.schema, pre)
    raw_patient = np.array([[pre.encode_value(j, values.get(f.name)) for j, f in enumerate(pre.features)]])
    raw_cohort = pre.encode(cohort_df)
    x = pre.transform_raw(raw_patient).astype(np.float64)
    X = pre.transform_raw(raw_cohort).astype(np.float64)
    distance = np.sqrt(((X - x) ** 2).sum(axis=1))
    k = min(int(k), len(distance))
    nearest = np.lexsort((np.arange(len(distance)), distance))[:k]
    risks = risk_of_rows(model, raw_cohort[nearest])  # inputs not measured: over their plausible values
    table = cohort_df.iloc[nearest][pre.feature_names].reset_index(drop=True)
    table.insert(0, "distance", distance[nearest])
    table.insert(0, "row", nearest + 1)
    if outcome is not None:
        y = np.asarray(pd.Series(outcome).to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)
        if len(y) != len(cohort_df):
            raise PatientError(f"the outcome has {len(y)} values but the cohort has {len(cohort_df)} rows")
        table["outcome"] = y[nearest]
        known = y[nearest][np.isfinite(y[nearest])]
        rate = float(known.mean()) if known.size else float("nan")
    else:
        known, rate = np.array([]), float("nan")
    too_few = known.size < MIN_PER_CLASS
    low, high = (float("nan"), float("nan")) if too_few else (float(v) for v in wilson_interval(known.sum(), known.size))
    table["risk"] = risks
    return SimilarPatients(table=table, outcome_rate=rate, mean_risk=float(np.mean(risks)),
                           patient_risk=float(risk_of_rows(model, raw_patient)[0]), k=k,
                           outcome_low=low, outcome_high=high, outcome_too_few=too_few)
