"""Plotly figures built from tidy DataFrames (no Streamlit here: pages only place them).

Every builder takes plain data (a DataFrame or a dict of lists) and returns a ``plotly.graph_objects.Figure``,
so figures are testable without a browser and reusable in reports.
"""
from __future__ import annotations

import unicodedata

import numpy as np
import pandas as pd
import plotly.graph_objects as go

RISK_UP = "#C0392B"    # raises the risk
RISK_DOWN = "#2E86C1"  # lowers the risk
BAND_COLOURS = {"low": "#2E8B57", "intermediate": "#E0A800", "high": "#C0392B"}
# No named template: plotly deep-copies a template into every figure (~20-30 ms per waterfall on the
# patient page's hot path), and st.plotly_chart applies the Streamlit theme on top anyway.
_LAYOUT = dict(margin=dict(l=10, r=10, t=40, b=10))

CURVE_NAMES = {"loss": "Loss", "accuracy": "Accuracy", "auc": "ROC AUC"}


def wrap_label(text: str, width: int = 28) -> str:
    """An axis label on lines of at most ``width`` columns (a CJK character counts two), joined by <br>:
    Plotly never wraps a tick label, and a long one ran past the figure's edge in a narrow column
    ('…jor vessels coloured by fluoroscopy'; issue 16.7). Breaks at spaces; a word wider than a line
    (a Chinese label has no spaces) is broken between characters."""
    def columns(s: str) -> int:
        return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in s)

    if columns(text) <= width:
        return text
    pieces: list[str] = []
    for word in text.split():
        while columns(word) > width:  # cut between characters
            k = 1
            while columns(word[:k + 1]) <= width:
                k += 1
            pieces.append(word[:k])
            word = word[k:]
        pieces.append(word)
    lines = [""]
    for piece in pieces:
        candidate = f"{lines[-1]} {piece}" if lines[-1] else piece
        if columns(candidate) <= width:
            lines[-1] = candidate
        else:
            lines.append(piece)
    return "<br>".join(lines)


def history_frame(history: dict) -> pd.DataFrame:
    """{'loss': [...], 'val_loss': [...], ...} -> tidy (epoch, metric, split, value)."""
    rows = []
    for key, values in history.items():
        split = "validation" if key.startswith("val_") else "training"
        metric = key[4:] if key.startswith("val_") else key
        if metric not in CURVE_NAMES:
            continue
        for epoch, value in enumerate(values, start=1):
            rows.append((epoch, metric, split, float(value)))
    return pd.DataFrame(rows, columns=["epoch", "metric", "split", "value"])


def training_curves(history: dict, metric: str, best_epoch: int | None = None, max_epochs: int | None = None,
                    best_label: str = "best") -> go.Figure:
    frame = history_frame(history)
    frame = frame[frame.metric == metric]
    fig = go.Figure()
    for split, dash in (("training", "solid"), ("validation", "dash")):
        part = frame[frame.split == split]
        fig.add_trace(go.Scatter(x=part.epoch, y=part.value, mode="lines", name=split, line=dict(dash=dash)))
    if best_epoch:
        fig.add_vline(x=best_epoch, line=dict(color="grey", dash="dot"), annotation_text=best_label)
    fig.update_layout(title=CURVE_NAMES.get(metric, metric), xaxis_title="epoch", height=280, **_LAYOUT)
    if max_epochs:
        fig.update_xaxes(range=[1, max_epochs])
    return fig


def roc_curve(roc: pd.DataFrame, auc: float | None = None, name: str = "MLP") -> go.Figure:
    """roc: columns fpr, tpr."""
    fig = go.Figure()
    label = f"{name} (AUC {auc:.3f})" if auc is not None else name
    fig.add_trace(go.Scatter(x=roc.fpr, y=roc.tpr, mode="lines", name=label))
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="chance", line=dict(dash="dot", color="grey")))
    fig.update_layout(title="ROC curve", xaxis_title="1 − specificity", yaxis_title="sensitivity", height=360, **_LAYOUT)
    return fig


