"""Every engine benchmark in one command, with its targets.

    python -m bench [--quick] [--data PATH] [--out PATH]
    python bench/run.py ...                                   # the same

Runs, in this order (one process; the cold-start and big-data parts in fresh subprocesses):
1. training on Cleveland (70/15/15): the default model cold and warm, against the source document's Keras
   recipe, scikit-learn's MLPClassifier and logistic regression, and the levers one at a time;
2. 5x5 repeated stratified CV of the default model and the peers on identical folds;
3. one patient: risk, risk + exact SHAP, the first SHAP call after loading a bundle, the numpy floor;
4. cohort scoring of 10k and 1M synthetic patients, risk only and with top-3 reasons, against
   shap.KernelExplainer;
5. training on 70k and 1M synthetic rows: seconds per epoch and peak RSS;
6. the dashboard (bench/dashboard.py, if present): first page and form-to-chart times.
Prints a table (metric, value, target, pass) and writes bench/results.json (--quick: results.quick.json).
--quick (under 2 minutes) skips the seed recipe's CV, the 1M-row parts and most repetitions.
Exit status: 0 all targets met, 1 a target missed, 2 a section failed.

Every speed is compared with a peer measured in the same run: the machines are shared, so absolute
times move with the load average (recorded at start and end).
"""
from __future__ import annotations

import argparse
import datetime as _dt
import importlib.util
import json
import os
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `bench` and `core` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._util import ROOT, clean, quiet_tensorflow  # noqa: E402

quiet_tensorflow()


def default_data() -> Path:
    base = os.environ.get("HEART_DATA_DIR")
    base = Path(base) if base else ROOT.parent / "shared" / "data" / "uci-heart-disease"
    return base / "processed.cleveland.data"


def machine() -> dict:
    info = {"cores": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}
    try:
        info["cores_usable"] = len(os.sched_getaffinity(0))
    except AttributeError:
        pass
    try:
        info["load_average_start"] = list(os.getloadavg())
    except OSError:
        pass
    info["sched_autogroup"] = _autogroup()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                info["memory_gb"] = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    import importlib.metadata as md
    for dist in ("tensorflow", "tensorflow-cpu", "keras", "numpy", "pandas", "scikit-learn", "shap"):
        try:
            info[dist] = md.version(dist)
        except md.PackageNotFoundError:
            pass
    return info


def _autogroup() -> bool | None:
    """Linux autogroup scheduling: the cores are shared fairly between sessions, so a multi-process job
    (Ray's driver and workers are one session) gets no more CPU than one process while another session
    is busy. None where the kernel does not say."""
    try:
        return Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip() == "1"
    except OSError:
        return None


# ---- the table ----------------------------------------------------------------------------------------
def _le(limit):
    return lambda v, r: v <= limit


def _ge(limit):
    return lambda v, r: v >= limit


def _seed_cv_ok(v, r):
    same, seed = r.get("cv_auc_default_same_folds_as_seed"), r.get("cv_auc_seed_recipe")
    return None if same is None or seed is None else same >= seed


