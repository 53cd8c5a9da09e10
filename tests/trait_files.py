"""Cohort files with one trait each of real hospital exports (issue #15), generated: zeros meaning
"not measured", cholesterol in mmol/L, age in days, a record-number column, impossible pressures, the
whitespace-delimited UCI Statlog layout (class 1/2, no header), an all-missing column, Chinese and pinyin
headers, an Excel workbook. The outcome depends on age and pressure so a model has something to learn."""
from __future__ import annotations

import io

import numpy as np
import pandas as pd

N = 120


def base(n: int = N, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    age = rng.normal(55, 9, n).round()
    sbp = rng.normal(132, 18, n).round()
    dbp = (sbp * 0.62 + rng.normal(0, 6, n)).round()
    chol = rng.normal(215, 40, n).clip(120, 380).round()
    sex = rng.integers(0, 2, n)
    logit = (age - 55) / 8 + (sbp - 132) / 20 + 0.5 * sex - 0.3
    outcome = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame({"age": age, "sex": sex, "sysBP": sbp, "diaBP": dbp, "totChol": chol, "outcome": outcome})


def csv_bytes(df: pd.DataFrame, sep: str = ",") -> bytes:
    return df.to_csv(index=False, sep=sep).encode("utf-8")


def zeros_for_missing() -> pd.DataFrame:
    df = base()
    df.loc[[2, 5, 9], "totChol"] = 0
    df.loc[[4], "sysBP"] = 0
    return df


def mmol_cholesterol() -> pd.DataFrame:
    df = base()
    df["totChol"] = (df["totChol"] / 38.67).round(2)
    return df


def age_in_days() -> pd.DataFrame:
    df = base()
    df["age"] = (df["age"] * 365.25).round()
    return df


def record_numbers() -> pd.DataFrame:
    df = base()
    df.insert(0, "id", np.arange(50001, 50001 + len(df)))
    df.insert(1, "visit_date", [f"2021-03-{1 + k % 28:02d}" for k in range(len(df))])
    return df


def impossible_pressures() -> pd.DataFrame:
    df = base().rename(columns={"sysBP": "ap_hi", "diaBP": "ap_lo"})
    df.loc[3, "ap_hi"] = 24105
    df.loc[6, "ap_hi"] = -150
    df.loc[8, ["ap_hi", "ap_lo"]] = [80, 120]  # diastolic above systolic
    return df


def all_missing_column() -> pd.DataFrame:
    df = base()
    df["totChol"] = np.nan
    return df


def chinese_headers() -> pd.DataFrame:
    return mmol_cholesterol().rename(columns={"age": "年龄", "sex": "性别", "sysBP": "收缩压", "diaBP": "舒张压",
                                              "totChol": "总胆固醇", "outcome": "结局"})


def pinyin_headers() -> pd.DataFrame:
    return base().rename(columns={"age": "nianling", "sex": "xingbie", "sysBP": "shousuoya", "diaBP": "shuzhangya",
                                  "totChol": "danguchun", "outcome": "jieju"})


def statlog_bytes(n: int = N, seed: int = 3) -> bytes:
    """heart.dat: 13 UCI attributes, class 1 = absent / 2 = present, spaces, no header."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        age = int(rng.integers(30, 77))
        sex = int(rng.integers(0, 2))
        cp = int(rng.integers(1, 5))
        bps = int(rng.integers(95, 190))
        chol = int(rng.integers(130, 400))
        thalach = int(rng.integers(90, 200))
        oldpeak = round(float(rng.uniform(0, 4)), 1)
        score = (age - 54) / 9 + (cp == 4) * 1.5 + oldpeak / 2 - (thalach - 150) / 25 + sex
        cls = 2 if rng.random() < 1 / (1 + np.exp(-score + 1)) else 1
        rows.append([age, sex, cp, bps, chol, int(rng.integers(0, 2)), int(rng.choice([0, 1, 2])), thalach,
                     int(rng.integers(0, 2)), oldpeak, int(rng.integers(1, 4)), int(rng.integers(0, 4)),
                     int(rng.choice([3, 6, 7])), cls])
    return "\n".join(" ".join(f"{v:.1f}" if isinstance(v, float) else str(v) for v in r) for r in rows).encode()


def xlsx_bytes(df: pd.DataFrame, sheet: str = "cohort", extra_sheet: bool = True) -> bytes:
    from openpyxl import Workbook
    book = Workbook()
    ws = book.active
    ws.title = sheet
    ws.append(list(df.columns))
    for row in df.itertuples(index=False):
        ws.append([None if isinstance(v, float) and np.isnan(v) else (v.item() if hasattr(v, "item") else v)
                   for v in row])
    if extra_sheet:
        book.create_sheet("notes").append(["exported by the ward"])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
