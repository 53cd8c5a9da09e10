import json
import threading

import pytest

from core.errors import BundleError
from core.model import store


def metadata_writer(tag):
    """A stand-in for a bundle's writer: a folder with one metadata.json tagged ``tag``."""
    def write(directory):
        directory.mkdir(parents=True)
        (directory / "metadata.json").write_text(json.dumps({"tag": tag}))
    return write


def test_versions_are_numbered_and_listed(tmp_path):
    a = store.save_model(metadata_writer("a"), "heart mlp", root=tmp_path)
    b = store.save_model(metadata_writer("b"), "heart mlp", root=tmp_path)
    assert (a.name, b.name) == ("v1", "v2")
    listed = store.list_models(tmp_path)
    assert {(r["name"], r["version"]) for r in listed} == {("heart mlp", 1), ("heart mlp", 2)}
    assert json.loads((a / "metadata.json").read_text())["tag"] == "a"


def test_failed_write_leaves_nothing_visible(tmp_path):
    store.save_model(metadata_writer("good"), "m", root=tmp_path)

    def crash(directory):
        directory.mkdir()
        (directory / "metadata.json").write_text("{}")
        raise RuntimeError("killed mid-save")

    with pytest.raises(RuntimeError):
        store.save_model(crash, "m", root=tmp_path)
    assert [r["version"] for r in store.list_models(tmp_path)] == [1]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".saving-")]


def test_concurrent_saves_of_one_name_never_clobber(tmp_path):
    paths, errors = [], []

    def save(i):
        try:
            paths.append(store.save_model(metadata_writer(f"s{i}"), "shared", root=tmp_path))
        except Exception as exc:  # pragma: no cover - would fail the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=save, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len({p.name for p in paths}) == 8
    tags = {json.loads((p / "metadata.json").read_text())["tag"] for p in paths}
    assert tags == {f"s{i}" for i in range(8)}


@pytest.mark.parametrize("bad", ["", "../evil", "/abs", ".hidden", "a" * 65, "x/y", "x\\y", "a:b", "a\tb",
                                 # issue 18.8: names Windows cannot hold as folders
                                 "CON", "nul", "Com1", "LPT9", "aux.json", "model.", "model..", "_x", "-x"])
def test_bad_names_refused(tmp_path, bad):
    with pytest.raises(BundleError):
        store.save_model(metadata_writer("x"), bad, root=tmp_path)
    assert not [p for p in tmp_path.iterdir() if not p.name.startswith(".")]


@pytest.mark.parametrize("good", ["modèle", "心脏模型", "Модель 2", "heart-mlp_v2.1", "CONSOLE", "nul1", "COM10"])
def test_names_in_any_script_are_accepted(tmp_path, good):
    """Issue 18.8: accented names were refused."""
    path = store.save_model(metadata_writer("x"), good, root=tmp_path)
    assert path.parent.name == good and path.name == "v1"


def test_a_name_is_one_folder_however_its_accents_were_typed(tmp_path):
    composed, decomposed = "mod\u00e8le", "mode\u0300le"
    store.save_model(metadata_writer("a"), composed, root=tmp_path)
    second = store.save_model(metadata_writer("b"), decomposed, root=tmp_path)
    assert second.parent.name == composed and second.name == "v2"


def test_a_deleted_version_number_is_never_given_again(tmp_path):
    """Issue 18.4: delete "victim" v1, save another model as "victim": it was v1 again."""
    first = store.save_model(metadata_writer("first"), "victim", root=tmp_path)
    store.delete_model(first, root=tmp_path)
    assert store.list_models(tmp_path) == []
    again = store.save_model(metadata_writer("other"), "victim", root=tmp_path)
    assert again.name == "v2"
    third = store.save_model(metadata_writer("third"), "victim", root=tmp_path)
    store.delete_model(third, root=tmp_path)
    store.delete_model(again, root=tmp_path)
    assert store.save_model(metadata_writer("fourth"), "victim", root=tmp_path).name == "v4"
    assert [(r["name"], r["version"]) for r in store.list_models(tmp_path)] == [("victim", 4)]


def test_the_bundle_digest_covers_every_byte_and_name(tmp_path):
    path = store.save_model(metadata_writer("a"), "m", root=tmp_path)
    (path / "model.keras").write_bytes(b"weights")
    digest = store.bundle_digest(path)
    assert len(digest) == 64 and digest == store.bundle_digest(path)
    (path / "model.keras").write_bytes(b"weightt")
    assert store.bundle_digest(path) != digest
    (path / "model.keras").write_bytes(b"weights")
    (path / "model.keras").rename(path / "other.keras")
    assert store.bundle_digest(path) != digest
    assert store.version_label(path) == "m (v1)"


def test_delete_only_inside_store(tmp_path):
    path = store.save_model(metadata_writer("x"), "m", root=tmp_path)
    outside = tmp_path.parent / "outside-model"
    outside.mkdir(exist_ok=True)
    (outside / "metadata.json").write_text("{}")
    with pytest.raises(BundleError):
        store.delete_model(outside, root=tmp_path)
    store.delete_model(path, root=tmp_path)
    assert store.list_models(tmp_path) == []


def test_store_root_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("HEART_RISK_STORE", str(tmp_path / "models"))
    assert store.store_root() == tmp_path / "models"
    assert (tmp_path / "models").is_dir()