# (key, unit/format, target text, check(value, results) -> bool | None)
ROWS = [
    ("train_s_default", "{:.2f} s", "", None),
    ("train_s_default_cold", "{:.2f} s", "", None),
    ("train_s_seed_recipe", "{:.2f} s", "", None),
    ("train_speedup_vs_seed", "{:.1f}x", ">= 10x (warm)", _ge(10)),
    ("train_speedup_cold_vs_seed", "{:.1f}x", ">= 10x (cold)", _ge(10)),
    ("train_s_sklearn_mlp", "{:.2f} s", "peer", None),
    ("train_s_logreg", "{:.3f} s", "peer", None),
    ("cv_auc_default", "{:.3f}", "5x5", None),
    ("cv_auc_default_same_folds_as_seed", "{:.3f}", ">= seed recipe (same folds)", _seed_cv_ok),
    ("cv_auc_seed_recipe", "{:.3f}", "", None),
    ("cv_auc_logreg", "{:.3f}", "peer, 5x5", None),
    ("cv_auc_sklearn_mlp", "{:.3f}", "peer", None),
    ("cv_5x5_s", "{:.1f} s", "<= 60 s", _le(60)),
    ("cv_5x5_s_serial_cold", "{:.1f} s", "one process, cold", None),
    ("cv_5x5_s_ray_2", "{:.1f} s", "Ray, 2 workers, start-up included", None),
    ("cv_5x5_ray_speedup", "{:.2f}x", "", None),
    ("cv_5x5_ray_same_numbers", "{}", "must be True", lambda v, r: v is True),
    ("risk_ms_p50", "{:.3f} ms", "<= 2 ms", _le(2)),
    ("risk_shap_ms_p50", "{:.2f} ms", "<= 50 ms", _le(50)),
    ("first_shap_s", "{:.3f} s", "<= 1 s", _le(1)),
    ("numpy_forward_us", "{:.1f} us", "floor", None),
    ("score_rows_per_s", "{:,.0f}/s", ">= 100,000/s", _ge(100_000)),
    ("score_rows_per_s_10k", "{:,.0f}/s", "", None),
    ("score_rows_per_s_1m", "{:,.0f}/s", "", None),
    ("score_1m_peak_rss_mb", "{:,.0f} MB", "", None),
    ("score_explain_rows_per_s", "{:,.1f}/s", "bg 100", None),
    ("score_explain_rows_per_s_1m_subset", "{:,.1f}/s", "20k of 1M, bg 200", None),
    ("kernel_explainer_rows_per_s", "{:,.2f}/s", "peer", None),
    ("shap_speedup_vs_kernel", "{:.0f}x", ">= 50x", _ge(50)),
    ("score_explain_additivity_max_error", "{:.1e}", "<= 1e-9", _le(1e-9)),
    ("shap_kernel_rows_per_core_s_float64", "{:,.0f}/s", "per CPU-second, bg 200", None),
    ("shap_kernel_rows_per_core_s_float32", "{:,.0f}/s", "float32 games (opt-in)", None),
    ("shap_kernel_gflops_float64", "{:.1f} GFLOP/s", "vs numpy matmul 512^3, 1 thread", None),
    ("shap_kernel_share_of_matmul_peak", "{:.2f}", "", None),
    ("score_reasons_rows_per_s_local_1", "{:,.1f}/s", "one process, steady", None),
    ("score_reasons_rows_per_s_ray_2", "{:,.1f}/s", "Ray, 2 workers, steady", None),
    ("score_reasons_ray_speedup", "{:.2f}x", ">= 1.7x on 2 cores", _ge(1.7)),
    ("score_reasons_peak_rss_mb_1m", "{:,.0f} MB", "", None),
    ("score_reasons_1m_s", "{:,.0f} s", "", None),
    ("score_reasons_big_s", "{:,.0f} s", "--batch-rows run", None),
    ("score_reasons_1m_s_projected", "{:,.0f} s", "from the --batch-rows run", None),
    ("train_70k_s_per_epoch", "{:.2f} s", "", None),
    ("train_70k_peak_rss_mb", "{:,.0f} MB", "", None),
    ("train_1m_s_per_epoch", "{:.2f} s", "", None),
    ("train_1m_10ep_s", "{:.1f} s", "<= 120 s", _le(120)),
    ("train_1m_peak_rss_mb", "{:,.0f} MB", "<= 3072 MB", _le(3072)),
    # Targets of the browser benchmark are bench/dashboard.py's own (it reports them with its numbers).
    ("first_page_s", "{:.2f} s", lambda r: _target_text(r, "first_page_target_s", "<= {:g} s"),
     lambda v, r: None if r.get("first_page_target_s") is None else v <= r["first_page_target_s"]),
    ("first_page_complete_s", "{:.2f} s", "whole first page drawn", None),
    ("first_page_s_streamlit_run", "{:.2f} s", "plain streamlit run", None),
    ("first_page_s_streamlit_run_file_watcher", "{:.2f} s", "+ file watcher", None),
    ("first_page_s_returning_visitor", "{:.2f} s", "browser cache kept", None),
    ("form_to_chart_ms_p50", "{:.0f} ms", lambda r: _target_text(r, "form_to_chart_target_ms", "<= {:g} ms"),
     lambda v, r: None if r.get("form_to_chart_target_ms") is None else v <= r["form_to_chart_target_ms"]),
    ("form_to_chart_browser_busy_ms_p50", "{:.0f} ms", "browser main thread", None),
    ("form_to_chart_server_cpu_ms_p50", "{:.0f} ms", "server CPU per change", None),
]


