"""Nothing lost: faults injected while models are trained and saved, and what survives them.

- A real process that trains and saves in a loop is killed with SIGKILL after random delays: every
  version it reported saved still loads, and no half-written version is ever visible.
- The same, deterministically, in this process: a crash (no clean-up, as after a kill) at each step of a
  save, and a full disk.
- Two processes saving under one name at the same time: every save gets its own version.
- The store's location (environment, Streamlit secret ``model_store``), a store that is not a folder, a
  corrupted saved version: the dashboard says so and keeps working.
"""
from __future__ import annotations

import errno
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.model import store
from core.errors import BundleError
from i18n_table import tr

ROOT = Path(__file__).resolve().parents[3]
APP = str(ROOT / "app.py")
NAME = "fault-test"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One small model for the module (in this process) and a bundle of it."""
    from core.data import cohort_from_frame
    from core.data import demo_cohort
    from core.model import TrainConfig, save_bundle
    from core.workflow import train_on_cohort
    from core.data import cleveland_schema

    cohort = cohort_from_frame(demo_cohort(n=120, seed=4), cleveland_schema(), name="faults", synthetic=True)
    result = train_on_cohort(cohort, TrainConfig(epochs=2))
    bundle = save_bundle(result.model, tmp_path_factory.mktemp("faults") / "bundle", result.metrics,
                         cohort.fingerprint, NAME)
    return result.model, cohort, bundle


def assert_store_intact(root: Path, expected: list[Path]) -> list[dict]:
    """Every version directory is complete and loads; the versions in ``expected`` are all there."""
    from core.model import load_bundle
    listed = store.list_models(root)
    paths = {Path(r["path"]) for r in listed}
    assert set(map(Path, expected)) <= paths, sorted(set(map(Path, expected)) - paths)
    for model_dir in (p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for version in model_dir.iterdir():
            # anything visible under a model's name is a finished version: no half-written one
            assert re.fullmatch(r"v\d+", version.name), version
            assert {p.name for p in version.iterdir()} >= {"metadata.json", "model.keras", "preprocess.json"}, version
            assert version in paths
    for row in listed:
        load_bundle(row["path"])  # hashes, safe mode, shapes
    return listed


# ---- SIGKILL during training and saving -------------------------------------------------------------
KILL_SCRIPT = textwrap.dedent('''
    import sys
    sys.path.insert(0, {root!r})
    from core.data import cohort_from_frame
    from core.data import demo_cohort
    from core.model import TrainConfig, save_bundle
    from core.workflow import train_on_cohort
    from core.data import cleveland_schema
    from core.model import save_model
    from pathlib import Path

    cohort = cohort_from_frame(demo_cohort(n=120, seed=1), cleveland_schema(), name="kill", synthetic=True)
    import keras  # noqa: F401 - loaded before "ready", so that the kill delays fall into the loop
    print("ready", flush=True)
    i = 0
    while True:
        print("phase train", i, flush=True)
        result = train_on_cohort(cohort, TrainConfig(epochs=1 + i % 3, seed=i))
        print("phase save", i, flush=True)
        path = save_model(lambda d: save_bundle(result.model, d, result.metrics, cohort.fingerprint, {name!r}),
                          {name!r}, root=Path({store!r}))
        print("saved", path, flush=True)
        i += 1
''')


def _read_until(proc, prefix: str, saved: list) -> float:
    """Read the script's lines up to one starting with ``prefix``; keep the versions it reports saved."""
    while True:
        line = proc.stdout.readline()
        assert line, f"the script ended before printing {prefix!r}"
        if line.startswith("saved "):
            saved.append(Path(line.split(" ", 1)[1].strip()))
        if line.startswith(prefix):
            return time.perf_counter()


