"""Drafts in the model store (issue 16.4): a trained model is kept unnamed per session, listed by its
owner, never confused with a named version, and removed after HEART_RISK_DRAFT_HOURS."""
import json
import os
import time

import pytest

from core.errors import BundleError
from core.model import store
from test_store import metadata_writer


def test_a_draft_is_listed_for_its_session_only_and_not_as_a_version(tmp_path):
    first = store.save_draft(metadata_writer("a"), "token-1", root=tmp_path)
    time.sleep(0.01)
    second = store.save_draft(metadata_writer("b"), "token-1", root=tmp_path)
    store.save_draft(metadata_writer("c"), "token-2", root=tmp_path)
    mine = store.list_drafts(tmp_path, token="token-1")
    assert [d["path"] for d in mine] == [second, first]  # newest first
    assert json.loads((second / "metadata.json").read_text())["tag"] == "b"
    assert store.list_models(tmp_path) == []  # a draft is not a named version
    assert len(store.list_drafts(tmp_path)) == 3
    # The token itself is not written to disk (it opens the session), only its hash.
    assert "token-1" not in (first.parent / "draft.json").read_text()


def test_signed_in_drafts_belong_to_the_user_not_to_an_anonymous_token(tmp_path):
    store.save_draft(metadata_writer("a"), "tok", user="dr.lee@example.org", root=tmp_path)
    assert store.list_drafts(tmp_path, token="tok") == []  # anonymous with the same token: not theirs
    assert len(store.list_drafts(tmp_path, token="other", user="dr.lee@example.org")) == 1
    assert store.list_drafts(tmp_path, token="tok", user="someone@example.org") == []


def test_old_drafts_go_with_the_stale_cleanup(tmp_path, monkeypatch):
    old = store.save_draft(metadata_writer("old"), "tok", root=tmp_path)
    info = old.parent / "draft.json"
    meta = json.loads(info.read_text())
    meta["created"] -= 25 * 3600
    info.write_text(json.dumps(meta))
    young = store.save_draft(metadata_writer("young"), "tok", root=tmp_path)  # a save cleans up too
    assert not old.exists() and young.exists()
    monkeypatch.setenv("HEART_RISK_DRAFT_HOURS", "0.5")
    meta = json.loads((young.parent / "draft.json").read_text())
    meta["created"] -= 3600
    (young.parent / "draft.json").write_text(json.dumps(meta))
    assert store.clean_stale(tmp_path) == 1
    assert store.list_drafts(tmp_path) == []


def test_draft_age_setting(monkeypatch):
    monkeypatch.delenv("HEART_RISK_DRAFT_HOURS", raising=False)
    assert store.draft_hours() == 24
    monkeypatch.setenv("HEART_RISK_DRAFT_HOURS", "2")
    assert store.draft_hours() == 2
    monkeypatch.setenv("HEART_RISK_DRAFT_HOURS", "soon")
    assert store.draft_hours() == 24


@pytest.mark.parametrize("name", [".drafts", "_drafts", ".saving-x"])
def test_the_draft_area_cannot_be_taken_by_a_model_name(name):
    with pytest.raises(BundleError):
        store.check_name(name)


def test_a_failed_draft_write_leaves_nothing(tmp_path):
    def crash(directory):
        directory.mkdir()
        raise OSError(28, "No space left on device")
    with pytest.raises(OSError):
        store.save_draft(crash, "tok", root=tmp_path)
    assert store.list_drafts(tmp_path) == []
    assert [p for p in tmp_path.iterdir() if p.name.startswith(".saving-")] == []


def test_delete_draft_refuses_a_named_version(tmp_path):
    draft = store.save_draft(metadata_writer("a"), "tok", root=tmp_path)
    version = store.save_model(metadata_writer("v"), "m", root=tmp_path)
    with pytest.raises(BundleError):
        store.delete_draft(version, root=tmp_path)
    store.delete_draft(draft, root=tmp_path)
    assert store.list_drafts(tmp_path) == [] and os.path.isdir(version)