def _target_text(results: dict, key: str, fmt: str) -> str:
    return "" if results.get(key) is None else fmt.format(results[key])


def table(results: dict) -> tuple[str, dict]:
    lines = [f"{'metric':38s} {'value':>16s}  {'target':30s} pass"]
    verdicts = {}
    notes = results.get("notes", {})
    for key, fmt, target, check in ROWS:
        target = target(results) if callable(target) else target
        value = results.get(key)
        if notes.get(key):
            target = f"{target} ({notes[key]})" if target else notes[key]
        if value is None:
            shown, verdict = "null", "n/a"
        else:
            shown = fmt.format(value)
            ok = check(value, results) if check else None
            verdict = "n/a" if ok is None else ("yes" if ok else "NO")
            if ok is not None:
                verdicts[key] = bool(ok)
        lines.append(f"{key:38s} {shown:>16s}  {target:30s} {verdict}")
    return "\n".join(lines), verdicts


# ---- the run --------------------------------------------------------------------------------------
def batch_sections(args, bundle: str, results: dict, section) -> None:
    """Batch scoring with reasons: one process vs Ray with 2 workers, then --batch-rows on Ray (at 1M
    rows or more: the score_reasons_*_1m keys)."""
    from bench import _batch
    notes = results.setdefault("notes", {})
    rows = args.batch_compare_rows if args.batch_compare_rows is not None else (2_000 if args.quick else 20_000)
    if rows > 0:
        part = section(f"batch scoring with reasons, {rows:,} rows: one process vs Ray with 2 workers "
                       "(fresh process)", lambda: _batch.batch_scoring(bundle, rows))
        results.update(part or {})
    if args.quick:
        for key in ("score_reasons_peak_rss_mb_1m", "score_reasons_1m_s"):
            notes[key] = "--quick"
        return
    big = args.batch_rows
    if big <= 0:  # --batch-rows 0: the comparison only; the large run's keys stay as they were
        return
    part = section(f"batch scoring with reasons, {big:,} rows on Ray with 2 workers (fresh process)",
                   lambda: _batch.batch_scoring_big(bundle, big))
    if not part:
        return
    results.update(part)
    peak = {"driver": part["score_reasons_big_driver_peak_rss_mb"],
            "workers": part["score_reasons_big_worker_peak_rss_mb"]}
    if big >= 1_000_000:
        # The larger of the driver's and any worker's peak (each is listed in score_reasons_ray_2_big).
        results["score_reasons_peak_rss_mb_1m"] = max(peak.values())
        results["score_reasons_1m_s"] = part["score_reasons_big_s"]
        results["score_reasons_1m_load_average"] = part.get("score_reasons_big_load_average")
        notes.pop("score_reasons_1m_s", None)
        notes["score_reasons_peak_rss_mb_1m"] = (f"{big:,} rows; driver {peak['driver']:,.0f} MB, "
                                                 f"each worker <= {peak['workers']:,.0f} MB")
    else:
        results["score_reasons_peak_rss_mb_1m"] = None
        results["score_reasons_1m_s"] = None
        notes["score_reasons_peak_rss_mb_1m"] = f"not run; at {big:,} rows: {max(peak.values()):,.0f} MB"
        projected = part["score_reasons_1m_s_projected"]
        notes["score_reasons_1m_s"] = f"not run; projected {projected:,.0f} s from {big:,} rows"


