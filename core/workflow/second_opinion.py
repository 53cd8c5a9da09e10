"""One patient through both models: the MLP's SHAP reasons beside the logistic second opinion's
log-odds contributions, and where they disagree (core.evaluate.glassbox fits the second opinion)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from core.evaluate.glassbox import (
    NEGLIGIBLE_LOGODDS,
    NEGLIGIBLE_SHAP,
    RANK_GAP,
    GlassBox,
    feature_label,
    rank_order,
)
from core.model.bands import model_bands, risk_band
from core.workflow.risk import patient_risk

# Risks this far apart (absolute) are a disagreement whatever the reasons say: 19% against 38% was reported
# as "the two models agree" (QA). 10 points is a setting, not a guideline value.
RISK_GAP = 0.10


def compare_patient(model, glass: GlassBox, values: dict, lang: str = "en", top: int = 3) -> dict:
    """Both models for one patient (dict feature -> value): their risks, their reasons side by side and
    the features where they disagree (opposite directions, or a top reason of one ranked low by the other),
    and whether the risks themselves differ (``risks_differ``: RISK_GAP apart or in different bands)."""
    mlp = patient_risk(model, values, with_reasons=True, lang=lang, top=len(model.preprocessor_.features))
    frame = pd.DataFrame([{name: values.get(name) for name in model.preprocessor_.feature_names}])
    for f in model.preprocessor_.features:
        if f.is_measurement:
            frame[f.name] = pd.to_numeric(frame[f.name], errors="coerce").astype(float)
    lr_risk = float(glass.predict_risk(frame)[0])
    lr_contrib = glass.contributions(frame).iloc[0]
    names = model.preprocessor_.feature_names
    shap = np.asarray(mlp.explanation.shap_values[0], dtype=np.float64)
    logodds = lr_contrib[names].to_numpy(dtype=np.float64)
    mlp_rank, lr_rank = rank_order(shap), rank_order(logodds)
    rows = []
    for j, name in enumerate(names):
        f = model.preprocessor_.features[j]
        opposite = (abs(shap[j]) >= NEGLIGIBLE_SHAP and abs(logodds[j]) >= NEGLIGIBLE_LOGODDS
                    and np.sign(shap[j]) != np.sign(logodds[j]))
        rank_gap = (min(mlp_rank[j], lr_rank[j]) <= top and abs(int(mlp_rank[j]) - int(lr_rank[j])) >= RANK_GAP)
        rows.append({"feature": name, "label": feature_label(f, lang), "mlp_shap": float(shap[j]), "mlp_rank": int(mlp_rank[j]),
                     "lr_logodds": float(logodds[j]), "lr_rank": int(lr_rank[j]),
                     "disagree": "direction" if opposite else ("rank" if rank_gap else "")})
    table = pd.DataFrame(rows).sort_values("mlp_rank", kind="stable").reset_index(drop=True)
    cutoffs = model_bands(model)
    bands = (str(risk_band(float(mlp.risk), cutoffs)), str(risk_band(lr_risk, cutoffs)))
    return {"mlp_risk": float(mlp.risk), "lr_risk": lr_risk, "table": table,
            # the risks themselves: apart by RISK_GAP or more, or in different risk bands
            "risks_differ": abs(float(mlp.risk) - lr_risk) >= RISK_GAP or bands[0] != bands[1], "bands": bands,
            "mlp_top": table.nsmallest(top, "mlp_rank")["feature"].tolist(),
            "lr_top": table.nsmallest(top, "lr_rank")["feature"].tolist(),
            "disagreements": table[table["disagree"] != ""]["feature"].tolist()}
