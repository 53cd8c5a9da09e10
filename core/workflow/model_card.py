"""The model card: what a model is for, what it learned from, how good it is and where it stops.

Built from one :class:`core.model.meta.BundleMeta` — a bundle's (``RiskModel.metadata_`` after
``load_bundle``) or a model's trained in this session (:func:`training_metadata`) — into Markdown and HTML.
Headings and fixed sentences come from the one translation table (``core.i18n``, keys
``card.*``), so the card reads in English or Simplified Chinese like the rest of the interface. Every value
that reaches the HTML is escaped (a model or cohort name is user input).
"""
from __future__ import annotations

import datetime as _dt
import html
import math
from dataclasses import dataclass, field

from core.data.schema import Schema
from core.evaluate.directions import contradiction_sentence, directions_from_json, directions_to_json, model_directions
from core.evaluate.subgroups import MIN_PER_CLASS
from core.evaluate.trust import WIDE_INTERVAL
from core.data.demo import DEMO_NAME
from core.i18n import LANGUAGES, tr, unit_text
from core.metrics.bootstrap import N_BOOT
from core.model.bands import BandCutoffs
from core.model.bundle import model_meta
from core.model.meta import BundleMeta, as_bundle_meta
from core.model.recalibration import SITE_UPDATE_SOURCE

METRIC_KEYS = ("accuracy", "sensitivity", "specificity", "ppv", "npv", "roc_auc", "pr_auc", "brier",
               "calibration_slope", "calibration_intercept")
CONFIG_KEYS = ("hidden", "activation", "optimizer", "loss", "learning_rate", "l2", "dropout", "epochs",
               "batch_size", "early_stopping", "patience", "seed", "val_fraction", "test_fraction")


def bands_when(iso: str | None) -> str:
    """'2026-11-30 01:30 UTC' from an ISO time (the text as given when it is not one)."""
    try:
        return _dt.datetime.fromisoformat(iso).astimezone(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    except (TypeError, ValueError):
        return str(iso or "—")


def bands_sentence(cutoffs: BandCutoffs, lang: str = "en") -> str:
    """The model's risk bands in words, with who set them and when (or that nobody has): the same sentence
    on the Patient and Scoring pages, in the report and the model card."""
    low, high = f"{cutoffs.low:.0%}", f"{cutoffs.high:.0%}"
    who = (tr("bands.set_by", lang, name=cutoffs.set_by, when=bands_when(cutoffs.set_utc)) if cutoffs.chosen
           else tr("bands.default", lang))
    return tr("bands.sentence", lang, low=low, high=high, who=who)


# ---- the metadata of a model trained in this session -------------------------------------------
def cohort_summary(cohort) -> dict:
    """What the card says about the training cohort (a :class:`core.data.Cohort`)."""
    return {"name": cohort.name, "rows": int(cohort.n), "rows_in": int(getattr(cohort, "rows_in", 0) or cohort.n),
            "prevalence": float(cohort.prevalence), "fingerprint": cohort.fingerprint,
            "synthetic": bool(cohort.synthetic)}


def training_metadata(model, metrics: dict, *, name: str | None, cohort: dict, sizes: dict | None = None,
                      created_utc: str | None = None) -> BundleMeta:
    """The metadata of a model that is not saved yet: what save_bundle would write for it."""
    extra = card_extra(cohort, sizes)
    # The model's average direction per input with a clinical one: the card names the contradictions.
    extra["directions"] = directions_to_json(model_directions(model))
    return model_meta(model, name=name, metrics=metrics, data_fingerprint=cohort.get("fingerprint"),
                      extra=extra, created_utc=created_utc)


def card_extra(cohort: dict, sizes: dict | None = None, cv: dict | None = None) -> dict:
    """What save_bundle's ``extra`` holds so that a saved model's card says the same as before saving."""
    extra = {"cohort": dict(cohort), "sizes": dict(sizes or {})}
    if cv:
        extra["cv"] = cv
    return extra


# ---- building the card -------------------------------------------------------------------------
@dataclass
class Section:
    title: str
    paragraphs: list[str] = field(default_factory=list)
    table: list[list[str]] | None = None  # first row = header
    bullets: list[str] = field(default_factory=list)


def _num(value, digits: int = 3, lang: str = "en") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return tr("card.not_recorded", lang)
    if isinstance(value, bool):
        return tr("card.yes", lang) if value else tr("card.no", lang)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.{digits}f}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"
    if isinstance(value, (list, tuple)):
        return "-".join(str(v) for v in value)
    return str(value)


