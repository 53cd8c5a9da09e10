"""core.plots figures with the session's language, and the tidy frames they are drawn from.

core.plots builds the figures (English defaults, no Streamlit); here titles, axis names and trace names
are replaced from the translation table, and values are shown as the clinic writes them.
"""
from __future__ import annotations

import pandas as pd

from core import plots
from ui.i18n import feature_label, feature_value, lang, outcome_name, outcome_words, t


def _names(fig, mapping: dict) -> None:
    fig.for_each_trace(lambda tr: tr.update(name=mapping.get(tr.name, tr.name)))


def _outcome_names(schema=None) -> dict:
    positive, negative = outcome_words(schema)
    return {"no disease": negative, "disease": positive}


def distribution(cohort, feature):
    values = cohort.df[feature.name]
    coded = feature.is_coded
    if coded:
        values = values.map(lambda v: None if pd.isna(v) else feature_value(feature, v))
    label = feature_label(feature) + (f" ({feature.display_unit(lang())})" if feature.unit and not coded else "")
    fig = plots.distribution_by_outcome(values, pd.Series(cohort.y, index=values.index), label, coded)
    _names(fig, _outcome_names(getattr(cohort, "schema", None)))
    # The legend between the title and the plot: below it, it sat on the codes' names under the bars
    fig.update_layout(legend=dict(orientation="h", y=1.02, yanchor="bottom", x=0, xanchor="left"),
                      title=dict(y=0.98, yanchor="top"), margin=dict(t=70), height=320 if coded else 280)
    return fig


def training_curve(history: dict, metric: str, best_epoch=None, max_epochs=None):
    fig = plots.training_curves(history, metric, best_epoch=best_epoch, max_epochs=max_epochs,
                                best_label=t("fig.best"))
    titles = {"loss": t("fig.loss"), "accuracy": t("fig.accuracy"), "auc": t("fig.auc")}
    _names(fig, {"training": t("fig.training"), "validation": t("fig.validation")})
    fig.update_layout(title=titles.get(metric, metric), xaxis_title=t("fig.epoch"),
                      legend=dict(orientation="h", y=-0.3))
    return fig


def roc(roc_table: pd.DataFrame, auc: float | None):
    fig = plots.roc_curve(roc_table, auc=auc, name=t("fig.model"))
    _names(fig, {"chance": t("fig.chance")})
    fig.update_layout(title=t("fig.roc"), xaxis_title=t("fig.fpr"), yaxis_title=t("fig.tpr"))
    return fig


def calibration(table: pd.DataFrame):
    fig = plots.calibration_curve(table, name=t("fig.model"))
    _names(fig, {"perfect": t("fig.perfect")})
    fig.update_layout(title=t("fig.calibration"), xaxis_title=t("fig.predicted"), yaxis_title=t("fig.observed"))
    return fig


def confusion(m: dict, schema=None):
    fig = plots.confusion_matrix(m["tn"], m["fp"], m["fn"], m["tp"])
    positive, negative = outcome_words(schema)
    name = outcome_name(schema)
    predicted = ([t("fig.pred_negative_named", outcome=name), t("fig.pred_positive_named", outcome=name)] if name
                 else [t("fig.pred_negative"), t("fig.pred_positive")])
    fig.update_traces(x=predicted, y=[negative, positive])
    fig.update_layout(title=t("fig.confusion", threshold=f"{m['threshold']:.0%}"))
    return fig


# ---- one patient -------------------------------------------------------------------------------
def waterfall(reasons: list, base_value: float, risk: float, not_measured: list = ()):
    """reasons: the measured features' Reasons; not_measured: core.workflow.NotMeasured (drawn apart from
    the reasons, first under the average patient, with their share of the uncertainty)."""
    frame = pd.DataFrame({"label": [r.subject for r in reasons],
                          "shap_value": [r.shap for r in reasons]})
    unknown = pd.DataFrame({"label": [t("fig.not_measured", label=n.label, share=f"{n.share:.0%}")
                                      for n in not_measured],
                            "shap_value": [n.shap for n in not_measured]})
    return plots.waterfall(frame, base_value, risk, title=t("fig.waterfall"), x_title=t("fig.risk_percent"),
                           start_label=t("fig.average_patient"), end_label=t("fig.this_patient"),
                           other_label=t("fig.other_features", n="{n}"), not_measured=unknown)


