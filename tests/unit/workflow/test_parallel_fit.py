"""Model fitting spread over Ray (core.workflow.engine; `python -m core evaluate/train --engine local|ray`):
the folds of cross-validation and the members of an ensemble fitted as Ray tasks on a real local Ray
instance with 2 CPUs give exactly the numbers of the serial in-process run, and a failing worker is a
one-line CoreError."""
from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest

from core.data import cleveland_schema, cohort_from_frame, demo_cohort
from core.errors import CohortError, CoreError
from core.evaluate import cross_validate
from core.model import RiskModel, TrainConfig
from core.workflow import engine

TIMING = ["fit_seconds"]


@pytest.fixture(scope="module")
def ray_local():
    """One local Ray instance with 2 CPUs for the module (what --engine local --workers 2 starts)."""
    with engine.ray_session("local", workers=2):
        yield


@pytest.fixture(scope="module")
def cohort():
    return cohort_from_frame(demo_cohort(n=160, seed=11), cleveland_schema(), name="parallel", synthetic=True)


def test_cross_validation_on_ray_equals_the_serial_run(cohort, ray_local):
    config = TrainConfig(epochs=12, patience=4, seed=3)
    serial = cross_validate(cohort.df, cohort.y, cohort.schema, config, n_splits=2, n_repeats=2, seed=5)
    done = []
    run = engine.RayMap(workers=2)
    spread = cross_validate(cohort.df, cohort.y, cohort.schema, config, n_splits=2, n_repeats=2, seed=5, run=run,
                            progress=lambda k, n: done.append((k, n)))
    assert run.used_workers == 2 and done[-1] == (4, 4)
    # Every fold's metrics, every out-of-fold risk, the summary and the paired differences: bit for bit.
    pd.testing.assert_frame_equal(serial.folds.drop(columns=TIMING), spread.folds.drop(columns=TIMING),
                                  check_exact=True)
    pd.testing.assert_frame_equal(serial.predictions, spread.predictions, check_exact=True)
    pd.testing.assert_frame_equal(serial.summary, spread.summary, check_exact=True)
    pd.testing.assert_frame_equal(serial.paired, spread.paired, check_exact=True)
    assert len(spread.folds) == 8 and spread.folds["epochs"].max() > 1


def test_ensemble_members_on_ray_equal_the_serial_fit(cohort, ray_local):
    config = TrainConfig(epochs=15, patience=5, members=3, seed=8)
    df, y = cohort.df.reset_index(drop=True), np.asarray(cohort.y, dtype=float)
    train, val, test = slice(0, 110), slice(110, 135), slice(135, None)
    serial = RiskModel(cohort.schema, config).fit(df.iloc[train], y[train], df.iloc[val], y[val])
    run = engine.RayMap(workers=2)
    spread = RiskModel(cohort.schema, config).fit(df.iloc[train], y[train], df.iloc[val], y[val], run=run)
    assert run.used_workers == 2 and serial.n_members_ == spread.n_members_ == 3
    for a, b in zip(serial.member_weights_, spread.member_weights_, strict=True):
        for wa, wb in zip(a, b, strict=True):
            np.testing.assert_array_equal(wa, wb)
    assert len({np.asarray(m[0]).tobytes() for m in spread.member_weights_}) == 3  # three different networks
    assert serial.history_ == spread.history_ and serial.best_epoch_ == spread.best_epoch_
    np.testing.assert_array_equal(serial.predict_risk(df.iloc[test]), spread.predict_risk(df.iloc[test]))
    assert not spread.stopped_by_user_ and spread.config.members == 3


def test_a_grid_search_on_ray_equals_the_serial_one_in_one_call(cohort, ray_local):
    """Every candidate's folds go to Ray in one call (a cluster's cores all busy), with the serial AUCs."""
    from core.evaluate import grid_search
    grid = ({"l2": 0.01, "learning_rate": 0.01}, {"l2": 0.05, "learning_rate": 0.003})
    base = TrainConfig(epochs=6, patience=3, seed=2)
    serial = grid_search(cohort.df, cohort.y, cohort.schema, grid, base, n_splits=2, n_repeats=1, seed=4)
    calls = []
    spread_on = engine.RayMap(workers=2)

    def run(fn, shared, items, progress=None):
        calls.append(list(items))
        return spread_on(fn, shared, calls[-1], progress)

    spread = grid_search(cohort.df, cohort.y, cohort.schema, grid, base, n_splits=2, n_repeats=1, seed=4, run=run)
    assert calls == [[(0, 0), (0, 1), (1, 0), (1, 1)]]
    pd.testing.assert_frame_equal(serial, spread, check_exact=True)


def test_a_fold_whose_worker_dies_is_retried_and_the_numbers_do_not_change(cohort, ray_local, tmp_path):
    """The worker fitting fold 2 dies (the process exits, as on a lost node) the first time; Ray runs the
    fold again on a fresh worker and the result is the serial one."""
    from core.evaluate import fit_fold

    def dies_once(shared, k):
        marker = tmp_path / f"fold-{k}"
        if k == 2 and not marker.exists():
            marker.touch()
            os._exit(1)
        return fit_fold(shared, k)

    spread_on = engine.RayMap(workers=2)

    def run(fn, shared, items, progress=None):
        assert fn is fit_fold
        return spread_on(dies_once, shared, items, progress)

    config = TrainConfig(epochs=6, patience=3, seed=1)
    serial = cross_validate(cohort.df, cohort.y, cohort.schema, config, n_splits=3, n_repeats=1, seed=2)
    spread = cross_validate(cohort.df, cohort.y, cohort.schema, config, n_splits=3, n_repeats=1, seed=2, run=run)
    assert (tmp_path / "fold-2").exists()  # the worker did die once
    pd.testing.assert_frame_equal(serial.folds.drop(columns=TIMING), spread.folds.drop(columns=TIMING),
                                  check_exact=True)
    pd.testing.assert_frame_equal(serial.predictions, spread.predictions, check_exact=True)