def _pct(value, lang: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return tr("card.not_recorded", lang)
    return f"{float(value):.1%}"


def _outcome_text(schema: dict, lang: str) -> str:
    target, rule = schema.get("target"), schema.get("positive_rule")
    if not target:
        return tr("card.not_recorded", lang)
    return f"{target} {rule or ''}".strip()


def option_names(lang: str) -> dict[str, str]:
    """The network's settings chosen by name (activation, optimizer, loss), as the training form shows them."""
    return {"relu": tr("train.act_relu", lang), "tanh": tr("train.act_tanh", lang),
            "sigmoid": tr("train.act_sigmoid", lang), "adam": tr("train.opt_adam", lang),
            "sgd": tr("train.opt_sgd", lang), "bce": tr("train.loss_bce", lang), "mse": tr("train.loss_mse", lang)}


def _outcome_name(schema: dict, lang: str) -> str | None:
    """The outcome in words for a model not trained on the UCI layout (None: the UCI wording applies)."""
    try:
        return Schema.model_validate(schema).outcome_name(lang) if schema else None
    except ValueError:  # an old or damaged bundle's schema: the card still renders
        return None


def card_sections(meta: BundleMeta | dict, lang: str = "en") -> list[Section]:
    meta = as_bundle_meta(meta)
    extra = meta.extra.model_dump()  # a dict: the dashboard's keys and those of older bundles alike
    cohort, sizes = meta.extra.cohort, meta.extra.sizes
    schema, config, metrics = meta.feature_schema, meta.config, meta.metrics
    na = tr("card.not_recorded", lang)
    sections = []

    outcome = _outcome_name(schema, lang)
    intended = (tr("card.intended_use_other", lang, outcome=outcome, cohort=str(cohort.get("name") or na))
                if outcome else tr("card.intended_use_text", lang))
    sections.append(Section(tr("card.intended_use", lang), paragraphs=[
        intended, bands_sentence(BandCutoffs.from_dict(meta.bands), lang)]))

    source = str(cohort.get("name") or na)
    if cohort.get("synthetic") and source == DEMO_NAME:  # the shipped demo's name is ours: in the language
        source = tr("cohort.demo_name", lang)
    rows = [[tr("card.item", lang), tr("card.value", lang)],
            [tr("card.source", lang), source],
            [tr("card.synthetic", lang), _num(cohort.get("synthetic"), lang=lang) if "synthetic" in cohort else na],
            [tr("card.rows", lang), _num(cohort.get("rows"), lang=lang) if cohort.get("rows") is not None else na],
            [tr("card.prevalence", lang), _pct(cohort.get("prevalence"), lang)],
            [tr("card.outcome", lang), _outcome_text(schema, lang)],
            [tr("card.split", lang), " / ".join(_num(sizes.get(k), lang=lang) for k in ("train", "validation", "test"))
             if sizes else f"{_num(meta.n_train, lang=lang)} / {_num(meta.n_val, lang=lang)} / {na}"],
            [tr("card.fingerprint", lang), str(meta.fingerprint or na)]]
    sections.append(Section(tr("card.training_data", lang), table=rows))

    features = [f for f in schema.get("features", []) if f.get("role", "feature") == "feature"]
    if features:
        table = [[tr("card.feature", lang), tr("card.label", lang), tr("card.kind", lang), tr("card.range", lang)]]
        kinds = {"numeric": tr("card.kind_numeric", lang), "ordinal": tr("card.kind_ordinal", lang),
                 "binary": tr("card.kind_binary", lang), "categorical": tr("card.kind_categorical", lang)}
        for f in features:
            label = (f.get("label_zh") if lang == "zh" and f.get("label_zh") else f.get("label")) or f["name"]
            if f.get("codes"):
                span = ", ".join(str((c.get("label_zh") if lang == "zh" and c.get("label_zh") else c.get("label")))
                                 for c in f["codes"])
            elif f.get("min") is not None or f.get("max") is not None:
                low, high = (_num(f.get(k), 3, lang).rstrip('0').rstrip('.') for k in ("min", "max"))
                span = f"{low}–{high}"
                span += f" {unit_text(f['unit'], lang)}" if f.get("unit") else ""  # the unit in the language
            else:
                span = na
            table.append([f["name"], label, kinds.get(f.get("kind", ""), str(f.get("kind", ""))), span])
        sections.append(Section(tr("card.inputs", lang), table=table))

    arch = [[tr("card.setting", lang), tr("card.value", lang)]]
    hidden = config.get("hidden")
    if hidden is not None:
        arch.append([tr("card.layers", lang), tr("card.layers_text", lang, n=len(features) or "?",
                                                  layers="-".join(str(u) for u in hidden))])
    names = {"hidden": tr("train.hidden", lang), "activation": tr("train.activation", lang),
             "optimizer": tr("train.optimizer", lang), "loss": tr("train.loss", lang),
             "learning_rate": tr("train.lr", lang), "l2": tr("train.l2", lang), "dropout": tr("train.dropout", lang),
             "epochs": tr("train.epochs", lang), "batch_size": tr("train.batch", lang),
             "early_stopping": tr("train.early_stopping", lang), "patience": tr("train.patience", lang),
             "seed": tr("train.seed", lang), "val_fraction": tr("card.val_fraction", lang),
             "test_fraction": tr("card.test_fraction", lang)}
    choices = option_names(lang)  # 'relu' and 'bce' as the training form says them, in either language
    for key in CONFIG_KEYS:
        if key in config:
            value = config[key]
            arch.append([names.get(key, key), choices.get(value, _num(value, 4, lang)) if isinstance(value, str)
                         else _num(value, 4, lang)])
    arch.append([tr("card.best_epoch", lang), _num(meta.best_epoch, lang=lang)])
    arch.append([tr("card.epochs_run", lang), _num(meta.epochs_run, lang=lang)])
    libraries = meta.libraries
    if libraries:
        arch.append([tr("card.libraries", lang), ", ".join(f"{k} {v}" for k, v in libraries.items())])
    sections.append(Section(tr("card.architecture", lang), table=arch))

    table = [[tr("card.metric", lang), tr("card.value", lang)]]
    for key in METRIC_KEYS:
        if key in metrics:
            table.append([tr(f"metric.{key}", lang), _metric_cell(metrics, key, lang)])
    site = extra.get("site_update") or {}
    if site:
        # A site-updated model: its metrics were measured on held-out site patients, not the training split.
        paragraphs = [tr("card.site_note", lang, site=str(site.get("site") or na), n=_num(metrics.get("n"), lang=lang),
                         method=str(site.get("method") or na), threshold=_num(metrics.get("threshold"), 2, lang))]
        title = tr("card.site_metrics", lang)
    else:
        paragraphs = ([tr("card.test_note", lang, n=_num(metrics.get("n"), lang=lang),
                          threshold=_num(metrics.get("threshold"), 2, lang))]
                      if metrics else [tr("card.no_metrics", lang)])
        if any(f"{key}_too_few" in metrics for key in METRIC_KEYS):
            paragraphs.append(tr("metric.interval_note", lang, boot=N_BOOT, n=MIN_PER_CLASS))
        title = tr("card.test_metrics", lang)
    sections.append(Section(title, paragraphs=paragraphs, table=table if len(table) > 1 else None))

    cv = meta.extra.cv
    if cv and cv.get("summary"):
        cv_table = [[tr("card.model", lang), tr("card.metric", lang), tr("card.mean", lang), tr("card.sd", lang),
                     tr("card.interval", lang)]]
        for row in cv["summary"]:
            cv_table.append([str(row.get("model")), str(row.get("metric")), _num(row.get("mean"), 3, lang),
                             _num(row.get("sd"), 3, lang),
                             f"{_num(row.get('low'), 3, lang)}–{_num(row.get('high'), 3, lang)}"])
        note = tr("card.cv_note", lang, folds=cv.get("n_splits", "?"), repeats=cv.get("n_repeats", "?"))
        sections.append(Section(tr("card.cv_metrics", lang), paragraphs=[note], table=cv_table))

    slope, intercept = metrics.get("calibration_slope"), metrics.get("calibration_intercept")
    sections.append(Section(tr("card.calibration", lang), paragraphs=[
        tr("card.calibration_text", lang, slope=_num(slope, 2, lang), intercept=_num(intercept, 2, lang))]))

    sections += trust_sections(meta, lang)
    sections += disclosure_sections(meta, lang)
    sections.append(Section(tr("card.limits", lang), bullets=known_limits(meta, lang)))
    return sections


def _subgroup_namer(schema: dict, lang: str):
    """A stored subgroup ("sex", "male"; saved in the language of the session that computed it) as the
    card's language says it: the feature's label and the code's label, in the language; bands stay as numbers."""
    features = {f["name"]: f for f in (schema or {}).get("features", []) if isinstance(f, dict) and "name" in f}
    missing = {tr("value.missing", other): tr("value.missing", lang) for other in LANGUAGES}

    def label(item: dict) -> str:
        return str((item.get("label_zh") if lang == "zh" and item.get("label_zh") else item.get("label"))
                   or item.get("name") or item.get("value"))

    def name(column, group) -> str:
        f = features.get(column)
        if f is None:
            return f"{column}: {group}"
        codes = {}
        for code in f.get("codes") or []:
            for said in (code.get("label"), code.get("label_zh"), code.get("value")):
                if said is not None:
                    codes[str(said)] = label(code)
        shown = codes.get(str(group), missing.get(str(group), str(group)))
        return tr("card.sg_row", lang, feature=label(f), group=shown)
    return name


def _metric_cell(metrics: dict, key: str, lang: str) -> str:
    """A stored test metric with the 95% interval stored beside it at training time (``<key>_low``,
    ``<key>_high``; core.metrics.metric_intervals), or "too few patients" instead of a number."""
    if metrics.get(f"{key}_too_few"):
        return tr("metric.too_few", lang)
    return _interval(metrics.get(key), metrics.get(f"{key}_low"), metrics.get(f"{key}_high"), lang)


def _interval(value, low, high, lang: str, digits: int = 3) -> str:
    if low is None or high is None or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in (low, high)):
        return _num(value, digits, lang)
    return f"{_num(value, digits, lang)} ({_num(low, digits, lang)}–{_num(high, digits, lang)})"


