"""Issue 18.7: the command line's edges. Inputs and outputs are checked before TensorFlow is imported or a
model trained; a refusal is one line with no TensorFlow notes before it; ``predict --output -`` writes to
standard output. Real processes, as a user runs them."""
from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]


def cli(*args, timeout=300, **env) -> subprocess.CompletedProcess:
    environ = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    environ.pop("TF_CPP_MIN_LOG_LEVEL", None)  # as a user runs it: core/__main__ sets its own
    return subprocess.run([sys.executable, "-m", "core", *args], cwd=ROOT, env=environ, capture_output=True,
                          text=True, timeout=timeout, check=False)


def one_line_refusal(done: subprocess.CompletedProcess, pattern: str) -> None:
    lines = done.stderr.splitlines()
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert pattern in lines[0], lines


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "bundle"
    done = cli("train", "--epochs", "3", "--out", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    return out


@pytest.fixture(scope="module")
def patients(tmp_path_factory):
    from core.data import demo_cohort
    path = tmp_path_factory.mktemp("cli") / "patients.csv"
    demo_cohort().head(5).to_csv(path, index=False)
    return path


def unwritable_folder(tmp_path: Path) -> Path:
    """A folder no file can be created in, even by root (who ignores permission bits): sysfs."""
    if os.geteuid() == 0:
        return Path("/sys/kernel")
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    return folder


def test_a_missing_input_is_named_before_tensorflow_loads(tmp_path, bundle):
    for args, flag in [(("validate", "--model", str(bundle), "--data", str(tmp_path / "nope.csv")), "--data"),
                       (("counterfactual", "--model", str(bundle), "--input", str(tmp_path / "nope.csv")), "--input"),
                       (("predict", "--model", str(bundle), "--input", str(tmp_path / "nope.csv"), "--output",
                         str(tmp_path / "o.csv")), "--input"),
                       (("predict", "--model", str(tmp_path / "no-bundle"), "--input", str(bundle / "metadata.json"),
                         "--output", str(tmp_path / "o.csv")), "--model")]:
        started = time.perf_counter()
        done = cli(*args)
        one_line_refusal(done, f"{flag}: no such")
        assert time.perf_counter() - started < 5  # TensorFlow alone takes longer to import


def test_refusals_after_loading_a_model_print_no_tensorflow_notes(tmp_path, bundle):
    wrong = tmp_path / "wrong.csv"
    pd.DataFrame({"a": [1, 2, 3], "b": [4, 5, 6]}).to_csv(wrong, index=False)
    one_line_refusal(cli("validate", "--model", str(bundle), "--data", str(wrong)), "error:")
    one_line_refusal(cli("counterfactual", "--model", str(bundle), "--input", str(wrong)), "lacks columns")


def test_an_unwritable_output_is_refused_before_any_work(tmp_path, bundle, patients):
    folder = unwritable_folder(tmp_path)
    started = time.perf_counter()
    done = cli("train", "--epochs", "3", "--out", str(folder / "new-bundle"))
    one_line_refusal(done, f"--out: cannot write in {folder}")
    assert time.perf_counter() - started < 5  # refused before importing TensorFlow, let alone training
    done = cli("predict", "--model", str(bundle), "--input", str(patients), "--output", str(folder / "out.csv"))
    one_line_refusal(done, f"--output: cannot write in {folder}")
    done = cli("train", "--epochs", "3", HEART_RISK_STORE=str(folder / "store"))
    one_line_refusal(done, "the model store")


def test_predict_to_standard_output(tmp_path, bundle, patients):
    done = cli("predict", "--model", str(bundle), "--input", str(patients), "--output", "-")
    assert done.returncode == 0, done.stderr
    scored = pd.read_csv(io.StringIO(done.stdout))
    assert len(scored) == 5 and {"risk", "risk_band"} <= set(scored.columns)
    assert not (ROOT / "-").exists()
    assert done.stderr.strip().startswith("wrote 5 patients to standard output. Risk bands of this model: low below")
