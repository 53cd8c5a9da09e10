"""What the what-if search suggests on the real Cleveland file: which features its answers move, and how
many move one against its clinical direction (issue #14.1; docs/clinical-notes.md).

    python bench/whatif_clinical.py [--data PATH] [--target 0.2] [--out bench/whatif_clinical.json]

A default model is trained on the Cleveland file (the 70/15/15 split); for every patient of its test
split, and of the synthetic demo cohort scored by the same model, the search runs with the schema's
modifiable features. Counted: answers, changes per feature, changes that break the schema's direction
(e.g. fasting blood sugar "no" -> "yes") or move a feature that is not modifiable (must be 0), and the
model's direction conflicts. Before the fix (commit e0ff8ae) the same count gave fasting blood sugar
"no" -> "yes" in 4 of 11 Cleveland answers and 44 of 110 demo-cohort answers.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from core.data import cleveland_schema, cohort_from_frame, demo_cohort, load_cohort  # noqa: E402
from core.workflow import counterfactuals, direction_conflicts, patient_from_row, train_on_cohort  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "uci-heart-disease" / "processed.cleveland.data"


def count(model, df, rows, target: float) -> dict:
    pre, schema = model.preprocessor_, model.schema
    moved, wrong, answers, patients = collections.Counter(), [], 0, 0
    for i in rows:
        values = patient_from_row(model, df, int(i))
        result = counterfactuals(model, values, target)
        patients += bool(result.alternatives)
        filled = pre.impute_raw(np.array([[pre.encode_value(j, values.get(f.name))
                                           for j, f in enumerate(pre.features)]]))[0]
        for alt in result.alternatives:
            answers += 1
            for c in alt.changes:
                moved[c.feature] += 1
                j = pre.feature_names.index(c.feature)
                old = c.old if c.old is not None else pre.decode_value(j, filled[j])
                if not schema[c.feature].allowed_move(old, c.new):
                    wrong.append({"row": int(i), "feature": c.feature, "old": old, "new": c.new})
    return {"patients": len(rows), "patients_with_answer": patients, "answers": answers,
            "changes_by_feature": dict(moved), "against_direction_or_not_modifiable": len(wrong)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--target", type=float, default=0.2)
    parser.add_argument("--out", default=str(ROOT / "bench" / "whatif_clinical.json"))
    args = parser.parse_args()
    cleveland = load_cohort(args.data)
    trained = train_on_cohort(cleveland)
    model = trained.model
    demo = cohort_from_frame(demo_cohort(), cleveland_schema(), "demo", synthetic=True)
    report = {
        "target": args.target,
        "cleveland_test_split": count(model, cleveland.df.reset_index(drop=True), trained.test_index, args.target),
        "demo_cohort": count(model, demo.df.reset_index(drop=True), range(demo.n), args.target),
        "direction_conflicts": [{"feature": c.feature, "risk_clinical_value": c.risk_better,
                                 "risk_other_value": c.risk_worse, "sentence": c.sentence(model.schema)}
                                for c in direction_conflicts(model)],
    }
    print(json.dumps(report, indent=1, ensure_ascii=False))
    Path(args.out).write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