def useful_ranges_text(decision: dict, lang: str = "en", where: str = "trust") -> str:
    """One sentence for the decision curve's useful ranges (core.metrics.useful_ranges) as they are: each
    run of thresholds, and where a run reaches the end of the thresholds examined, that it does (the
    curve was not computed beyond it). ``decision``: trust_summary's "decision"; ``where``: "trust" (the
    page) or "card" (the model card), whose sentences differ slightly."""
    first, last = decision.get("thresholds_from"), decision.get("thresholds_to")
    ranges = decision.get("useful_ranges")
    if ranges is None and decision.get("useful_from") is not None:  # saved before ranges existed
        ranges = [{"from": decision["useful_from"], "to": decision["useful_to"], "at_first": False, "at_last": False}]
    bounds = {"first": _pct0(first, lang), "last": _pct0(last, lang)}
    if not ranges:
        return tr("trust.useful_none", lang, **bounds) if where == "trust" else tr("card.dca_none", lang, **bounds)
    parts = []
    for r in ranges:
        low, high = _pct0(r.get("from"), lang), _pct0(r.get("to"), lang)
        if r.get("at_first") and r.get("at_last"):
            parts.append(tr("dca.range_all", lang, low=low, high=high))
        elif r.get("at_first"):
            parts.append(tr("dca.range_from_first", lang, low=low, high=high))
        elif r.get("at_last"):
            parts.append(tr("dca.range_to_last", lang, low=low, high=high))
        else:
            parts.append(tr("dca.range", lang, low=low, high=high))
    text = tr("dca.range_and", lang).join(parts)
    if where == "trust":
        return tr("trust.useful_ranges", lang, ranges=text, **bounds)
    return tr("card.dca_useful", lang, ranges=text, **bounds)