def sensitivity(curve: pd.DataFrame, current: float | None, label: str, unit: str | None):
    return plots.sensitivity_strip(curve, current, label, unit, title=t("fig.sensitivity", feature="{axis}"),
                                   y_title=t("fig.risk"), now_label=t("fig.now"))


# ---- explanations of a sample ------------------------------------------------------------------
def _labels(pre) -> dict:
    return {f.name: feature_label(f) for f in pre.features}


def importance(expl, pre, importance_table: pd.DataFrame):
    frame = importance_table.assign(label=importance_table.feature.map(_labels(pre)))
    fig = plots.importance_bar(frame)
    fig.update_layout(title=t("fig.importance"), xaxis_title=t("fig.points"))
    return fig


def decoded(expl, pre, name: str) -> pd.Series:
    """A feature's values over the explained rows, as clinical values (codes decoded)."""
    j = expl.feature_names.index(name)
    return pd.Series([pre.decode_value(j, v) for v in expl.raw[:, j]])


def beeswarm(expl, pre, order: list[str]):
    """order: feature names, most important first."""
    labels = _labels(pre)
    parts = []
    for name in order:
        j = expl.feature_names.index(name)
        raw = pd.Series(expl.raw[:, j])
        rank = raw.rank(pct=True).fillna(0.5)  # colour: where the value sits in this sample, low to high
        feature = pre.features[j]
        text = [feature_value(feature, v) if v is not None else t("value.unknown_code")
                for v in decoded(expl, pre, name)]
        parts.append(pd.DataFrame({"label": labels[name], "shap_value": expl.shap_values[:, j],
                                   "value_rank": rank.to_numpy(), "value_text": text}))
    fig = plots.beeswarm(pd.concat(parts, ignore_index=True), [labels[n] for n in order])
    fig.update_layout(title=t("fig.beeswarm"), xaxis_title=t("fig.effect"))
    fig.update_traces(marker=dict(colorbar=dict(title=t("fig.feature_value"), tickvals=[0, 1],
                                                ticktext=[t("fig.low"), t("fig.high")])))
    return fig


def dependence(expl, pre, name: str, colour: str | None):
    j = expl.feature_names.index(name)
    feature = pre.features[j]
    values = decoded(expl, pre, name)
    coded = feature.is_categorical
    frame = pd.DataFrame({"value": [feature_value(feature, v) for v in values] if coded else values.astype(float),
                          "shap_value": expl.shap_values[:, j]})
    colour_label, colour_feature = None, None
    if colour and colour != name:
        k = expl.feature_names.index(colour)
        frame["colour"] = expl.raw[:, k]  # a code's index or a measurement: a colour scale either way
        colour_feature = pre.features[k]
        colour_label = feature_label(colour_feature)
    label = feature_label(feature) + (f" ({feature.display_unit(lang())})" if feature.unit and not coded else "")
    fig = plots.dependence(frame, label, colour_label)
    if colour_label and colour_feature.is_categorical:  # name the codes, not their index
        codes = pre.categories_[colour_feature.name]
        fig.update_traces(marker=dict(colorbar=dict(tickvals=list(range(len(codes))),
                                                    ticktext=[feature_value(colour_feature, c) for c in codes])))
    fig.update_layout(title=t("fig.dependence", feature=label), yaxis_title=t("fig.shap_points"))
    return fig


__all__ = ["distribution", "training_curve", "roc", "calibration", "confusion", "waterfall", "sensitivity",
           "importance", "beeswarm", "dependence", "decoded"]
