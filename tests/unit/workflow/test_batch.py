"""Batch scoring (core.workflow.batch, `python -m core score`): same numbers as predict/explain for every
row, bad rows and bad files reported without stopping the job, atomic and resumable output, and a real
two-node Ray cluster on this machine that loses a worker mid-job and still writes every row once."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.errors import CoreError
from core.workflow import batch

ROOT = Path(__file__).resolve().parents[3]
TOL = 1e-12


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny model (2 epochs on 120 synthetic patients) saved as a bundle."""
    from core.data import cleveland_schema, cohort_from_frame, demo_cohort
    from core.model import TrainConfig, save_bundle
    from core.workflow import train_on_cohort

    cohort = cohort_from_frame(demo_cohort(n=120, seed=4), cleveland_schema(), name="batch", synthetic=True)
    result = train_on_cohort(cohort, TrainConfig(epochs=2))
    bundle = save_bundle(result.model, tmp_path_factory.mktemp("batch") / "bundle", result.metrics,
                         cohort.fingerprint, "batch-test")
    return result.model, bundle


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A population split as a hospital export would be: two CSV files, a Parquet file with several row
    groups, an Excel workbook; one CSV row with text in a number column and one with an impossible value;
    a file lacking a model column and a file that is not Parquet at all."""
    from core.data import demo_cohort
    folder = tmp_path_factory.mktemp("inputs")
    people = demo_cohort(n=900, seed=5).reset_index(drop=True)
    people.insert(0, "patient_id", [f"P{i:05d}" for i in range(len(people))])
    csv_a = people.iloc[:300].copy()
    csv_a["chol"] = csv_a["chol"].astype(object)
    csv_a.loc[17, "chol"] = "high"  # text in a numeric column: file row 18
    csv_a.loc[250, "trestbps"] = 900  # impossible blood pressure: file row 251
    csv_a.to_csv(folder / "export-1.csv", index=False)
    people.iloc[300:500].to_csv(folder / "export-2.csv", index=False)
    people.iloc[500:800].to_parquet(folder / "export-3.parquet", row_group_size=70)
    people.iloc[800:900].to_excel(folder / "export-4.xlsx", index=False)
    people.iloc[:20].drop(columns=["thal"]).to_csv(folder / "no-thal.csv", index=False)
    (folder / "broken.parquet").write_bytes(b"PAR1 this is not a parquet file")
    return folder, people


@pytest.fixture(scope="module")
def ref(trained, inputs) -> pd.DataFrame:
    """What predict (score_table) and explain (explain_rows: a row with missing inputs averaged over their
    plausible values) give for every row, in one process."""
    from core.workflow import explain_rows
    model, _ = trained
    _, people = inputs
    from core.workflow import score_table
    table = score_table(model, people, with_reasons=True, with_shap=True)
    expl = explain_rows(model, model.preprocessor_.encode(people))
    shap_cols = [f"shap_{n}" for n in model.preprocessor_.feature_names]
    assert np.max(np.abs(table[shap_cols].to_numpy() - expl.shap_values)) <= TOL
    return table.set_index("patient_id")


def check_against_reference(scored: pd.DataFrame, ref: pd.DataFrame, bad_ids: set[str]) -> None:
    """Every row once; every well-formed row's risk, band, reasons and SHAP values as predict/explain."""
    assert scored["patient_id"].is_unique, "a row was written twice"
    assert set(scored["patient_id"]) == set(ref.index), "a row was lost"
    good = scored[~scored["patient_id"].isin(bad_ids)].set_index("patient_id")
    expected = ref.loc[good.index]
    assert np.max(np.abs(good["risk"].to_numpy() - expected["risk"].to_numpy())) <= TOL
    shap_cols = [c for c in ref.columns if c.startswith("shap_")]
    assert np.max(np.abs(good[shap_cols].to_numpy() - expected[shap_cols].to_numpy())) <= TOL
    for c in ("risk_band", "reason_1", "reason_2", "reason_3", "missing"):
        assert (good[c].to_numpy() == expected[c].to_numpy()).all(), c
    # a row with inputs not measured: its range over their plausible values, as predict gives it
    np.testing.assert_allclose(good[["risk_low", "risk_high"]].to_numpy(dtype=float),
                               expected[["risk_low", "risk_high"]].to_numpy(dtype=float), atol=TOL, rtol=0)
    assert good["missing"].str.len().gt(0).any()  # the population has such rows
    bad = scored[scored["patient_id"].isin(bad_ids)]
    assert bad["risk"].isna().all() and bad["risk_band"].isna().all() and (bad["problem"] != "").all()