def test_sigkill_during_training_and_saving_loses_no_saved_version(tmp_path):
    """Kills at random moments, and kills timed to fall inside a save (a fraction of the time the
    previous save of that process took)."""
    root = tmp_path / "store"
    root.mkdir()
    script = tmp_path / "train_and_save.py"
    script.write_text(KILL_SCRIPT.format(root=str(ROOT), name=NAME, store=str(root)))
    rng = random.Random(20240601)
    saved, kills = [], []
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    plan = [("any moment", rng.uniform(0.2, 2.5)), ("inside a save", rng.uniform(0.05, 0.5)),
            ("inside a save", rng.uniform(0.5, 0.95))]
    for number, (when, fraction) in enumerate(plan, start=1):
        proc = subprocess.Popen([sys.executable, "-u", str(script)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                text=True, env=env)
        _read_until(proc, "ready", saved)
        if when == "any moment":
            time.sleep(fraction)
        else:
            started = _read_until(proc, "phase save 0", saved)
            took = _read_until(proc, "saved ", saved) - started
            _read_until(proc, "phase save 1", saved)
            time.sleep(fraction * took)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        rest = proc.stdout.read().splitlines()
        saved += [Path(line.split(" ", 1)[1]) for line in rest if line.startswith("saved ")]
        staging = len([p for p in root.iterdir() if p.name.startswith(".")])
        kills.append(f"{when} ({fraction:.2f}): staging folders {staging}")
        listed = assert_store_intact(root, saved)
        # a save in flight at a kill is either finished (visible, complete) or invisible
        assert 0 <= len(listed) - len(saved) <= number
    leftovers = [p.name for p in root.iterdir() if p.name.startswith(".")]
    print(f"\nSIGKILL x{len(plan)}: {kills}; {len(listed)} versions in the store ({len(saved)} reported saved), "
          f"all load; staging folders left: {len(leftovers)}")
    young = store.save_model(lambda d: shutil.copytree(saved[0], d), NAME, root=root)
    assert len([p for p in root.iterdir() if p.name.startswith(".")]) == len(leftovers)  # young: maybe running
    for name in leftovers:  # an hour later, the next save removes them
        os.utime(root / name, (time.time() - 7200, time.time() - 7200))
    old = store.save_model(lambda d: shutil.copytree(saved[0], d), NAME, root=root)
    assert not [p for p in root.iterdir() if p.name.startswith(".")]
    assert_store_intact(root, saved + [young, old])


# ---- the same, deterministically: a crash at each step of a save ----------------------------------
class Killed(BaseException):
    """A crash: not an Exception, so nothing on the way handles it."""


def _no_cleanup(monkeypatch):
    """After a kill nothing cleans up: the staging folders stay where they are."""
    monkeypatch.setattr("core.model.store.shutil.rmtree", lambda *a, **k: None)
    monkeypatch.setattr("core.model.bundle.shutil.rmtree", lambda *a, **k: None)


def _crash_on_call(monkeypatch, target: str, n: int = 1, before=None):
    """Make the n-th call of ``target`` ("core.model.bundle._fsync", "core.model.store.os.rename"...) made by code of
    that module crash (``before`` runs first, e.g. to write half a file). Calls from elsewhere (Keras,
    h5py) pass through."""
    import importlib
    module_name = next(m for m in ("core.model.bundle", "core.model.store") if target.startswith(m + "."))
    owner = importlib.import_module(module_name)
    *path, name = target[len(module_name) + 1:].split(".")
    for attr in path:
        owner = getattr(owner, attr)
    original = getattr(owner, name)
    calls = {"n": 0}

    def crashing(*args, **kwargs):
        if sys._getframe(1).f_globals.get("__name__") == module_name:
            calls["n"] += 1
            if calls["n"] == n:
                if before is not None:
                    before(*args, **kwargs)
                raise Killed(target)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, crashing)


def _half_json(path, data):
    Path(path).write_text(json.dumps(data, default=str)[:100])


CRASH_POINTS = [
    ("after model.keras", "core.model.bundle._fsync", 1, None),
    ("half of preprocess.json", "core.model.bundle._write_json", 1, _half_json),
    ("half of metadata.json", "core.model.bundle._write_json", 2, _half_json),
    ("before the bundle rename", "core.model.bundle.os.replace", 1, None),
    ("before the version rename", "core.model.store.os.rename", 1, None),
    ("after the version rename", "core.model.store._fsync_dir", 1, None),
]


@pytest.mark.parametrize("point, target, n, before", CRASH_POINTS, ids=[c[0] for c in CRASH_POINTS])
def test_a_crash_at_any_step_of_a_save_leaves_only_complete_versions(trained, tmp_path, monkeypatch, point, target, n,
                                                                   before):
    from core.model import save_bundle
    model, cohort, _ = trained
    root = tmp_path / "store"
    root.mkdir()

    def write(directory):
        save_bundle(model, directory, {}, cohort.fingerprint, NAME)

    first = store.save_model(write, NAME, root=root)
    _no_cleanup(monkeypatch)
    _crash_on_call(monkeypatch, target, n, before)
    with pytest.raises(Killed):
        store.save_model(write, NAME, root=root)
    monkeypatch.undo()
    listed = assert_store_intact(root, [first])
    # only a crash after the final rename leaves the new version, and then it is complete
    assert len(listed) == (2 if point == "after the version rename" else 1)
    nxt = store.save_model(write, NAME, root=root)  # the store keeps working
    assert nxt.name == f"v{len(listed) + 1}"
    assert_store_intact(root, [first, nxt])


