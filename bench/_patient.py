"""Section 3: one patient, warm (in process) and the first SHAP call after loading a bundle (fresh process).

    python -m bench._patient first-shap BUNDLE_DIR VALUES_JSON   # used by bench/run.py
"""
from __future__ import annotations

import json
import math
import sys
import time

import numpy as np

from bench._util import emit, median_seconds, quiet_tensorflow, run_subprocess


def patient_values(model, row) -> dict:
    """One cohort row as the dict of raw clinical values a clinician's form sends (None = missing)."""
    out = {}
    for f in model.preprocessor_.features:
        v = row[f.name]
        out[f.name] = None if (v is None or (isinstance(v, float) and math.isnan(v))) else float(v)
    return out


def warm_patient(model, values: dict, calls: int = 200) -> dict:
    from core.workflow import patient_risk
    risk_only, _ = median_seconds(lambda: patient_risk(model, values, with_reasons=False), calls, warmup=5)
    with_shap, _ = median_seconds(lambda: patient_risk(model, values, with_reasons=True), calls, warmup=5)
    # The floor: the same network as plain numpy on one already-preprocessed row.
    pre = model.preprocessor_
    raw = np.array([[pre.encode_value(j, values.get(f.name)) for j, f in enumerate(pre.features)]])
    X = pre.transform_raw(raw)
    net = model.networks_[0]
    forward, _ = median_seconds(lambda: net.proba(X), 2000, warmup=50)
    result = patient_risk(model, values, with_reasons=True)
    expl = result.explanation
    return {
        "risk_ms_p50": risk_only * 1e3, "risk_shap_ms_p50": with_shap * 1e3, "numpy_forward_us": forward * 1e6,
        "patient_calls": calls, "patient_shap_background_rows": int(expl.background_size),
        "patient_shap_additivity_error": float(abs(expl.base_value + expl.shap_values.sum() - expl.output[0])),
        "risk_overhead_vs_numpy_forward_x": risk_only / forward,
    }


def first_shap(bundle_dir: str, values_path: str, timeout: float = 300) -> dict:
    """load_bundle in a fresh interpreter, then the first patient_risk with reasons (≤ 1 s target)."""
    return run_subprocess("bench._patient", ["first-shap", bundle_dir, values_path], timeout)


def _first_shap_child(bundle_dir: str, values_path: str) -> None:
    quiet_tensorflow()
    t0 = time.perf_counter()
    from core.model import load_bundle
    from core.workflow import patient_risk
    imported = time.perf_counter()
    model = load_bundle(bundle_dir)
    loaded = time.perf_counter()
    with open(values_path, encoding="utf-8") as fh:
        values = json.load(fh)
    patient_risk(model, values, with_reasons=True)
    first = time.perf_counter()
    patient_risk(model, values, with_reasons=True)
    second = time.perf_counter()
    emit({"first_shap_s": first - loaded, "second_shap_s": second - first,
          "core_import_s": imported - t0, "load_bundle_s": loaded - imported})


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "first-shap":
        _first_shap_child(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)