def good_inputs(folder: Path) -> list[str]:
    return [str(folder / "export-1.csv"), str(folder / "export-[2].csv"), str(folder / "export-3.parquet"),
            str(folder / "export-4.xlsx")]


OPTIONS = batch.Options(reasons=True, top=3, shap=True)


def test_inline_same_numbers_bad_rows_and_files_reported(trained, inputs, ref, tmp_path):
    _, bundle = trained
    folder, _ = inputs
    result = batch.score(bundle, [str(folder)], tmp_path / "out", OPTIONS, engine="inline", part_rows=64)
    m = result.manifest
    assert m["complete"] and m["parts_failed"] == 0
    scored = batch.read_scores(tmp_path / "out")
    check_against_reference(scored, ref, {"P00017", "P00250"})
    # the bad rows: file, row and rule, never the value
    bad = {(Path(b["file"]).name, b["row"], b["column"], b["rule"]) for b in m["bad_rows"]}
    assert bad == {("export-1.csv", 18, "chol", "text"), ("export-1.csv", 251, "trestbps", "range")}
    assert "high" not in json.dumps(m["bad_rows"]) and "900" not in json.dumps(m["bad_rows"])
    assert m["rows"] == {"total": 900, "scored": 898, "bad": 2}
    # the bad files: reported, and the others scored
    errors = {Path(b["file"]).name: b["error"] for b in m["bad_files"]}
    assert set(errors) == {"no-thal.csv", "broken.parquet"}
    assert "thal" in errors["no-thal.csv"]
    # the manifest says what was run on what
    assert m["model"]["sha256"] and m["model"]["name"] == "batch-test"
    assert {Path(i["file"]).name: i["rows"] for i in m["inputs"]} == {
        "export-1.csv": 300, "export-2.csv": 200, "export-3.parquet": 300, "export-4.xlsx": None}
    assert all(len(i["sha256"]) == 64 for i in m["inputs"])
    assert "risk" in m["columns"] and "reason_3" in m["columns"] and m["engine"]["name"] == "inline"
    assert m["timings"]["score_s"] > 0
    # parts: csv split at line boundaries, parquet across row groups; each row's source is kept
    assert max(p.name for p in (tmp_path / "out").glob("part-*")) == "part-f00004-p00000.parquet"
    row = scored[scored["patient_id"] == "P00650"].iloc[0]
    assert Path(row["source_file"]).name == "export-3.parquet" and row["source_row"] == 151