def calibration_curve(table: pd.DataFrame, name: str = "MLP") -> go.Figure:
    """table: columns mean_predicted, observed_rate, n (one row per bin)."""
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfect", line=dict(dash="dot", color="grey")))
    fig.add_trace(go.Scatter(x=table.mean_predicted, y=table.observed_rate, mode="lines+markers", name=name,
                             text=[f"n={n}" for n in table.n],
                             hovertemplate="predicted %{x:.0%}<br>observed %{y:.0%}<br>%{text}"))
    fig.update_layout(title="Calibration", xaxis_title="predicted risk", yaxis_title="observed rate",
                      xaxis_tickformat=".0%", yaxis_tickformat=".0%", height=360, **_LAYOUT)
    return fig


def confusion_matrix(tn: int, fp: int, fn: int, tp: int) -> go.Figure:
    z = [[tn, fp], [fn, tp]]
    fig = go.Figure(go.Heatmap(z=z, x=["predicted no disease", "predicted disease"],
                               y=["no disease", "disease"], colorscale="Blues", showscale=False,
                               text=z, texttemplate="%{text}"))
    fig.update_layout(title="Confusion matrix", height=300, **_LAYOUT)
    fig.update_yaxes(autorange="reversed")
    return fig


def waterfall(reasons: pd.DataFrame, base_value: float, risk: float, max_features: int = 13, *,
              title: str = "Why this risk (percentage points)", x_title: str = "risk, %",
              start_label: str = "average patient", end_label: str = "this patient",
              other_label: str = "{n} other features", not_measured: pd.DataFrame | None = None) -> go.Figure:
    """One patient's SHAP waterfall in percentage points.

    reasons: columns label (e.g. 'Max heart rate 108 bpm') and shap_value (probability scale), any order.
    Sorted by |shap_value|; features beyond max_features are summed into ``other_label`` ({n}: how many).
    not_measured: the same columns for inputs not measured (their mean SHAP value over the plausible
    values): drawn apart from the reasons, first under the average patient, in the order given.
    The labels are parameters so a page can translate them without updating the figure afterwards.
    """
    labels = [wrap_label(str(label)) for label in reasons.label]
    shap_values = reasons.shap_value.to_numpy(dtype=float)
    order = np.argsort(-np.abs(shap_values), kind="stable")
    labels, shap_values = [labels[i] for i in order], shap_values[order]
    if len(labels) > max_features:
        rest = shap_values[max_features - 1:]
        labels = labels[:max_features - 1] + [other_label.format(n=len(rest))]
        shap_values = np.append(shap_values[:max_features - 1], rest.sum())
    if not_measured is not None and len(not_measured):  # (the order is reversed just below)
        labels = labels + [wrap_label(str(label)) for label in not_measured.label][::-1]
        shap_values = np.append(shap_values, not_measured.shap_value.to_numpy(dtype=float)[::-1])
    # Smallest first on a reversed axis: read top-down, from the average patient through the largest
    # effects to this patient's risk.
    labels, points = labels[::-1], shap_values[::-1] * 100
    # One spec, validated once by go.Figure: update_layout/update_yaxes cost ~10 ms per figure, and this
    # one is redrawn at every change in the patient form.
    return go.Figure({
        "data": [{
            "type": "waterfall", "orientation": "h",
            "measure": ["absolute"] + ["relative"] * len(labels) + ["total"],
            "y": [start_label] + labels + [end_label],
            "x": [base_value * 100, *points.tolist(), risk * 100],
            "text": [f"{base_value:.0%}"] + [f"{p:+.1f}" for p in points] + [f"{risk:.0%}"],
            "textposition": "outside", "cliponaxis": False,  # the end labels ("+37", "79%") may sit past the axis
            "increasing": {"marker": {"color": RISK_UP}}, "decreasing": {"marker": {"color": RISK_DOWN}},
            "totals": {"marker": {"color": "#555555"}}, "connector": {"line": {"color": "#BBBBBB"}}}],
        "layout": {"title": {"text": title}, "xaxis": {"title": {"text": x_title}},
                   "yaxis": {"autorange": "reversed", "automargin": True},
                   "showlegend": False, "height": 120 + 40 * (len(labels) + 2), **_LAYOUT,
                   "margin": {**_LAYOUT["margin"], "r": 45}}})