def test_a_full_disk_fails_the_save_cleanly(trained, tmp_path, monkeypatch):
    from core.model import save_bundle
    model, cohort, _ = trained
    root = tmp_path / "store"
    root.mkdir()

    def full(path, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("core.model.bundle._write_json", full)
    with pytest.raises(OSError):
        store.save_model(lambda d: save_bundle(model, d, {}, cohort.fingerprint, NAME), NAME, root=root)
    assert store.list_models(root) == []
    assert not list(root.iterdir()) or all(not any(p.iterdir()) for p in root.iterdir() if p.is_dir())


# ---- two processes, one name ----------------------------------------------------------------------
SAVER = textwrap.dedent('''
    import shutil, sys, time
    from pathlib import Path
    sys.path.insert(0, {root!r})
    from core.model import save_model
    tag, bundle, store, go = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4])
    while not go.exists():
        time.sleep(0.005)
    for i in range({n}):
        def write(d, i=i):
            shutil.copytree(bundle, d)
            (d / "tag.txt").write_text(f"{{tag}}-{{i}}")
        print(save_model(write, {name!r}, root=store), flush=True)
''')


def test_two_processes_saving_one_name_get_a_version_each(trained, tmp_path):
    _, _, bundle = trained
    root, go = tmp_path / "store", tmp_path / "go"
    root.mkdir()
    n = 15
    script = tmp_path / "saver.py"
    script.write_text(SAVER.format(root=str(ROOT), n=n, name=NAME))
    procs = [subprocess.Popen([sys.executable, str(script), tag, str(bundle), str(root), str(go)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for tag in ("a", "b")]
    time.sleep(0.3)
    go.touch()
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-1000:] for o in outputs]
    paths = [Path(line) for out, _ in outputs for line in out.split()]
    assert len(paths) == len(set(paths)) == 2 * n
    tags = sorted((p / "tag.txt").read_text() for p in paths)
    assert tags == sorted(f"{t}-{i}" for t in "ab" for i in range(n))
    listed = store.list_models(root)
    assert sorted(r["version"] for r in listed) == list(range(1, 2 * n + 1))
    from core.model import load_bundle
    for path in (paths[0], paths[-1]):
        (path / "tag.txt").unlink()  # the test's marker: a file the bundle's manifest does not list
        load_bundle(path)


# ---- where the store is, and a store in trouble, seen from the dashboard ---------------------------
@pytest.fixture
def no_store_env(monkeypatch):
    monkeypatch.delenv("HEART_RISK_STORE", raising=False)
    monkeypatch.setenv("HEART_RISK_WARM_TF", "0")
    yield
    store.configure_root(None)


def app(secrets: dict | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    if secrets:
        at.secrets.update(secrets)
    at.session_state["lang"] = "en"
    return at.run()


def test_the_store_location_comes_from_the_secrets_unless_the_environment_says_otherwise(trained, tmp_path,
                                                                                          no_store_env, monkeypatch):
    _, _, bundle = trained
    secret_store = tmp_path / "secret-store"
    secret_store.mkdir()
    store.save_model(lambda d: shutil.copytree(bundle, d), "from-secrets", root=secret_store)
    at = app({"model_store": str(secret_store)})
    assert not at.exception
    assert store.store_root() == secret_store
    at.switch_page("pages/train.py").run()
    assert any(label.startswith("from-secrets v1") for label in at.selectbox(key="saved_choice").options)

    env_store = tmp_path / "env-store"
    monkeypatch.setenv("HEART_RISK_STORE", str(env_store))
    at.run()
    assert store.store_root() == env_store  # the environment wins
    assert tr("train.no_saved") in [c.value for c in at.caption]

    monkeypatch.delenv("HEART_RISK_STORE")
    monkeypatch.setattr("platformdirs.user_data_dir", lambda app, appauthor=None: str(tmp_path / "user-data" / app))
    at.secrets.clear()
    at.run()
    assert store.store_root() == tmp_path / "user-data" / "heart-risk" / "models"  # neither: the user's data folder


def test_a_store_that_is_not_a_folder_is_reported_not_raised(tmp_path, no_store_env, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the store should be")
    monkeypatch.setenv("HEART_RISK_STORE", str(blocker))
    at = app()
    at.switch_page("pages/train.py").run()
    assert not at.exception
    assert any(e.startswith(tr("train.store_error", reason="")[:20]) for e in (x.value for x in at.error)), \
        [x.value for x in at.error]


def test_a_corrupted_saved_version_is_refused_and_the_others_still_load(trained, tmp_path, no_store_env, monkeypatch):
    _, _, bundle = trained
    root = tmp_path / "store"
    root.mkdir()
    monkeypatch.setenv("HEART_RISK_STORE", str(root))
    good = store.save_model(lambda d: shutil.copytree(bundle, d), "clinic", root=root)
    bad = store.save_model(lambda d: shutil.copytree(bundle, d), "clinic", root=root)
    with open(bad / "model.keras", "r+b") as fh:  # a disk error: the file is cut short
        fh.truncate(100)
    at = app()
    at.switch_page("pages/train.py").run()
    options = at.selectbox(key="saved_choice").options

    def load(version):
        at.selectbox(key="saved_choice").set_value(next(i for i, o in enumerate(options) if o.startswith(f"clinic {version}")))
        at.run()
        next(b for b in at.button if b.label == tr("train.load")).click().run()
        assert not at.exception

    load("v2")
    assert any("model.keras does not match its recorded SHA-256" in e.value for e in at.error)
    assert at.session_state["model"] is None
    load("v1")
    assert at.session_state["model"] is not None
    assert "clinic (v1)" in [t.value for t in at.sidebar.text]
    with pytest.raises(BundleError):
        from core.model import load_bundle
        load_bundle(bad)
    assert good.exists()