def test_cli_bad_input_one_line(trained, tmp_path):
    _, bundle = trained
    proc = subprocess.run([sys.executable, "-m", "core", "score", "--model", str(bundle), "--input",
                           str(tmp_path / "nothing-*.csv"), "--output", str(tmp_path / "o")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "nothing to score" in proc.stderr
    assert "ray" not in proc.stderr.lower()


def test_score_command_does_not_import_ray_elsewhere():
    """Ray is imported by the score job only: the other commands and the dashboard never load it."""
    code = ("import sys, core.cli, core.data, core.model, core.explain, core.workflow, core.workflow.batch; "
            "print('ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         check=False)
    assert out.stdout.strip() == "False", out.stderr


def test_resume_skips_written_parts_and_never_shows_half_parts(trained, inputs, ref, tmp_path, monkeypatch):
    _, bundle = trained
    folder, _ = inputs
    out = tmp_path / "out"
    args = (bundle, good_inputs(folder), out, OPTIONS)
    first = batch.score(*args, engine="inline", part_rows=64)
    parts = sorted(first.manifest["parts"])
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("part-*.parquet")}

    # A crash: the manifest lost its last two parts (the driver died before recording them), one of
    # them never reached its file; a killed worker left a half-written temporary file behind.
    manifest = json.loads((out / batch.MANIFEST).read_text())
    lost, unrecorded = parts[-1], parts[-2]
    for pid in (lost, unrecorded):
        manifest["parts"].pop(pid)
    manifest["complete"] = False
    (out / batch.MANIFEST).write_text(json.dumps(manifest))
    (out / f"part-{lost}.parquet").unlink()
    (out / f".part-{lost}.parquet.tmp-deadbeef").write_bytes(b"PAR1 half")
    assert len(batch.read_scores(out)) == 900 - first.manifest["parts"][lost]["rows"] \
        - first.manifest["parts"][unrecorded]["rows"]  # a reader sees only whole, recorded parts

    scored_parts = []
    real = batch.run_part
    monkeypatch.setattr(batch, "run_part", lambda m, part, *a: scored_parts.append(part.id) or real(m, part, *a))
    again = batch.score(*args, engine="inline", part_rows=64)
    assert sorted(scored_parts) == sorted([lost, unrecorded])
    assert again.skipped_parts == len(parts) - 2 and again.manifest["complete"]
    assert not list(out.glob(".*tmp-*"))
    after = {p.name: p.stat().st_mtime_ns for p in out.glob("part-*.parquet")}
    assert all(after[name] == t for name, t in before.items() if lost not in name and unrecorded not in name)
    check_against_reference(batch.read_scores(out), ref, {"P00017", "P00250"})

    # A part whose file changed since it was recorded is scored again, not trusted.
    victim = out / f"part-{parts[0]}.parquet"
    victim.write_bytes(victim.read_bytes()[:-10] + b"0123456789")
    scored_parts.clear()
    batch.score(*args, engine="inline", part_rows=64)
    assert scored_parts == [parts[0]]

    # A write that fails half-way leaves no part and no temporary file.
    import pyarrow.parquet as pq

    def failing_write(table, where, **kw):
        Path(where).write_bytes(b"PAR1 half")
        raise OSError(28, "No space left on device")

    victim.unlink()
    monkeypatch.setattr(pq, "write_table", failing_write)
    broken = batch.score(*args, engine="inline", part_rows=64)
    assert not broken.manifest["parts"][parts[0]].get("path") and broken.manifest["parts_failed"] == 1
    assert not victim.exists() and not list(out.glob(".*tmp-*"))

    # An output folder inside the input folder is not read back as input on a rerun.
    monkeypatch.undo()  # writes work again
    export = tmp_path / "export"
    export.mkdir()
    (export / "export-2.csv").write_bytes((folder / "export-2.csv").read_bytes())
    batch.score(bundle, [str(export)], export / "scores", OPTIONS, engine="inline", part_rows=400)
    again = batch.score(bundle, [str(export)], export / "scores", OPTIONS, engine="inline", part_rows=400)
    assert again.skipped_parts == 1 and [Path(i["file"]).name for i in again.manifest["inputs"]] == ["export-2.csv"]

    # Another job's folder is refused, never mixed.
    with pytest.raises(CoreError, match="another job"):
        batch.score(bundle, good_inputs(folder), out, batch.Options(reasons=False), engine="inline", part_rows=64)


# ---- a real Ray cluster on this machine --------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_cluster():
    """A head node and a second node process, 1 CPU each, on free ports with a private temp folder
    (short: Ray's socket paths must fit in 107 bytes); shut down at teardown."""
    from ray.cluster_utils import Cluster
    temp = tempfile.mkdtemp(prefix="rayt", dir="/tmp")
    cluster = Cluster(initialize_head=True, shutdown_at_exit=True, head_node_args={
        "num_cpus": 1, "include_dashboard": False, "gcs_server_port": _free_port(), "temp_dir": temp,
        "dashboard_agent_listen_port": _free_port(), "metrics_export_port": _free_port(),
        "env_vars": {"TF_CPP_MIN_LOG_LEVEL": "2"}})
    cluster.add_node(num_cpus=1, temp_dir=temp)
    cluster.wait_for_nodes()
    cluster.temp_dir = temp  # whose workers this test may kill (see _scorer_pids)
    try:
        yield cluster
    finally:
        cluster.shutdown()
        import shutil
        shutil.rmtree(temp, ignore_errors=True)


def _scorer_pids(session_dir: str) -> list[int]:
    """The scoring actors of *this* test's cluster: a PartScorer worker whose raylet (its parent) runs in
    the cluster's own temp folder. Any PartScorer on the machine would also match other sessions' jobs
    (a benchmark's 1M-row run lost a worker to this test)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
                if b"PartScorer" not in cmdline or b"ray::" not in cmdline:
                    continue
                parent = (entry / "stat").read_text().rsplit(")", 1)[1].split()[1]
                parent_cmdline = Path("/proc", parent, "cmdline").read_bytes()
            except (OSError, IndexError):
                continue
            if session_dir.encode() in parent_cmdline:
                pids.append(int(entry.name))
    return pids


def test_the_kill_picks_only_this_clusters_workers(tmp_path):
    """Another session's scoring worker (same process title, another raylet) is never a candidate: the
    first version of _scorer_pids matched any PartScorer on the machine and killed a benchmark's worker."""
    other = subprocess.Popen(["bash", "-c", "exec -a 'ray::MapWorker(MapBatches(PartScorer)).submit' sleep 60"])
    try:
        deadline = time.monotonic() + 10
        while b"PartScorer" not in Path(f"/proc/{other.pid}/cmdline").read_bytes() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert b"PartScorer" in Path(f"/proc/{other.pid}/cmdline").read_bytes()
        assert other.pid not in _scorer_pids(str(tmp_path))
    finally:
        other.kill()
        other.wait()


def test_ray_cluster_worker_killed_mid_job_loses_and_duplicates_nothing(trained, inputs, ref, ray_cluster, tmp_path):
    _, bundle = trained
    folder, _ = inputs
    out = tmp_path / "out"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(ROOT))
    job = subprocess.Popen([sys.executable, "-m", "core", "score", "--model", str(bundle), "--input", str(folder),
                            "--output", str(out), "--reasons", "--shap", "--engine", "ray",
                            "--address", ray_cluster.address, "--part-rows", "40"],
                           cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killed = None
    try:
        deadline = time.monotonic() + 300  # a busy CI machine: each actor starts Ray and loads the bundle
        while time.monotonic() < deadline and job.poll() is None:
            pids = _scorer_pids(ray_cluster.temp_dir)
            written_at_kill = len(list(out.glob("part-*.parquet")))
            if written_at_kill >= 2 and pids:
                killed = pids[0]
                os.kill(killed, signal.SIGKILL)  # a worker process dies in the middle of the job
                break
            time.sleep(0.05)
        stdout, stderr = job.communicate(timeout=600)
    finally:
        if job.poll() is None:
            job.kill()
    assert killed is not None, f"no scoring worker was seen running: {stderr[-2000:]}"
    assert job.returncode == 2, stderr[-2000:]  # 2: two bad files reported, everything else scored
    assert stdout.strip(), stderr[-3000:]
    summary = json.loads(stdout)  # stdout is the summary only: Ray's own notes go to stderr
    m = batch.read_manifest(out)
    assert summary["complete"] and m["complete"] and m["engine"]["name"] == "ray" and m["engine"]["workers"] == 2
    assert written_at_kill < m["parts_written"] == 22, "the worker was killed in the middle of the job"
    check_against_reference(batch.read_scores(out), ref, {"P00017", "P00250"})
    assert {(Path(b["file"]).name, b["row"]) for b in m["bad_rows"]} == {("export-1.csv", 18), ("export-1.csv", 251)}
    assert {Path(b["file"]).name for b in m["bad_files"]} == {"no-thal.csv", "broken.parquet"}
    assert not list(out.glob(".*tmp-*"))
    # The workers scored in numpy: the bundle's weights read without Keras, TensorFlow never imported.
    assert not any(r["worker_tensorflow"] for r in m["parts"].values())