def importance_bar(importance: pd.DataFrame) -> go.Figure:
    """importance: columns label, mean_abs_shap (probability scale)."""
    frame = importance.sort_values("mean_abs_shap")
    fig = go.Figure(go.Bar(x=frame.mean_abs_shap * 100, y=frame.label, orientation="h", marker_color=RISK_UP))
    fig.update_layout(title="Global importance: mean |SHAP| (percentage points)", height=120 + 28 * len(frame), **_LAYOUT)
    return fig


def beeswarm(shap_frame: pd.DataFrame, order: list[str]) -> go.Figure:
    """shap_frame: tidy rows (label, shap_value, value_rank in 0..1 for colour). One row of dots per feature."""
    fig = go.Figure()
    rng = np.random.default_rng(0)
    positions = {label: i for i, label in enumerate(reversed(order))}
    y = shap_frame.label.map(positions).to_numpy(dtype=float) + rng.uniform(-0.3, 0.3, len(shap_frame))
    fig.add_trace(go.Scattergl(
        x=shap_frame.shap_value * 100, y=y, mode="markers",
        marker=dict(size=5, color=shap_frame.value_rank, colorscale="RdBu_r", showscale=True,
                    colorbar=dict(title="feature value", tickvals=[0, 1], ticktext=["low", "high"])),
        text=shap_frame.value_text, hovertemplate="%{text}<br>%{x:+.1f} points<extra></extra>"))
    fig.update_yaxes(tickvals=list(positions.values()), ticktext=list(positions.keys()))
    fig.add_vline(x=0, line=dict(color="grey"))
    fig.update_layout(title="SHAP summary (each dot a patient)", xaxis_title="effect on risk, percentage points",
                      height=120 + 30 * len(order), **_LAYOUT)
    return fig


def dependence(frame: pd.DataFrame, feature_label: str, colour_label: str | None = None) -> go.Figure:
    """frame: columns value (feature value), shap_value, colour (optional second feature's value)."""
    marker = dict(size=6)
    if colour_label and "colour" in frame:
        marker.update(color=frame.colour, colorscale="Viridis", showscale=True, colorbar=dict(title=colour_label))
    fig = go.Figure(go.Scatter(x=frame.value, y=frame.shap_value * 100, mode="markers", marker=marker))
    fig.add_hline(y=0, line=dict(color="grey"))
    fig.update_layout(title=f"Dependence: {feature_label}", xaxis_title=feature_label,
                      yaxis_title="SHAP value, percentage points", height=360, **_LAYOUT)
    return fig


def sensitivity_strip(curve: pd.DataFrame, current_value: float | None, feature_label: str, unit: str | None = None, *,
                      title: str = "Risk across {axis}", y_title: str = "risk", now_label: str = "now") -> go.Figure:
    """curve: columns value, risk (the patient's risk across the feature's plausible range); a dotted line
    marks the patient's current value. ``title``'s {axis} is the feature's label with its unit, as on the
    x axis. Built as one spec, like the waterfall (redrawn at every change). ``current_value`` None: the
    value was not measured, and no line claims one."""
    axis = f"{feature_label}" + (f" ({unit})" if unit else "")
    marks = current_value is not None
    return go.Figure({
        "data": [{"type": "scatter", "x": curve.value.tolist(), "y": curve.risk.tolist(), "mode": "lines",
                  "line": {"color": RISK_UP}}],
        "layout": {"title": {"text": title.format(axis=axis)},
                   "xaxis": {"title": {"text": axis}},
                   "yaxis": {"title": {"text": y_title}, "tickformat": ".0%", "range": [0, 1]},
                   "shapes": [{"type": "line", "xref": "x", "x0": current_value, "x1": current_value,
                               "yref": "y domain", "y0": 0, "y1": 1, "line": {"color": "black", "dash": "dot"}}]
                   if marks else [],
                   "annotations": [{"text": now_label, "xref": "x", "x": current_value, "yref": "y domain", "y": 1,
                                    "xanchor": "left", "yanchor": "top", "showarrow": False}] if marks else [],
                   "height": 260, **_LAYOUT}})