def test_a_task_error_comes_back_as_the_same_core_error(ray_local):
    def diverges(shared, item):
        raise CohortError("training diverged (the loss is not a number); lower the learning rate")

    with pytest.raises(CohortError, match=r"^training diverged \(the loss is not a number\); lower the learning rate$"):
        engine.RayMap(workers=2)(diverges, None, [1, 2, 3])


def test_a_dead_worker_is_a_one_line_core_error(ray_local):
    def crashes(shared, item):
        os._exit(3)  # the worker process dies (a killed node, out of memory)

    with pytest.raises(CoreError) as caught:
        engine.RayMap(workers=2, max_retries=1)(crashes, None, [1, 2])
    message = str(caught.value)
    assert message.startswith("a Ray worker failed (") and "nothing was kept" in message
    assert "\n" not in message and "Traceback" not in message
    # Ray is still usable after a failed run.
    assert engine.RayMap(workers=2)(lambda shared, item: shared + item, 10, [1, 2, 3]) == [11, 12, 13]


def test_evaluate_command_with_engine_local_prints_the_serial_numbers(ray_local, capsys):
    from core.cli import main
    args = ["evaluate", "--cv", "2x1", "--epochs", "3", "--seed", "4", "--json"]
    assert main(args) == 0
    serial = json.loads(capsys.readouterr().out)
    assert main(args + ["--engine", "local", "--workers", "2"]) == 0
    spread = json.loads(capsys.readouterr().out)
    assert serial == spread and {row["model"] for row in serial} == {"mlp", "logistic"}


def test_train_command_with_engine_local_saves_the_serial_ensemble(ray_local, capsys, tmp_path):
    from core.cli import main
    from core.model import load_bundle
    args = ["train", "--members", "3", "--epochs", "6", "--seed", "9"]
    assert main(args + ["--out", str(tmp_path / "serial")]) == 0
    serial = json.loads(capsys.readouterr().out)
    assert main(args + ["--out", str(tmp_path / "ray"), "--engine", "local", "--workers", "2"]) == 0
    spread = json.loads(capsys.readouterr().out)
    assert serial["test_metrics"] == spread["test_metrics"] and serial["sizes"] == spread["sizes"]
    a, b = load_bundle(tmp_path / "serial"), load_bundle(tmp_path / "ray")
    assert a.n_members_ == b.n_members_ == 3
    for wa, wb in zip(a.member_weights_, b.member_weights_, strict=True):
        for x, y in zip(wa, wb, strict=True):
            np.testing.assert_array_equal(x, y)


def test_train_command_with_one_network_says_it_is_fitted_here(ray_local, capsys, tmp_path):
    from core.cli import main
    assert main(["train", "--epochs", "2", "--out", str(tmp_path / "one"), "--engine", "local"]) == 0
    assert "a single network is fitted here" in capsys.readouterr().err


def test_evaluate_on_a_two_node_cluster_prints_the_serial_numbers(capsys, tmp_path):
    """`--engine ray --address`: a separate driver process attaches to a head node and a second node (one
    CPU each), its folds run there as Ray tasks, and the JSON is the in-process one, byte for byte."""
    import subprocess
    import sys
    from pathlib import Path

    from ray_cluster import two_node_cluster

    from core.cli import main
    root = Path(__file__).resolve().parents[3]
    args = ["evaluate", "--cv", "2x2", "--epochs", "4", "--seed", "6", "--json"]
    assert main(args) == 0
    serial = capsys.readouterr().out
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(root)}
    env.pop("RAY_ADDRESS", None)
    with two_node_cluster() as cluster:
        done = subprocess.run([sys.executable, "-m", "core", *args, "--engine", "ray", "--address", cluster.address],
                              cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout == serial


def test_an_unreachable_cluster_is_one_line_at_once(capsys, monkeypatch):
    """Nothing listens at the address: refused before the cohort is read (ray.init would retry for minutes)."""
    import time

    from ray_cluster import free_port

    from core.cli import main
    address = f"127.0.0.1:{free_port()}"
    t0 = time.perf_counter()
    for command in (["evaluate", "--cv", "2x1"], ["train", "--members", "3"]):
        assert main(command + ["--engine", "ray", "--address", address]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"error: cannot reach the Ray cluster at {address} (") and "\n" not in err
    assert time.perf_counter() - t0 < 20
    with pytest.raises(CoreError, match="HOST:PORT"):
        engine.check_reachable("head-node-without-port")


@pytest.mark.parametrize("extra, message", [
    (["--engine", "ray"], "error: --engine ray needs --address (or $RAY_ADDRESS): the cluster to run on"),
    (["--engine", "local", "--workers", "0"], "error: --workers must be at least 1"),
    (["--workers", "2"], "error: --address and --workers need --engine local or ray"),
])
def test_engine_options_are_checked_before_any_work(extra, message, capsys, monkeypatch):
    from core.cli import main
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    for command in (["evaluate", "--cv", "2x1"], ["train", "--members", "3"]):
        assert main(command + extra) == 2
        assert capsys.readouterr().err.strip() == message
