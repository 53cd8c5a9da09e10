"""Write assets/demo_cohort.json: summary statistics of the real UCI Cleveland file, no patient rows.

    python scripts/make_demo_params.py [--data PATH] [--out PATH]

What is stored (all rounded): per measurement a 21-point quantile table, mean and SD; per coded feature
its code frequencies; the correlation of normal scores over the 13 features (Gaussian copula) and the
latent correlation calibrated so that synthetic cohorts reproduce it; missing rates; a logistic model of
disease (num > 0) on standardised measurements + one-hot codes; the severity mix (num 1-4) of the
diseased. ``core.demo`` draws the demo cohort from it. Deterministic: rerunning gives the same file.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import sklearn
from scipy.special import expit
from sklearn.linear_model import LogisticRegression

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.data import DEMO_NAME, draw_features, normal_score_corr  # noqa: E402
from core.data import CLEVELAND_COLUMNS, cleveland_schema  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "uci-heart-disease" / "processed.cleveland.data"
DEFAULT_OUT = ROOT / "assets" / "demo_cohort.json"
PROVENANCE = "derived from summary statistics of UCI Cleveland (CC BY 4.0); no patient rows"
# Every 5 %, plus finer tails: with only the 95 % and 100 % points, the top 5 % of cholesterol would be
# spread evenly up to the single highest value (564 mg/dl) and far too many patients would sit there.
QUANTILE_PROBS = [0.0, 0.01, 0.025] + [round(i / 20, 2) for i in range(1, 20)] + [0.975, 0.99, 1.0]
CALIBRATION_ROWS = 200_000
CALIBRATION_SEED = 20240
CALIBRATION_ROUNDS = 8
LOGISTIC_C = 1.0


def read_cleveland(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, header=None, names=CLEVELAND_COLUMNS, na_values="?")


def _r(x, digits: int = 4):
    """Round floats (nested lists too) for a small, stable JSON."""
    if isinstance(x, (list, tuple, np.ndarray)):
        return [_r(v, digits) for v in x]
    value = round(float(x), digits)
    return 0.0 if value == 0 else value  # no '-0.0' churn in diffs


def nearest_correlation(matrix: np.ndarray, floor: float = 1e-3) -> np.ndarray:
    """Symmetric, positive definite, unit diagonal: what a Cholesky factor needs."""
    sym = (matrix + matrix.T) / 2
    values, vectors = np.linalg.eigh(sym)
    fixed = vectors @ np.diag(np.maximum(values, floor)) @ vectors.T
    d = np.sqrt(np.diag(fixed))
    out = fixed / np.outer(d, d)
    np.fill_diagonal(out, 1.0)
    return out


def build_params(df: pd.DataFrame) -> dict:
    schema = cleveland_schema()
    features = schema.feature_names  # the 13 features, schema order
    numeric = [f.name for f in schema.model_features if f.kind == "numeric"]
    coded = [f.name for f in schema.model_features if f.kind != "numeric"]  # ca (ordinal) too: it has codes

    params: dict = {
        "name": DEMO_NAME,
        "provenance": PROVENANCE,
        "source": {"dataset": "UCI Heart Disease, processed.cleveland.data", "rows": int(len(df)),
                   "generated_by": "scripts/make_demo_params.py", "scikit_learn": sklearn.__version__},
        "quantile_probs": QUANTILE_PROBS,
        "numeric": {},
        "coded": {},
    }
    for name in numeric:
        col = df[name].dropna()
        step = schema[name].step or 1.0
        decimals = 0 if step >= 1 else 1
        params["numeric"][name] = {
            "decimals": decimals,
            "quantiles": _r(np.round(np.quantile(col, QUANTILE_PROBS), decimals), decimals),
            "mean": _r(col.mean()),
            "sd": _r(col.std()),
        }
    for name in coded:
        col = df[name].dropna()
        codes = [float(v) for v in schema[name].code_values()]
        counts = np.array([(col == c).sum() for c in codes], dtype=float)
        params["coded"][name] = {"codes": codes, "freq": _r(counts / counts.sum())}
    params["missing_rate"] = {name: _r(df[name].isna().mean(), 5) for name in CLEVELAND_COLUMNS}

    target_corr = nearest_correlation(normal_score_corr(df, features))
    params["outcome"] = fit_outcome(df, numeric, coded, params)
    params["severity"] = severity(df)
    params["copula"] = {"features": features, "normal_score_corr": _r(target_corr)}
    latent, offset = calibrate(params, target_corr)
    params["copula"]["latent_corr"] = _r(latent)
    params["copula"]["note"] = ("latent_corr is adjusted so that normal scores of synthetic cohorts "
                                "(with their coarse codes) correlate like the real file's normal_score_corr")
    params["outcome"]["intercept_offset"] = _r(offset)
    return params


def _design(df: pd.DataFrame, numeric: list[str], coded: list[str], params: dict) -> np.ndarray:
    blocks = []
    for name in numeric:
        col = df[name].fillna(df[name].median()).to_numpy(float)
        blocks.append(((col - col.mean()) / col.std())[:, None])
    for name in coded:
        codes = params["coded"][name]["codes"]
        mode = codes[int(np.argmax(params["coded"][name]["freq"]))]
        col = df[name].fillna(mode).to_numpy(float)
        blocks.append(np.stack([col == c for c in codes], axis=1).astype(float))
    return np.hstack(blocks)


def fit_outcome(df: pd.DataFrame, numeric: list[str], coded: list[str], params: dict) -> dict:
    """Logistic model of disease: standardised measurements + one-hot codes (missing -> median / mode)."""
    y = (df["num"] > 0).to_numpy(int)
    model = LogisticRegression(C=LOGISTIC_C, max_iter=5000).fit(_design(df, numeric, coded, params), y)
    coef = model.coef_[0]
    out = {"target": "num > 0", "prevalence": _r(y.mean()), "C": LOGISTIC_C,
           "intercept": _r(model.intercept_[0]), "numeric": {}, "coded": {}}
    k = 0
    for name in numeric:
        col = df[name].fillna(df[name].median())
        out["numeric"][name] = {"mean": _r(col.mean()), "scale": _r(col.std(ddof=0)), "coef": _r(coef[k])}
        k += 1
    for name in coded:
        m = len(params["coded"][name]["codes"])
        out["coded"][name] = {"codes": params["coded"][name]["codes"], "coef": _r(coef[k:k + m])}
        k += m
    return out


def severity(df: pd.DataFrame) -> dict:
    sick = df.loc[df["num"] > 0, "num"]
    codes = [1.0, 2.0, 3.0, 4.0]
    counts = np.array([(sick == c).sum() for c in codes], dtype=float)
    return {"codes": codes, "freq": _r(counts / counts.sum())}


def calibrate(params: dict, target_corr: np.ndarray) -> tuple[np.ndarray, float]:
    """Latent correlation and intercept shift that make big synthetic cohorts match the real file.

    Coarse codes (sex, fbs, ...) weaken correlations of normal scores, so the latent correlation is nudged
    until synthetic normal scores correlate like the real ones (same random numbers every round, so the
    fixed-point iteration is smooth). Then the intercept is shifted so the synthetic prevalence is the real one.
    """
    features = params["copula"]["features"]
    latent = target_corr.copy()
    for _ in range(CALIBRATION_ROUNDS):
        params["copula"]["latent_corr"] = latent.tolist()
        columns, _eta = draw_features(params, CALIBRATION_ROWS, np.random.default_rng(CALIBRATION_SEED))
        simulated = normal_score_corr(pd.DataFrame(columns), features)
        latent = nearest_correlation(latent + (target_corr - simulated))
    latent = np.asarray(_r(latent), dtype=float)  # exactly what the JSON will hold
    np.linalg.cholesky(latent)  # still positive definite after rounding (the eigenvalue floor leaves room)
    params["copula"]["latent_corr"] = latent.tolist()
    _columns, eta = draw_features(params, CALIBRATION_ROWS, np.random.default_rng(CALIBRATION_SEED + 1))
    prevalence = float(params["outcome"]["prevalence"])
    offset = 0.0
    for _ in range(50):  # Newton on mean(sigmoid(eta + offset)) = prevalence
        p = expit(eta + offset)
        gap = p.mean() - prevalence
        if abs(gap) < 1e-7:
            break
        offset -= gap / (p * (1 - p)).mean()
    return latent, offset


def to_json(params: dict) -> str:
    """Indented JSON with each list of numbers on one line (a matrix row per line), for readable diffs."""
    text = json.dumps(params, indent=1, ensure_ascii=False)
    flat = re.compile(r"\[\s*((?:-?[0-9.e+-]+,\s*)*-?[0-9.e+-]+)\s*\]")
    return flat.sub(lambda m: "[" + re.sub(r",\s*", ", ", m.group(1)) + "]", text) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the real processed.cleveland.data")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write the JSON")
    args = parser.parse_args(argv)
    if not args.data.exists():
        print(f"Cleveland file not found: {args.data}", file=sys.stderr)
        return 2
    params = build_params(read_cleveland(args.data))
    args.out.write_text(to_json(params), encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