def distribution_by_outcome(values: pd.Series, outcome: pd.Series, label: str, categorical: bool) -> go.Figure:
    """One feature's distribution split by outcome (overlaid histograms, or grouped bars for codes)."""
    fig = go.Figure()
    for flag, name, colour in ((0.0, "no disease", RISK_DOWN), (1.0, "disease", RISK_UP)):
        part = values[outcome == flag].dropna()
        if categorical:
            counts = part.astype(str).value_counts().sort_index()
            # A code's name on short lines under its bars: rotated, "asymptomatic" ran out of the figure
            # and into the legend (issue 16.10)
            fig.add_trace(go.Bar(x=[wrap_label(c, 12) for c in counts.index], y=counts.values, name=name,
                                 marker_color=colour))
        else:
            fig.add_trace(go.Histogram(x=part, name=name, marker_color=colour, opacity=0.6, nbinsx=30))
    fig.update_layout(title=label, barmode="group" if categorical else "overlay", height=260, **_LAYOUT)
    if categorical:
        fig.update_xaxes(tickangle=0, automargin=True, tickfont=dict(size=10))
    return fig


# ---- trust: calibration with bands, decision curves, subgroups, two models side by side -------------------
def calibration_bands(curves: dict[str, pd.DataFrame], title: str = "Calibration",
                      perfect: str = "perfect") -> go.Figure:
    """curves: name -> table with mean_predicted, observed_rate, low, high (Wilson band), n; one line each
    with error bars, and the diagonal of perfect calibration (named ``perfect``: a page passes its language's)."""
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name=perfect, line=dict(dash="dot", color="grey")))
    for name, table in curves.items():
        fig.add_trace(go.Scatter(
            x=table["mean_predicted"], y=table["observed_rate"], mode="lines+markers", name=name,
            error_y=dict(type="data", symmetric=False, array=table["high"] - table["observed_rate"],
                         arrayminus=table["observed_rate"] - table["low"]),
            customdata=np.column_stack([table["n"], table["low"], table["high"]]),
            hovertemplate="%{x:.0%} → %{y:.0%} (%{customdata[1]:.0%}–%{customdata[2]:.0%}), n=%{customdata[0]}"
                          "<extra></extra>"))
    fig.update_layout(title=title, xaxis_title="predicted risk", yaxis_title="observed rate", height=380, **_LAYOUT)
    fig.update_xaxes(range=[0, 1], tickformat=".0%")
    fig.update_yaxes(range=[0, 1], tickformat=".0%")
    return fig


def decision_curve(curve: pd.DataFrame, threshold: float | None = None, title: str = "Decision curve",
                   names: dict | None = None) -> go.Figure:
    """curve: threshold, net_benefit, treat_all, treat_none (core.decision.decision_curve)."""
    names = {"net_benefit": "model", "treat_all": "treat all", "treat_none": "treat none", **(names or {})}
    fig = go.Figure()
    styles = {"net_benefit": dict(width=3), "treat_all": dict(dash="dash", color="grey"),
              "treat_none": dict(dash="dot", color="black")}
    for column in ("net_benefit", "treat_all", "treat_none"):
        fig.add_trace(go.Scatter(x=curve["threshold"], y=curve[column], mode="lines", name=names[column],
                                 line=styles[column]))
    top = float(np.nanmax(curve[["net_benefit", "treat_all"]].to_numpy())) if len(curve) else 0.5
    fig.update_yaxes(range=[-0.05, max(0.05, top * 1.1)])
    if threshold is not None:
        fig.add_vline(x=threshold, line=dict(color="grey", dash="dot"))
    fig.update_layout(title=title, xaxis_title="threshold probability", yaxis_title="net benefit", height=380, **_LAYOUT)
    fig.update_xaxes(tickformat=".0%")
    return fig


