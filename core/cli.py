"""Command line: python -m core {train,evaluate,predict,explain,counterfactual,validate,score} --help

Exit codes: 0 success; 2 bad input (one line on stderr naming the problem); 1 an internal fault (one
line, no traceback, no patient values).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path

from core.errors import CoreError
from core.i18n import tr

DATA_ENV = "HEART_DATA"


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit code 2, like every other bad input
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m core", description="Heart-disease risk engine (decision support, not a diagnosis).")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def data_args(p):
        p.add_argument("--data", help=f"cohort file: CSV, TSV, whitespace-delimited text (.txt, .dat) or Excel .xlsx "
                                      f"(default: ${DATA_ENV} if set, else the synthetic demo cohort)")
        p.add_argument("--target",
                       help="outcome column (default: num for the UCI processed files, class for heart.dat)")
        p.add_argument("--positive", metavar="RULE", help="rule making the outcome binary, e.g. '> 0', '== Yes'")
        p.add_argument("--missing", choices=["impute", "drop"], default="impute",
                       help="missing feature values: impute (median / most frequent of the training split) or drop rows")
        p.add_argument("--include", metavar="COLS",
                       help="put back columns kept out by default (identifiers, dates, leakage), e.g. id,visit_date")

    def model_args(p):
        p.add_argument("--epochs", type=int, help="maximum epochs (default 100)")
        p.add_argument("--seed", type=int, help="random seed (default 42)")
        p.add_argument("--hidden", help="hidden units per layer, e.g. 10,5 (default)")
        p.add_argument("--activation", choices=["relu", "tanh", "sigmoid"])
        p.add_argument("--optimizer", choices=["adam", "sgd"])
        p.add_argument("--loss", choices=["bce", "mse"])
        p.add_argument("--learning-rate", type=float)
        p.add_argument("--batch-size", type=int)
        p.add_argument("--dropout", type=float)
        p.add_argument("--l2", type=float)
        p.add_argument("--patience", type=int)
        p.add_argument("--no-early-stopping", action="store_true")
        p.add_argument("--members", type=int, help="networks in the uncertainty ensemble (default 1)")

    def fitting_args(p, what):
        p.add_argument("--engine", choices=["local", "ray"],
                       help=f"fit the {what} as Ray tasks: local (a Ray instance on this machine) or ray (an "
                            f"existing cluster, --address); the same numbers as the default, one after another here")
        p.add_argument("--address", help="Ray cluster address for --engine ray (default $RAY_ADDRESS)")
        p.add_argument("--workers", type=int, help=f"{what} fitted at once (default: one per CPU)")

    p = sub.add_parser("train", help="train the MLP, save a bundle, print test metrics as JSON")
    data_args(p)
    model_args(p)
    fitting_args(p, "ensemble members (--members)")
    p.add_argument("--out", help="bundle directory to write (default: the model store, under --name)")
    p.add_argument("--name", default="heart-mlp", help="model name in the store (default heart-mlp)")

    p = sub.add_parser("evaluate", help="repeated stratified cross-validation: MLP vs logistic regression")
    data_args(p)
    model_args(p)
    p.add_argument("--cv", default="5x5", help="folds x repeats (default 5x5)")
    p.add_argument("--nested", action="store_true",
                   help="nested CV of choosing the setting from a grid (L2 x learning rate, 8 settings): the "
                        "selected CV AUC, the nested one and the optimism between them")
    p.add_argument("--outer", default="5x1", help="with --nested: outer folds x repeats (default 5x1)")
    p.add_argument("--inner", default="5x1", help="with --nested: inner folds x repeats (default 5x1)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    fitting_args(p, "folds")

    p = sub.add_parser("predict", help="risk, band and top-3 reasons for every patient of a CSV")
    p.add_argument("--model", required=True, help="bundle directory")
    p.add_argument("--input", required=True, help="patients CSV (the model's feature columns)")
    p.add_argument("--output", required=True,
                   help="CSV to write ('-': standard output): input columns + risk, risk_band, risk_low, risk_high, "
                        "missing, reason_1..3 (an input not measured: the mean risk over its plausible values, "
                        "their range, its name)")
    p.add_argument("--lang", choices=["en", "zh"], default="en", help="language of the reasons")

    p = sub.add_parser("explain", help="SHAP attributions (probability scale) per patient, with the base value "
                                       "(inputs not measured: averaged over their plausible values, named in missing)")
    p.add_argument("--model", required=True, help="bundle directory")
    p.add_argument("--input", required=True, help="patients CSV")
    p.add_argument("--json", action="store_true", help="print JSON instead of CSV")

    p = sub.add_parser("validate", help="external validation: a saved model on another site's cohort (same columns)")
    p.add_argument("--model", required=True, help="bundle directory")
    p.add_argument("--data", required=True, help="the other site's CSV: the model's feature columns and the outcome")
    p.add_argument("--missing", choices=["impute", "drop"], default="impute",
                   help="missing feature values: impute (as in training) or drop rows")
    p.add_argument("--recalibrate", metavar="NAME",
                   help="also save an intercept-recalibrated copy for this site as a new version of NAME in the store")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")

    p = sub.add_parser("counterfactual",
                       help="smallest plausible changes of modifiable features bringing each patient's risk under a target")
    p.add_argument("--model", required=True, help="bundle directory")
    p.add_argument("--input", required=True, help="patients CSV (the model's feature columns)")
    p.add_argument("--target-risk", type=float, default=0.2, help="risk to get under (default 0.2)")
    p.add_argument("--features", help="features allowed to change, e.g. trestbps,chol (default and limit: the schema's "
                                      "modifiable ones, each moved only in its clinical direction)")
    p.add_argument("--research-any-feature", action="store_true",
                   help="research only: let any feature move either way (age, sex, test results...); "
                        "the results are marked as research, not advice")
    p.add_argument("--max-changes", type=int, default=3, choices=[1, 2, 3], help="features changed at most (default 3)")
    p.add_argument("--lang", choices=["en", "zh"], default="en", help="language of the sentences")
    p.add_argument("--json", action="store_true", help="print JSON instead of sentences")

    p = sub.add_parser("score", help="score a whole population (CSV, Excel, Parquet; files, globs, folders) into "
                                     "Parquet parts + manifest.json, on Ray; a rerun resumes")
    p.add_argument("--model", required=True, help="bundle directory")
    p.add_argument("--input", required=True, nargs="+", metavar="PATH",
                   help="input files, globs (quoted) or directories of .csv/.xlsx/.parquet files")
    p.add_argument("--output", required=True, help="directory to write: part-*.parquet and manifest.json")
    p.add_argument("--reasons", action="store_true", help="add reason_1..k (exact SHAP, the slow part)")
    p.add_argument("--top", type=int, default=3, help="reasons per patient with --reasons (default 3)")
    p.add_argument("--shap", action="store_true", help="add every feature's SHAP value as shap_<feature>")
    p.add_argument("--lang", choices=["en", "zh"], default="en", help="language of the reasons")
    p.add_argument("--float32", action="store_true",
                   help="solve the SHAP games in float32: ~1.35x faster, values within 1e-6 of predict/explain")
    p.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="local: a Ray instance on this machine (default); ray: an existing cluster (--address)")
    p.add_argument("--address", help="Ray cluster address for --engine ray (default $RAY_ADDRESS)")
    p.add_argument("--workers", type=int, help="scoring actors (default: one per CPU of the machine/cluster)")
    p.add_argument("--part-rows", type=int, default=20_000, help="rows per output part (default 20000)")
    return parser


def _config(args):
    from core.model.config import TrainConfig
    fields = {"epochs": args.epochs, "seed": args.seed, "activation": args.activation,
              "optimizer": args.optimizer, "loss": args.loss, "learning_rate": args.learning_rate,
              "batch_size": args.batch_size, "dropout": args.dropout, "l2": args.l2, "patience": args.patience,
              "members": getattr(args, "members", None)}
    values = {k: v for k, v in fields.items() if v is not None}
    if args.hidden:
        try:
            values["hidden"] = tuple(int(x) for x in args.hidden.split(",") if x.strip())
        except ValueError:
            raise CoreError("--hidden takes whole numbers separated by commas, e.g. 10,5") from None
    if args.no_early_stopping:
        values["early_stopping"] = False
    try:
        return TrainConfig(**values)
    except ValueError as exc:  # pydantic's message names the field and the rule
        raise CoreError(f"bad model setting: {_first_line(exc)}") from None


def _cohort(args):
    from core.data.cohort import cohort_from_frame, load_cohort
    source = args.data or os.environ.get(DATA_ENV)
    if source:
        if not Path(source).is_file():
            raise CoreError(f"--data: no such file: {source}")
        include = [c.strip() for c in (getattr(args, "include", None) or "").split(",") if c.strip()]
        return load_cohort(source, target=args.target, positive_rule=args.positive, missing=args.missing,
                           include=include)
    from core.data.demo import DEMO_NAME, demo_cohort
    from core.data.schema import cleveland_schema
    return cohort_from_frame(demo_cohort(), cleveland_schema(), name=DEMO_NAME, synthetic=True, missing=args.missing)


def _import_tensorflow_quietly() -> None:
    """Import TensorFlow with file descriptor 2 pointed at /dev/null: its C++ libraries print start-up
    notes (oneDNN) before TF_CPP_MIN_LOG_LEVEL applies, and stderr is for our own lines (a bad input
    gets exactly one). A failing import still raises, and is reported as usual."""
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            try:
                import tensorflow  # noqa: F401
            finally:
                os.dup2(saved, 2)
    finally:
        os.close(saved)


def _writable_folder(folder: Path, flag: str) -> None:
    """CoreError unless a file can be created in ``folder`` (or in its nearest existing parent, which the
    command would create it in). Tried, not guessed from permission bits: root ignores those, and a
    read-only mount or an immutable folder refuses even root."""
    import tempfile
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise CoreError(f"{flag}: {probe} is not a folder")
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as exc:
        raise CoreError(f"{flag}: cannot write in {probe} ({exc.strerror or type(exc).__name__})") from None


def _check_paths(args) -> None:
    """Inputs exist and outputs can be written before any work is done: TensorFlow takes seconds to import
    and a training run minutes, and a mistyped path should not cost either (nor print TensorFlow's notes
    before its one-line error)."""
    command = args.command
    for flag in ("input", "data"):
        value = getattr(args, flag, None)
        if value and command != "score" and not Path(value).is_file():  # score also takes folders and globs
            raise CoreError(f"--{flag}: no such file: {value}")
    model = getattr(args, "model", None)
    if model and not Path(model).is_dir():
        raise CoreError(f"--model: no such bundle folder: {model}")
    output = getattr(args, "output", None)
    if command == "predict" and output != "-":
        if Path(output).is_dir():
            raise CoreError(f"--output: {output} is a folder; name the CSV file to write")
        _writable_folder(Path(output).absolute().parent, "--output")
    if command == "train":
        if args.out:
            out = Path(args.out)
            if out.exists() and (not out.is_dir() or any(out.iterdir())):
                raise CoreError(f"--out {out} exists and is not empty; choose a new directory (nothing is overwritten)")
            _writable_folder(out.absolute().parent, "--out")
        else:
            _writable_store()
    if command in ("train", "evaluate") and (args.engine or args.address or args.workers is not None):
        from core.workflow.engine import check_reachable, check_workers, resolve_address  # Ray: imported later
        if args.engine is None:
            raise CoreError("--address and --workers need --engine local or ray")
        address = resolve_address(args.engine, args.address)
        check_workers(args.workers)
        if address is not None:
            check_reachable(address)
    if command == "validate" and args.recalibrate:
        from core.model.store import check_name
        check_name(args.recalibrate)
        _writable_store()


def _writable_store() -> None:
    from core.model.store import store_root
    try:
        root = store_root()  # creates it when missing
    except OSError as exc:
        raise CoreError(f"the model store ($HEART_RISK_STORE): cannot create {exc.filename} "
                        f"({exc.strerror or type(exc).__name__})") from None
    _writable_folder(root, "the model store ($HEART_RISK_STORE)")


def _warn(problems) -> None:
    for problem in problems:
        print(f"warning: {problem.message}", file=sys.stderr)


def cmd_train(args) -> int:
    from core.model.bundle import save_bundle, save_to_store
    from core.workflow.model_card import cohort_summary, training_metadata
    from core.workflow.pipeline import train_on_cohort
    cohort = _cohort(args)
    _warn(cohort.problems)
    config = _config(args)
    _import_tensorflow_quietly()
    if args.engine is not None and config.members == 1:
        print("warning: --engine spreads the members of an ensemble (--members 2 or more); "
              "a single network is fitted here", file=sys.stderr)
        args.engine = args.address = args.workers = None
    with _fitting_run(args) as run:
        result = train_on_cohort(cohort, config, run=run)
    # The dashboard's metadata: a bundle trained here opens on the Model card page too.
    meta = training_metadata(result.model, result.metrics, name=args.name, cohort=cohort_summary(cohort),
                             sizes=result.sizes)
    if args.out:
        out = Path(args.out)
        if out.exists() and any(out.iterdir()):  # checked before training too; a race since is still refused
            raise CoreError(f"--out {out} exists and is not empty; choose a new directory (nothing is overwritten)")
        save_bundle(result.model, out, meta=meta)
    else:
        out = save_to_store(result.model, args.name, meta=meta)
    print(json.dumps({"bundle": str(out), "cohort": cohort.name, "synthetic": cohort.synthetic,
                      "sizes": result.sizes, "test_metrics": result.metrics}, indent=2, default=_json_default))
    return 0


@contextlib.contextmanager
def _fitting_run(args):
    """None (fit here, one after another) or Ray tasks for --engine; Ray is imported only then. Ray's own
    notes (a worker that died and is retried) go to stderr: stdout is for the result."""
    if args.engine is None and args.address is None and args.workers is None:
        yield None
        return
    from core.workflow.engine import fitting_run
    with contextlib.redirect_stdout(sys.stderr), fitting_run(args.engine, args.address, args.workers) as run:
        yield run


def _folds(text: str, option: str) -> tuple[int, int]:
    try:
        n_splits, n_repeats = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise CoreError(f"{option} takes FOLDSxREPEATS, e.g. 5x5") from None
    if n_splits < 2 or n_repeats < 1:
        raise CoreError(f"{option} needs at least 2 folds and 1 repeat")
    return n_splits, n_repeats


def cmd_evaluate(args) -> int:
    from core.evaluate.cv import cross_validate
    n_splits, n_repeats = _folds(args.cv, "--cv")
    if args.nested:
        outer, inner = _folds(args.outer, "--outer"), _folds(args.inner, "--inner")
    cohort = _cohort(args)
    _warn(cohort.problems)
    if args.engine is None or args.nested:  # on Ray the folds are fitted by the workers: no TensorFlow here
        _import_tensorflow_quietly()
    if args.nested:
        return _evaluate_nested(args, cohort, outer, inner)
    with _fitting_run(args) as run:
        result = cross_validate(cohort.df, cohort.y, cohort.schema, _config(args), n_splits=n_splits,
                                n_repeats=n_repeats, run=run)
    summary = result.summary
    if args.json:
        print(summary.to_json(orient="records", indent=2))
    else:
        print(f"{cohort.name}: {cohort.n} patients, {n_splits}-fold x {n_repeats} repeated stratified CV")
        print(summary.to_string(index=False))
    return 0


def _evaluate_nested(args, cohort, outer, inner) -> int:
    from core.evaluate.cv import nested_cross_validate
    with _fitting_run(args) as run:
        result = nested_cross_validate(cohort.df, cohort.y, cohort.schema, base=_config(args), outer_splits=outer[0],
                                       outer_repeats=outer[1], inner_splits=inner[0], inner_repeats=inner[1],
                                       run=run)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, default=_json_default))
        return 0
    print(f"{cohort.name}: {cohort.n} patients; nested CV, outer {result.design['outer']}, inner "
          f"{result.design['inner']}, {len(result.design['grid'])} settings (L2 x learning rate), chosen by ROC AUC")
    chosen = ", ".join(f"{k} {v:g}" for k, v in result.selected.items())
    print(f"  selected CV AUC (setting chosen on these same folds: {chosen}): {result.selected_auc:.3f}")
    print(f"  nested CV AUC (outer test folds never used for the choice):   {result.nested_auc:.3f} "
          f"(sd over outer folds {result.nested_sd:.3f})")
    print(f"  optimism (selected - nested):                                  {result.optimism:+.3f}")
    return 0


def _read_patients(path: str, model):
    """The patients to score, checked against the model's schema: a value the model was never meant to
    see (text in a number column, ±inf, outside the plausible range, a code it does not know — e.g. a file
    coded for another model) is refused, naming column, rows and rule; a missing value stays missing (the
    risk is then given over its plausible values, core.workflow.risk)."""
    from core.data.read import read_table
    from core.data.validation import check_features
    from core.errors import format_rows
    if not Path(path).is_file():
        raise CoreError(f"--input: no such file: {path}")
    table = read_table(path).df
    missing = [name for name in model.schema.feature_names if name not in table.columns]
    if missing:
        raise CoreError(f"--input lacks columns the model needs: {', '.join(missing)}")
    checked, problems = check_features(table, model.schema)
    # "Not measured" codes (0 mmHg, -9) are missing values as the training file had them; they are imputed.
    bad = [p for p in problems if p.rule not in ("missing", "not-measured")]
    if bad:
        details = "; ".join(f"{p.column}: {p.detail}, {'row' if p.count == 1 else 'rows'} "
                            f"{format_rows([r - 1 for r in p.rows])}" for p in bad)
        raise CoreError(f"--input: {details} (the model scores only plausible values and codes it knows)")
    _warn(problems)
    table = table.reset_index(drop=True)
    for name in checked.columns:  # the checked columns: markers like "?" missing, numbers as numbers
        table[name] = checked[name]
    return table


def cmd_predict(args) -> int:
    from core.model.bundle import load_bundle
    from core.workflow.export import write_csv
    from core.workflow.risk import score_table
    _import_tensorflow_quietly()
    model = load_bundle(args.model)
    table = _read_patients(args.input, model)
    scored = score_table(model, table, lang=args.lang)
    from core.model.bands import model_bands
    from core.workflow.model_card import bands_sentence
    bands = bands_sentence(model_bands(model), args.lang)  # what risk_band means, and who chose it
    if args.output == "-":  # a pipe: the CSV on standard output, the count on standard error
        from core.workflow.export import csv_bytes
        sys.stdout.buffer.write(csv_bytes(scored))
        sys.stdout.flush()
        print(f"wrote {len(scored)} patients to standard output. {bands}", file=sys.stderr)
        return 0
    write_csv(scored, args.output)
    print(f"wrote {len(scored)} patients to {args.output}. {bands}", file=sys.stderr)
    return 0


def cmd_explain(args) -> int:
    import numpy as np
    from core.model.bundle import load_bundle
    from core.workflow.risk import explain_rows, missing_ranges
    _import_tensorflow_quietly()
    model = load_bundle(args.model)
    table = _read_patients(args.input, model)
    raw = model.preprocessor_.encode(table)
    # A patient with inputs not measured: SHAP values and risk averaged over the inputs' plausible values
    # (still adding up to the risk), with the range and the inputs' names; see core.workflow.risk.
    expl = explain_rows(model, raw)
    low, high = missing_ranges(model, raw)
    names = np.asarray(expl.feature_names, dtype=object)
    missing = [list(names[row]) for row in np.isnan(raw)]

    def number(x):
        return None if np.isnan(x) else float(x)

    if args.json:
        rows = [{"row": i + 1, "risk": float(expl.output[i]), "risk_low": number(low[i]), "risk_high": number(high[i]),
                 "missing": missing[i], "shap_values": dict(zip(expl.feature_names, map(float, expl.shap_values[i])))}
                for i in range(len(table))]
        print(json.dumps({"scale": "probability", "base_value": float(expl.base_value), "patients": rows}, indent=2))
    else:
        import pandas as pd
        frame = pd.DataFrame(expl.shap_values, columns=expl.feature_names)
        frame.insert(0, "missing", [", ".join(m) for m in missing])
        frame.insert(0, "risk_high", high)
        frame.insert(0, "risk_low", low)
        frame.insert(0, "risk", expl.output)
        frame.insert(0, "base_value", expl.base_value)
        print(frame.to_csv(index=False), end="")
    return 0


def cmd_counterfactual(args) -> int:
    from core.model.bundle import load_bundle
    from core.workflow.counterfactual import counterfactuals, direction_conflicts, meaning, to_json
    from core.workflow.risk import patient_from_row
    if not 0 < args.target_risk < 1:
        raise CoreError("--target-risk must be between 0 and 1, e.g. 0.2")
    _import_tensorflow_quietly()
    model = load_bundle(args.model)
    table = _read_patients(args.input, model)
    features = [x.strip() for x in args.features.split(",") if x.strip()] if args.features is not None else None
    research = args.research_any_feature
    if features is not None and not research:
        fixed = [n for n in features if n in model.schema and not model.schema[n].actionable]
        if fixed:
            raise CoreError(f"--features: {', '.join(fixed)} not modifiable in a known clinical direction "
                            "(age, sex, symptoms and test results never are); --research-any-feature lets "
                            "them move, marked as research")
    conflicts = [c.sentence(model.schema, args.lang) for c in direction_conflicts(model)]
    patients = []
    for i in range(len(table)):
        try:
            result = counterfactuals(model, patient_from_row(model, table, i), args.target_risk, features,
                                     max_changes=args.max_changes, research=research)
        except CoreError as exc:  # one patient's bad value does not stop the others
            patients.append({"row": i + 1, "error": str(exc)})
            continue
        patients.append({"row": i + 1, **to_json(result, model.schema, args.lang)})
    if args.json:
        print(json.dumps({"target_risk": args.target_risk, "meaning": meaning(args.lang), "research": research,
                          "direction_conflicts": conflicts, "patients": patients}, indent=2, ensure_ascii=False,
                         default=_json_default))
        return 0
    print(meaning(args.lang))
    for text in conflicts:
        print(text)
    for patient in patients:
        print(tr("cli.row", args.lang, row=patient["row"]))
        if "error" in patient:
            print(f"  error: {patient['error']}")
        elif not patient["alternatives"]:
            print(f"  {patient['message']}")
        for alt in patient.get("alternatives", []):
            print(f"  {alt['sentence']}")
    return 0


def cmd_validate(args) -> int:
    from core.evaluate.external import (
        external_cohort,
        external_extra,
        recalibrate_intercept,
        validate_external,
    )
    from core.model.bundle import load_bundle
    _import_tensorflow_quietly()
    model = load_bundle(args.model)
    cohort = external_cohort(model, args.data, missing=args.missing)
    _warn(cohort.problems)
    result = validate_external(model, cohort)
    report = result.summary()
    report["decision_curve"] = result.decision[["threshold", "net_benefit", "treat_all"]].round(6).to_dict(orient="records")
    report["calibration_curve"] = result.curve.round(6).to_dict(orient="records")
    if args.recalibrate:
        from core.evaluate.external import held_out_update, update_summary
        from core.model.bundle import save_to_store
        updated = recalibrate_intercept(model, result)
        # The update's performance from site patients it was not fitted on (cross-fitted); these, not the
        # training split's test metrics of the model before the update, are the new bundle's metrics.
        held_out = held_out_update(model, result)
        meta = model.metadata_
        extra = external_extra(meta, result, recalibrated=True, held_out=held_out)
        path = save_to_store(updated, args.recalibrate, meta=meta.updated(extra=extra), metrics=held_out["metrics"])
        report["recalibrated"] = {"bundle": str(path), **update_summary(held_out)}
    if args.json:
        print(json.dumps(report, indent=2, default=_json_default))
        return 0
    print(f"{result.name}: {result.n} patients, outcome in {result.prevalence:.1%} "
          f"(training: {'unknown' if result.training_prevalence is None else f'{result.training_prevalence:.1%}'})")
    for key in ("roc_auc", "brier", "calibration_intercept", "calibration_slope", "ece", "mean_risk"):
        value = report[key]
        interval = f"  (95% CI {report['auc_low']:.3f}-{report['auc_high']:.3f})" if key == "roc_auc" else ""
        print(f"  {key:<22} {value:.3f}{interval}" if value is not None else f"  {key:<22} n/a")
    for message in report["messages"]:
        print(f"note: {message}")
    if "recalibrated" in report:
        r = report["recalibrated"]
        print(f"saved intercept-recalibrated model: {r['bundle']}")
        print(f"  after the update, on {r['evaluated_on']}: calibration-in-the-large {r['calibration_intercept']:.3f}, "
              f"mean risk {r['mean_risk']:.3f} vs observed {r['observed_rate']:.3f}, Brier {r['brier']:.3f}")
    return 0


def cmd_score(args) -> int:
    # Ray and the engine are imported here only: the other commands and the dashboard never pay for them.
    from core.workflow.batch import Options, print_progress, score
    if args.part_rows < 1:
        raise CoreError("--part-rows must be at least 1")
    # Ray prints its own notes (a worker that died and is retried) on stdout: they belong on stderr,
    # stdout is for the summary below.
    with contextlib.redirect_stdout(sys.stderr):
        result = score(args.model, args.input, args.output,
                       Options(reasons=args.reasons, top=args.top, shap=args.shap, lang=args.lang,
                               precision="float32" if args.float32 else "float64"),
                       engine=args.engine, address=args.address, workers=args.workers, part_rows=args.part_rows,
                       progress=print_progress)
    m = result.manifest
    for bad in m["bad_files"]:
        print(f"warning: {bad['file']}: {bad['error']}", file=sys.stderr)
    if m["rows"]["bad"]:
        print(f"warning: {m['rows']['bad']} rows not scored (a value the model must not see); "
              f"see bad_rows in {result.output / 'manifest.json'}", file=sys.stderr)
    print(json.dumps({"output": str(result.output), "complete": m["complete"], "rows": m["rows"],
                      "parts_written": m["parts_written"], "parts_skipped": result.skipped_parts,
                      "bad_files": len(m["bad_files"]), "timings": m["timings"]}, indent=2))
    if not m["complete"]:
        return 1
    return 2 if m["bad_files"] else 0  # a bad file is bad input, reported; the other files were scored


COMMANDS = {"train": cmd_train, "evaluate": cmd_evaluate, "predict": cmd_predict, "explain": cmd_explain,
            "counterfactual": cmd_counterfactual, "validate": cmd_validate, "score": cmd_score}


def _first_line(exc) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _json_default(o):
    import numpy as np
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def main(argv=None) -> int:
    args = _build_parser().parse_args(argv)
    try:
        _check_paths(args)
        return COMMANDS[args.command](args)
    except CoreError as exc:  # one line, always: a message from a library may carry more
        print(f"error: {_first_line(exc)}", file=sys.stderr)
        return 2
    except (OSError, UnicodeError) as exc:
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""  # the user's own path
        print(f"error: {type(exc).__name__}: {getattr(exc, 'strerror', None) or 'cannot read or write a file'}{where}",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # never a traceback; the type name helps a bug report without leaking values
        print(f"internal error ({type(exc).__name__}); please report it", file=sys.stderr)
        return 1