def batch_only(args, data: Path, out: Path) -> int:
    """``--only batch``: the default model fitted on the 70/15/15 split as in the full run, then only the
    batch sections; their keys replace those in the results file and every other key is kept."""
    from bench._training import _fit_default
    from bench.cv_cleveland import load
    from core.model import TrainConfig, save_bundle, split

    results = json.loads(out.read_text(encoding="utf-8")) if out.is_file() else {}
    run = {"date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
           "load_average_start": list(os.getloadavg()), "sched_autogroup": _autogroup()}
    errors = {}

    def section(name, fn):
        t0 = time.perf_counter()
        print(f"  {name} ...", flush=True)
        try:
            value = fn()
        except Exception as exc:  # noqa: BLE001 - reported like a full run's section
            errors[name] = f"{type(exc).__name__}: {exc}"
            traceback.print_exc()
            return None
        print(f"    done in {time.perf_counter() - t0:.0f} s", flush=True)
        return value

    df, schema, y = load(data)
    train, val, _ = split(y, TrainConfig())
    model = _fit_default(df, schema, y, train, val)
    with tempfile.TemporaryDirectory(prefix="heart-bench-") as tmp:
        bundle = save_bundle(model, Path(tmp) / "bundle", metrics={}, data_fingerprint="bench",
                             name="bench default model")
        batch_sections(args, str(bundle), results, section)
    run["load_average_end"] = list(os.getloadavg())
    results["batch_run"] = run  # when the batch keys were measured, and the load around them
    results.setdefault("errors", {}).update(errors)
    out.write_text(json.dumps(clean(results), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    text, _ = table(results)
    print("\n".join(line for line in text.splitlines() if line.startswith(("metric", "score_reasons"))))
    print(f"\nwritten {out} (batch keys only; load average {run['load_average_start']} -> {run['load_average_end']})")
    return 2 if errors else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="reduced run (< 2 min); 1M-row keys stay null")
    parser.add_argument("--batch-rows", type=int, default=100_000,
                        help="population for the large Ray scoring run with reasons (default 100000; 1M rows took "
                             "615 s on 2 busy cores; at 1000000 the score_reasons_*_1m keys are measured; "
                             "0: not run)")
    parser.add_argument("--data", type=Path, default=None,
                        help="the UCI Cleveland file (default: $HEART_DATA_DIR or ../shared/data/uci-heart-disease)")
    parser.add_argument("--out", type=Path, default=None,
                        help="results file (default bench/results.json; --quick: bench/results.quick.json)")
    parser.add_argument("--only", choices=["batch"], default=None,
                        help="batch: only the batch-scoring sections (one process vs Ray with 2 workers, then "
                             "--batch-rows on Ray), their keys merged into the results file (the rest kept)")
    parser.add_argument("--batch-compare-rows", type=int, default=None,
                        help="rows of the one process vs Ray comparison (default 20000; --quick 2000; 0: not run)")
    args = parser.parse_args(argv)
    data = args.data or default_data()
    out = args.out or ROOT / "bench" / ("results.quick.json" if args.quick else "results.json")
    if not data.is_file():
        print(f"the Cleveland file is not at {data}; pass --data or set HEART_DATA_DIR", file=sys.stderr)
        return 2
    if args.only == "batch":
        return batch_only(args, data, out)

    started = time.perf_counter()
    results: dict = {"date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                     "mode": "quick" if args.quick else "full", "machine": machine(), "data": str(data),
                     "notes": {}, "errors": {}}
    notes = results["notes"]
    print(f"bench ({results['mode']}) on {results['machine'].get('cores')} cores, load average "
          f"{results['machine'].get('load_average_start')}", flush=True)

    def section(name, fn):
        t0 = time.perf_counter()
        print(f"  {name} ...", flush=True)
        try:
            value = fn()
        except Exception as exc:  # one broken section must not hide the others' numbers
            results["errors"][name] = f"{type(exc).__name__}: {exc}"
            traceback.print_exc()
            print(f"    FAILED after {time.perf_counter() - t0:.0f} s", flush=True)
            return None
        print(f"    done in {time.perf_counter() - t0:.0f} s", flush=True)
        return value

    from bench import _batch, _cohort, _cvray, _patient, _scale, _training
    from bench.cv_cleveland import load

    df, schema, y = load(data)
    trained = section("training on Cleveland vs peers", lambda: _training.training(df, schema, y, args.quick))
    model = None
    if trained:
        part, model, (train, val, test) = trained
        results.update(part)
    part = section("5x5 cross-validation on shared folds", lambda: _training.cross_validation(df, schema, y, args.quick))
    if part:
        results.update(part)
    if args.quick:
        notes["cv_5x5_s_ray_2"] = "--quick"
    else:
        part = section("5x5 cross-validation: one process vs Ray with 2 workers (fresh process)",
                       lambda: _cvray.cv_ray(str(data)))
        results.update(part or {})

    with tempfile.TemporaryDirectory(prefix="heart-bench-") as tmp:
        if model is not None:
            from core.model import save_bundle
            bundle = save_bundle(model, Path(tmp) / "bundle", metrics={}, data_fingerprint="bench",
                                 name="bench default model")
            values = _patient.patient_values(model, df.iloc[test[0]])
            values_path = Path(tmp) / "patient.json"
            values_path.write_text(json.dumps(values), encoding="utf-8")
            part = section("one patient (warm)", lambda: _patient.warm_patient(model, values))
            results.update(part or {})
            part = section("first SHAP call after load_bundle (fresh process)",
                           lambda: _patient.first_shap(str(bundle), str(values_path)))
            results.update(part or {})
            part = section("cohort 10k + KernelExplainer", lambda: _cohort.cohort_10k(model, args.quick))
            results.update(part or {})
            if args.quick:
                notes["score_rows_per_s_1m"] = "--quick"
            else:
                part = section("cohort 1M (fresh process)", lambda: _cohort.cohort_1m(str(bundle), 20_000))
                results.update(part or {})
            part = section("exact-SHAP kernel on one core",
                           lambda: _batch.shap_kernel(model, 100 if args.quick else 300))
            results.update(part or {})
            batch_sections(args, str(bundle), results, section)
        measured = [results.get(k) for k in ("score_rows_per_s_10k", "score_rows_per_s_1m")]
        measured = [v for v in measured if v is not None]
        # The worst of the cohort sizes measured: the target must hold at every size.
        results["score_rows_per_s"] = min(measured) if measured else None

    epochs_70k = 3 if args.quick else 10
    part = section(f"training 70k synthetic rows x {epochs_70k} epochs (fresh process)",
                   lambda: _scale.scale(70_000, epochs_70k))
    if part:
        results["scale_70k"] = part
        results.update({"train_70k_s_per_epoch": part["s_per_epoch"], "train_70k_peak_rss_mb": part["peak_rss_mb"],
                        "train_70k_fit_s": part["fit_s"]})
    if args.quick:
        for key in ("train_1m_10ep_s", "train_1m_peak_rss_mb", "train_1m_s_per_epoch"):
            notes[key] = "--quick"
    else:
        part = section("training 1M synthetic rows x 10 epochs (fresh process)", lambda: _scale.scale(1_000_000, 10))
        if part:
            results["scale_1m"] = part
            results.update({"train_1m_10ep_s": part["fit_s"], "train_1m_peak_rss_mb": part["peak_rss_mb"],
                            "train_1m_s_per_epoch": part["s_per_epoch"]})
        part = section("training 1M rows x 3 epochs without XLA (the lever, fresh process)",
                       lambda: _scale.scale(1_000_000, 3, xla=False))
        if part:
            results["scale_1m_no_xla"] = part
            results["train_1m_s_per_epoch_no_xla"] = part["s_per_epoch"]
            if results.get("train_1m_s_per_epoch"):
                results["xla_x_1m"] = part["s_per_epoch"] / results["train_1m_s_per_epoch"]

    if importlib.util.find_spec("bench.dashboard") is not None:
        from bench import dashboard
        part = section("dashboard in a browser (bench/dashboard.py)", lambda: dashboard.run(args.quick))
        if part:
            results.update(part)
    else:
        for key in ("first_page_s", "form_to_chart_ms_p50"):
            results.setdefault(key, None)
            notes[key] = "bench/dashboard.py not present yet"

    results["peers"] = {
        "seed_recipe": {"what": "Keras Sequential 10-5-1, Adam, fit 100 epochs, batch 32, validation_data, verbose 0",
                        "train_s": results.get("train_s_seed_recipe"), "test_auc": results.get("test_auc_seed_recipe"),
                        "cv_auc": results.get("cv_auc_seed_recipe"), "cv_design": results.get("cv_seed_recipe_design")},
        "seed_recipe_no_validation": {"train_s": (results.get("levers") or {}).get("keras_fit_without_validation_s")},
        "sklearn_mlp": {"what": "MLPClassifier(hidden_layer_sizes=(10, 5)), defaults",
                        "train_s": results.get("train_s_sklearn_mlp"), "test_auc": results.get("test_auc_sklearn_mlp"),
                        "cv_auc": results.get("cv_auc_sklearn_mlp"), "cv_design": results.get("cv_sklearn_mlp_design")},
        "logreg": {"what": "core.evaluate.LogisticBaseline (LogisticRegression, C=1)",
                   "train_s": results.get("train_s_logreg"), "test_auc": results.get("test_auc_logreg"),
                   "cv_auc": results.get("cv_auc_logreg"), "cv_design": "5x5"},
        "kernel_explainer": {"what": "shap.KernelExplainer, default nsamples, same model and 100 background rows",
                             "rows_per_s": results.get("kernel_explainer_rows_per_s"),
                             "rows": results.get("kernel_explainer_rows"),
                             "additivity_max_error": results.get("kernel_explainer_additivity_max_error")},
    }
    if results.get("cv_seed_recipe_design", "").startswith("5x"):
        notes["cv_auc_seed_recipe"] = f"{results['cv_seed_recipe_design']}: first repeats of the 5x5 folds"
    try:
        results["machine"]["load_average_end"] = list(os.getloadavg())
    except OSError:
        pass
    results["total_s"] = time.perf_counter() - started

    text, verdicts = table(results)
    results["targets_met"] = verdicts
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(clean(results), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    m = results["machine"]
    print(f"\n{results['date']}  {results['mode']} run, {results['total_s']:.0f} s; {m.get('cores')} cores "
          f"({m.get('cpu', '?')}); load average at start {m.get('load_average_start')}, "
          f"at end {m.get('load_average_end')}")
    print(text)
    lv = results.get("levers")
    if lv:
        if lv.get("no_per_epoch_keras_validation_x"):
            loop = (f"no per-epoch Keras validation {lv['no_per_epoch_keras_validation_x']:.1f}x, "
                    f"in-graph epoch loop {lv['in_graph_epoch_loop_x']:.1f}x")
        else:
            loop = f"in-graph epoch loop + no Keras validation {lv['in_graph_epoch_loop_and_no_keras_validation_x']:.1f}x"
        print(f"\nlevers (Cleveland fit): {loop}, early stopping {lv['early_stopping_x']:.1f}x "
              f"(= {lv['total_warm_x']:.0f}x warm); retrace reuse {lv['retrace_reuse_x']:.1f}x per fit after the first")
    if results.get("xla_x_1m"):
        print(f"lever (1M rows): XLA {results['xla_x_1m']:.1f}x per epoch")
    for name, err in results["errors"].items():
        print(f"FAILED section {name}: {err}")
    print(f"\nwritten {out}")
    if results["errors"]:
        return 2
    return 0 if all(verdicts.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
