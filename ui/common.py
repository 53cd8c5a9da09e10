"""Small page helpers: polite stops when an input is missing, readable errors, the validation report, tables."""
from __future__ import annotations

import math
import re

import pandas as pd
import streamlit as st

from core.errors import format_rows
from core.metrics import MIN_PER_CLASS
from ui.i18n import feature_label, t

TRAIN_PAGE = "pages/train.py"
COHORT_PAGE = "pages/cohort.py"
# Tables up to this many rows are drawn as Markdown, longer ones as st.dataframe (scroll, sort): see show_table.
STATIC_TABLE_MAX_ROWS = 50
NOT_MEASURED = "not measured"  # a coded field's own "not measured" option (its value; shown translated)
_ASCII_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")


def metric_with_interval(col, label: str, value, interval: dict | None, digits: int = 3) -> None:
    """A measure with its 95% interval under it ({"low", "high", "too_few"}), or "too few patients" instead
    of a number (the Train page's test metrics, the Trust page's site metrics)."""
    if interval and interval.get("too_few"):
        col.metric(label, t("metric.too_few"), help=t("metric.too_few_help", n=MIN_PER_CLASS))
        return
    shown = value is not None and math.isfinite(value)
    col.metric(label, f"{value:.{digits}f}" if shown else "—")
    if interval and interval.get("low") is not None and interval.get("high") is not None:
        col.caption(t("metric.interval", low=f"{interval['low']:.{digits}f}", high=f"{interval['high']:.{digits}f}"))


def need_model():
    """The session's model, or an info with a link to the Train page and a stop."""
    model = st.session_state.get("model")
    if model is None:
        st.info(t("common.need_model"), icon=":material/info:")
        st.page_link(TRAIN_PAGE, label=t("common.go_train"), icon=":material/model_training:")
        st.stop()
    return model


def need_fitting_cohort(cohort, model) -> None:
    """Stop politely when the cohort lacks a column the model needs."""
    missing = [n for n in model.preprocessor_.feature_names if n not in cohort.df.columns]
    if missing:
        st.info(t("common.cohort_mismatch", columns=", ".join(missing)), icon=":material/info:")
        st.page_link(COHORT_PAGE, label=t("common.go_cohort"), icon=":material/groups:")
        st.stop()


def _rule_text(rule: str) -> str:
    names = {"text": t("rule.text"), "infinite": t("rule.infinite"), "range": t("rule.range"), "code": t("rule.code"),
             "missing": t("rule.missing"), "outcome-missing": t("rule.outcome_missing"),
             "not-measured": t("rule.not_measured"), "diastolic≥systolic": t("rule.diastolic_systolic"),
             "bmi": t("rule.bmi"), "all-missing": t("rule.all_missing"), "excluded": t("rule.excluded")}
    return names.get(rule, rule)


def rule_text(rule: str) -> str:
    """A check's rule in the session's language (a batch job's bad rows name theirs)."""
    return _rule_text(rule)


def _action_text(action: str) -> str:
    actions = {"refused: fix the file": t("action.refused"), "set to missing": t("action.set_missing"),
               "rows dropped": t("action.rows_dropped"),
               "imputed from the training split's median": t("action.impute_median"),
               "imputed from the training split's most frequent value": t("action.impute_mode"),
               "both set to missing": t("action.both_missing"),
               "dropped from the model's inputs": t("action.dropped_input"),
               "kept out of the model's inputs (can be put back)": t("action.kept_out")}
    return actions.get(action, action)


def _detail_text(problem) -> str:
    """What was found, in the session's language where the finding is a plain count ('2 missing values')."""
    plain = f"{problem.count} missing value{'s' if problem.count != 1 else ''}"
    if problem.rule == "missing" and problem.detail == plain:
        return t("report.detail_missing_one") if problem.count == 1 else t("report.detail_missing", n=problem.count)
    return problem.detail


def problems_frame(problems) -> pd.DataFrame:
    """Every validation problem, one line each (row numbers as a person counts them)."""
    columns = [t("report.column"), t("report.rule"), t("report.detail"), t("report.count"), t("report.rows"),
               t("report.severity"), t("report.action")]
    severity = {"error": t("report.error"), "warning": t("report.warning")}
    return pd.DataFrame(
        [dict(zip(columns, [p.column, _rule_text(p.rule), _detail_text(p), p.count,
                            format_rows([r - 1 for r in p.rows]), severity.get(p.severity, p.severity),
                            _action_text(p.action)])) for p in problems],
        columns=columns)