def _pct0(value, lang: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return tr("card.not_recorded", lang)
    return f"{float(value):.0%}"


def trust_sections(meta: BundleMeta | dict, lang: str = "en") -> list[Section]:
    """Recalibration, the uncertainty ensemble, the Trust page's checks (calibration, decision curve,
    subgroups), external validations, and the TRIPOD+AI items these answer."""
    meta = as_bundle_meta(meta)
    trust = meta.extra.trust or {}
    external = meta.extra.external_validations
    calibration = meta.calibration
    n_members = meta.n_members
    sections = []
    answered = []

    method = calibration.get("method", "none")
    if method != "none":
        names = {"platt": tr("card.recal_platt", lang), "isotonic": tr("card.recal_isotonic", lang)}
        source = str(calibration.get("source") or "")
        if method == "platt" and source.startswith(SITE_UPDATE_SOURCE):  # not Platt scaling: the slope was kept
            names["platt"] = tr("card.recal_site", lang, site=source[len(SITE_UPDATE_SOURCE):])
        paragraphs = [tr("card.recal_text", lang, method=names.get(method, method), n=calibration.get("n", "?"),
                         source=source or tr("card.not_recorded", lang))]
        if method == "platt":
            b = calibration.get("b")
            sign = "−" if isinstance(b, (int, float)) and b < 0 else "+"  # "+ -0.245" read as a typo
            paragraphs.append(tr("card.recal_platt_params", lang, a=_num(calibration.get("a"), 3, lang), sign=sign,
                                 b=_num(abs(b) if isinstance(b, (int, float)) else b, 3, lang)))
        else:
            paragraphs.append(tr("card.recal_isotonic_note", lang))
        scores = calibration.get("cv_brier") or {}
        if scores:
            paragraphs.append(tr("card.recal_chosen", lang, scores=", ".join(
                f"{k} {_num(v, 4, lang)}" for k, v in scores.items())))
        sections.append(Section(tr("card.recalibration", lang), paragraphs=paragraphs))
        answered.append(tr("card.tripod_12f", lang))
    if isinstance(n_members, int) and n_members > 1:
        sections.append(Section(tr("card.ensemble", lang), paragraphs=[
            tr("card.ensemble_text", lang, n=n_members, width=round(WIDE_INTERVAL * 100))]))

    if trust:
        before, after = trust.get("calibration_before") or {}, trust.get("calibration_after") or {}
        intervals = trust.get("intervals") or {}
        rows = [[tr("card.metric", lang), tr("card.before_recal", lang), tr("card.in_force", lang)]]
        for key, label in (("calibration_slope", tr("metric.calibration_slope", lang)),
                           ("calibration_intercept", tr("metric.calibration_intercept", lang)),
                           ("ece", tr("card.ece", lang)), ("brier", tr("metric.brier", lang))):
            bounds = intervals.get(key) or {}
            rows.append([label, _num(before.get(key), 3, lang),
                         _interval(after.get(key), bounds.get("low"), bounds.get("high"), lang)])
        paragraphs = [tr("card.trust_test", lang, n=trust.get("n_test", "?"),
                         auc=_interval(trust.get("roc_auc"), trust.get("auc_low"), trust.get("auc_high"), lang))]
        if intervals:
            paragraphs.append(tr("card.boot_note", lang, n=N_BOOT))
        sections.append(Section(tr("card.trust_calibration", lang), paragraphs=paragraphs, table=rows))
        decision = trust.get("decision") or {}
        nb_rows = [[tr("card.threshold", lang), tr("card.nb_model", lang), tr("card.nb_all", lang)]]
        for row in decision.get("net_benefit") or []:
            nb_rows.append([_pct(row.get("threshold"), lang),
                            _interval(row.get("net_benefit"), row.get("low"), row.get("high"), lang),
                            _num(row.get("treat_all"), 3, lang)])
        sections.append(Section(tr("card.decision", lang), paragraphs=[useful_ranges_text(decision, lang, "card")],
                                table=nb_rows))
        groups = trust.get("subgroups") or []
        if groups:
            sg = [[tr("card.sg_group", lang), tr("card.rows", lang), tr("card.prevalence", lang),
                   tr("card.sg_auc", lang), tr("card.sg_citl", lang)]]
            group_name = _subgroup_namer(meta.feature_schema, lang)
            for g in groups:
                flag = " *" if g.get("small") else ""
                too_few = g.get("too_few")
                sg.append([f"{group_name(g.get('column'), g.get('group'))}{flag}", _num(g.get("n"), lang=lang),
                           _pct(g.get("prevalence"), lang),
                           tr("trust.sg_too_few", lang, n=MIN_PER_CLASS) if too_few else
                           _interval(g.get("auc"), g.get("auc_low"), g.get("auc_high"), lang),
                           "—" if too_few else _num(g.get("calibration_in_the_large"), 2, lang)])
            sections.append(Section(tr("card.subgroups", lang), paragraphs=[tr("card.sg_note", lang, n=MIN_PER_CLASS)],
                                    table=sg))
        answered += [tr("card.tripod_12e", lang), tr("card.tripod_23a", lang)]

    if external:
        ext = [[tr("card.ext_site", lang), tr("card.rows", lang), tr("card.prevalence", lang),
                tr("metric.roc_auc", lang), tr("metric.brier", lang), tr("metric.calibration_intercept", lang),
                tr("metric.calibration_slope", lang), tr("card.ext_updated", lang)]]
        for e in external:
            ext.append([str(e.get("name")), _num(e.get("n"), lang=lang), _pct(e.get("prevalence"), lang),
                        _interval(e.get("roc_auc"), e.get("auc_low"), e.get("auc_high"), lang),
                        _interval(e.get("brier"), e.get("brier_low"), e.get("brier_high"), lang),
                        _interval(e.get("calibration_intercept"), e.get("calibration_intercept_low"),
                                  e.get("calibration_intercept_high"), lang, 2),
                        _interval(e.get("calibration_slope"), e.get("calibration_slope_low"),
                                  e.get("calibration_slope_high"), lang, 2), _num(bool(e.get("recalibrated")), lang=lang)])
            after = e.get("after_update")
            if after:  # the updated model at that site, on patients the update was not fitted on
                ext.append([tr("card.ext_after_row", lang, site=str(e.get("name")), method=str(after.get("method"))),
                            _num(after.get("n"), lang=lang), _pct(after.get("observed_rate"), lang),
                            _interval(after.get("roc_auc"), after.get("auc_low"), after.get("auc_high"), lang),
                            _interval(after.get("brier"), after.get("brier_low"), after.get("brier_high"), lang),
                            _interval(after.get("calibration_intercept"), after.get("calibration_intercept_low"),
                                      after.get("calibration_intercept_high"), lang, 2),
                            _interval(after.get("calibration_slope"), after.get("calibration_slope_low"),
                                      after.get("calibration_slope_high"), lang, 2), _num(True, lang=lang)])
        sections.append(Section(tr("card.external", lang), paragraphs=[tr("card.external_note", lang)], table=ext))
        answered.append(tr("card.tripod_evaluation", lang))
        # Item 24 asks for the updated model's performance: claimed only with a held-out measurement of it.
        if any(e.get("after_update") for e in external):
            answered.append(tr("card.tripod_24", lang))
    if meta.extra.cv and meta.extra.cv.get("summary"):
        answered.insert(0, tr("card.tripod_12c", lang))
    if answered:
        sections.append(Section(tr("card.tripod", lang), paragraphs=[tr("card.tripod_note", lang)],
                                bullets=list(dict.fromkeys(answered))))
    return sections


def known_limits(meta: BundleMeta | dict, lang: str = "en") -> list[str]:
    """The fixed limits of this kind of model, then those this model's own numbers show."""
    meta = as_bundle_meta(meta)
    cohort, metrics = meta.extra.cohort, meta.metrics
    limits = [tr("card.limit_not_diagnosis", lang), tr("card.limit_population", lang),
              tr("card.limit_extrapolation", lang), tr("card.limit_association", lang)]
    if cohort.get("synthetic"):
        limits.insert(0, tr("card.limit_synthetic", lang))
    limits += direction_limits(meta, lang)
    n_train = meta.n_train
    if isinstance(n_train, (int, float)) and n_train < 1000:
        limits.append(tr("card.limit_small", lang, n=int(n_train)))
    slope = metrics.get("calibration_slope")
    if isinstance(slope, (int, float)) and math.isfinite(slope) and abs(slope - 1) > 0.2:
        limits.append(tr("card.limit_calibration", lang, slope=f"{slope:.2f}"))
    if meta.stopped_by_user:
        requested = meta.members_requested
        if requested and requested > meta.n_members:
            limits.append(tr("card.limit_stopped_members", lang, n=meta.n_members, requested=requested))
        else:
            limits.append(tr("card.limit_stopped", lang))
    return limits


def direction_limits(meta: BundleMeta | dict, lang: str = "en") -> list[str]:
    """Where the model's average direction contradicts clinical knowledge (stored at training; a bundle
    saved before then says nothing)."""
    meta = as_bundle_meta(meta)
    contradictions = [d for d in directions_from_json(getattr(meta.extra, "directions", None)) if d.contradicts]
    if not contradictions or not meta.feature_schema:
        return []
    schema = Schema.model_validate(meta.feature_schema)
    return [contradiction_sentence(d, schema, lang) for d in contradictions if d.feature in schema]


def disclosure_sections(meta: BundleMeta, lang: str = "en") -> list[Section]:
    """What the bundle's files reveal about the training patients (written by save_bundle)."""
    d = meta.disclosure
    if not d:
        return [Section(tr("card.disclosure", lang), paragraphs=[tr("card.disclosure_legacy", lang)])]
    numbers = dict(centres=d.get("centres", "?"), rows=d.get("rows", "?"), minimum=d.get("min_weight_rows", "?"),
                   tolerance=_num(d.get("tolerance"), 3, lang), change=_num(d.get("max_reason_change"), 4, lang))
    if d.get("max_reason_change") is not None:
        background = tr("card.disclosure_background", lang, **numbers)
    else:  # summarised on saving, without the measurement (a model fitted outside train_on_cohort)
        background = tr("card.disclosure_background_unmeasured", lang, **numbers)
    bullets = [background,
               tr("card.disclosure_ranges", lang, low=d.get("range_low", "?"), high=d.get("range_high", "?")),
               tr("card.disclosure_aggregates", lang)]
    if d.get("donor_groups"):  # core.model.imputation's donors: groups of patients, no patient's row
        bullets.insert(1, tr("card.disclosure_donors", lang, groups=d["donor_groups"], rows=d.get("donor_patients", "?"),
                             minimum=d.get("donor_min_patients", "?")))
    if d.get("donor_rows"):  # saved before donors were grouped: they are complete training rows
        intro = tr("card.disclosure_text_donors", lang, n=d["donor_rows"])
    else:
        intro = tr("card.disclosure_text", lang)
    return [Section(tr("card.disclosure", lang), paragraphs=[intro], bullets=bullets)]


def _title(meta: BundleMeta, lang: str) -> tuple[str, str]:
    name = str(meta.name or tr("card.unnamed", lang))
    created = str(meta.created_utc or tr("card.not_recorded", lang))
    return tr("card.title", lang, name=name), tr("card.created", lang, created=created)


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def card_markdown(meta: BundleMeta | dict, lang: str = "en") -> str:
    meta = as_bundle_meta(meta)
    title, created = _title(meta, lang)
    lines = [f"# {title}", "", f"*{created}*", "", f"> {tr('notice.decision_support', lang)}", ""]
    for s in card_sections(meta, lang):
        lines += [f"## {s.title}", ""]
        for p in s.paragraphs:
            lines += [p, ""]
        if s.table:
            header, *body = s.table
            lines.append("| " + " | ".join(_md_cell(c) for c in header) + " |")
            lines.append("|" + "---|" * len(header))
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in body]
            lines.append("")
        for b in s.bullets:
            lines.append(f"- {b}")
        if s.bullets:
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