def subgroup_auc(table: pd.DataFrame, title: str = "AUC by subgroup") -> go.Figure:
    """table: column, group, n, auc, auc_low, auc_high, small (core.subgroups); small groups in grey."""
    labels = [f"{c}: {g} (n={n})" for c, g, n in zip(table["column"], table["group"], table["n"])]
    colours = ["#9AA5B1" if small else "#2E86C1" for small in table["small"]]
    fig = go.Figure(go.Scatter(
        x=table["auc"], y=labels, mode="markers", marker=dict(color=colours, size=10),
        error_x=dict(type="data", symmetric=False, array=table["auc_high"] - table["auc"],
                     arrayminus=table["auc"] - table["auc_low"]), showlegend=False))
    fig.add_vline(x=0.5, line=dict(color="grey", dash="dot"))
    fig.update_layout(title=title, xaxis_title="ROC AUC", height=max(220, 40 + 32 * len(labels)), **_LAYOUT)
    fig.update_xaxes(range=[0, 1])
    fig.update_yaxes(autorange="reversed")
    return fig


def odds_ratio_forest(table: pd.DataFrame, title: str = "Odds ratios (95% CI)",
                      axis_title: str = "odds ratio") -> go.Figure:
    """table: label, term, odds_ratio, low, high (core.glassbox.GlassBox.odds_ratios); log x-axis."""
    labels = [f"{a} — {b}" for a, b in zip(table["label"], table["term"])]
    high = table["high"].fillna(table["odds_ratio"])
    low = table["low"].fillna(table["odds_ratio"])
    fig = go.Figure(go.Scatter(
        x=table["odds_ratio"], y=labels, mode="markers", marker=dict(size=9, color="#34495E"),
        error_x=dict(type="data", symmetric=False, array=high - table["odds_ratio"],
                     arrayminus=table["odds_ratio"] - low), showlegend=False))
    fig.add_vline(x=1.0, line=dict(color="grey", dash="dot"))
    fig.update_xaxes(type="log")
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(title=title, xaxis_title=axis_title, height=max(260, 40 + 26 * len(labels)), **_LAYOUT)
    return fig


def importance_side_by_side(table: pd.DataFrame, title: str = "What each model relies on",
                            names: tuple[str, str] = ("MLP (mean |SHAP|)", "logistic (mean |log-odds|)"),
                            axis_title: str = "share of importance") -> go.Figure:
    """table: label, mlp_mean_abs_shap, lr_mean_abs_logodds (core.glassbox.compare_global). Each model's
    importance as a share of its own total, so the two scales can sit on one axis."""
    mlp = table["mlp_mean_abs_shap"] / max(float(table["mlp_mean_abs_shap"].sum()), 1e-12)
    lr = table["lr_mean_abs_logodds"] / max(float(table["lr_mean_abs_logodds"].sum()), 1e-12)
    fig = go.Figure()
    fig.add_trace(go.Bar(y=table["label"], x=mlp, orientation="h", name=names[0], marker_color="#2E86C1"))
    fig.add_trace(go.Bar(y=table["label"], x=lr, orientation="h", name=names[1], marker_color="#9AA5B1"))
    fig.update_layout(title=title, barmode="group", xaxis_title=axis_title,
                      height=max(300, 40 + 30 * len(table)), **_LAYOUT)
    fig.update_xaxes(tickformat=".0%")
    fig.update_yaxes(autorange="reversed")
    return fig