def missing_values_frame(cohort) -> pd.DataFrame:
    """Per model feature: how many values are missing, as a count and a share of the rows."""
    names = [f.name for f in cohort.schema.model_features]
    missing = cohort.df[names].isna().sum()
    return pd.DataFrame({t("cohort.column"): names,
                         t("cohort.label"): [feature_label(cohort.schema[n]) for n in names],
                         t("cohort.missing"): missing.to_numpy(dtype=int),
                         t("cohort.missing_share"): (missing.to_numpy() / max(len(cohort.df), 1) * 100).round(1)})


def show_problems(problems) -> None:
    if not problems:
        st.success(t("report.none"), icon=":material/check_circle:")
        return
    show_table(problems_frame(problems), height=min(36 * (len(problems) + 1) + 4, 600))


def markdown_text(value) -> str:
    """Text for st.markdown that shows exactly as written: every ASCII punctuation mark gets a backslash
    (CommonMark allows one before any of them), so a column or file name such as `![x](http://host/x.png)`,
    `<b>`, `a|b`, `$x$` (LaTeX) or `:red[x]` (Streamlit's colours) is never an image, HTML, a cell boundary,
    a formula or a colour; runs of whitespace, line breaks included, become one space (a table row is one
    line). A bare web address may still be drawn as a link (GitHub's autolinks work on the unescaped text):
    a click opens it, nothing is fetched."""
    return _ASCII_PUNCTUATION.sub(r"\\\1", re.sub(r"\s+", " ", str(value)))


def _markdown_cell(value) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return markdown_text(f"{value:g}")
    return markdown_text(value)


def markdown_table(frame: pd.DataFrame) -> str:
    """A DataFrame as a Markdown table (numbers right-aligned, no index), every cell through markdown_text."""
    numeric = [pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)
               for dtype in frame.dtypes]
    lines = ["| " + " | ".join(markdown_text(c) for c in frame.columns) + " |",
             "|" + "|".join("---:" if n else "---" for n in numeric) + "|"]
    lines += ["| " + " | ".join(_markdown_cell(v) for v in row) + " |"
              for row in frame.itertuples(index=False, name=None)]
    return "\n".join(lines)


def show_table(frame: pd.DataFrame, height: int | None = None) -> None:
    """A short table as Markdown, a long one as st.dataframe. st.dataframe's frontend is 1.6 MB of
    JavaScript (Glide grid and Arrow), fetched and compiled on its first use: the Cohort page, the first page,
    loaded it for two tables of 3 and 13 rows, on the same 2 cores that were drawing the page. As Markdown,
    that page was complete in 3.13 s instead of 3.82 s (bench/dashboard.py's cold start, 8 interleaved
    runs). Over STATIC_TABLE_MAX_ROWS rows a table needs scrolling and sorting: st.dataframe."""
    if len(frame) <= STATIC_TABLE_MAX_ROWS:
        st.markdown(markdown_table(frame))
    else:
        st.dataframe(frame, hide_index=True, height=height if height is not None else "auto")


def key_figure(label: str, value: str, key: str, help: str | None = None) -> None:
    """A labelled number ("Patients" over "303") as Markdown, in a container keyed ``figure_<key>``.

    The Cohort page (the first page) uses it instead of st.metric: st.metric's frontend code is fetched on
    first use and its numbers showed ~0.4 s after the rest of the page (bench/dashboard.py, 8 interleaved
    cold starts: patient count on screen 3.55 -> 3.17 s, slowest 4.64 -> 3.58 s)."""
    with st.container(key=f"figure_{key}"):
        st.markdown(f"{label}  \n### {value}", help=help)


_TABLE_SUFFIX = re.compile(r"(\.(csv|tsv|txt|data|xlsx|xlsm|xls|parquet|gz|bz2|zip|json))+$", re.IGNORECASE)


def file_slug(name, fallback: str) -> str:
    """A name made safe for a downloaded file's name, without the extension it came with ('heart.csv'
    -> 'heart': the download then says 'risk-heart.csv', not 'risk-heart.csv.csv'). Letters of any
    script stay (队列.csv -> 队列); anything else becomes '-'."""
    stem = _TABLE_SUFFIX.sub("", str(name or "").strip())
    return re.sub(r"[^\w.-]+", "-", stem).strip("-.")[:60] or fallback