_CSS = ("body{font-family:system-ui,-apple-system,'Segoe UI','PingFang SC','Microsoft YaHei',sans-serif;"
        "max-width:60rem;margin:2rem auto;padding:0 1rem;color:#1F2933}"
        "table{border-collapse:collapse;margin:.5rem 0 1rem}td,th{border:1px solid #ccd;padding:.25rem .6rem;"
        "text-align:left;vertical-align:top}th{background:#F4F6F8}.notice{border-left:4px solid #B22234;"
        "padding:.4rem .8rem;background:#fdf2f2}")


def card_html(meta: BundleMeta | dict, lang: str = "en") -> str:
    meta = as_bundle_meta(meta)
    esc = html.escape
    title, created = _title(meta, lang)
    out = ["<!DOCTYPE html>", f'<html lang="{"zh-CN" if lang == "zh" else "en"}">', "<head>",
           '<meta charset="utf-8">', f"<title>{esc(title)}</title>", f"<style>{_CSS}</style>", "</head>", "<body>",
           f"<h1>{esc(title)}</h1>", f"<p><em>{esc(created)}</em></p>",
           f'<p class="notice">{esc(tr("notice.decision_support", lang))}</p>']
    for s in card_sections(meta, lang):
        out.append(f"<h2>{esc(s.title)}</h2>")
        out += [f"<p>{esc(p)}</p>" for p in s.paragraphs]
        if s.table:
            header, *body = s.table
            out.append("<table><thead><tr>" + "".join(f"<th>{esc(c)}</th>" for c in header) + "</tr></thead><tbody>")
            out += ["<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in body]
            out.append("</tbody></table>")
        if s.bullets:
            out.append("<ul>" + "".join(f"<li>{esc(b)}</li>" for b in s.bullets) + "</ul>")
    out += ["</body>", "</html>"]
    return "\n".join(out) + "\n"
