"""Issue 18.4: the audit trail tells models apart. A deleted version's number is never given again, every
line carries the saved bundle's content hash, and a model that was never saved gets an id of its own."""
from __future__ import annotations

import json

import pytest

from core.model import bundle_digest, delete_model, save_model
from core.workflow import append, make_record, read_log


def _bundle(tag: str):
    def write(directory):
        directory.mkdir(parents=True)
        (directory / "metadata.json").write_text(json.dumps({"name": "victim", "tag": tag}))
        (directory / "model.keras").write_bytes(tag.encode() * 10)
    return write


@pytest.fixture
def session(monkeypatch):
    """ui.state and ui.models over a plain dict as the session (no Streamlit run needed)."""
    import ui.models
    import ui.state
    state: dict = {"lang": "en"}
    monkeypatch.setattr(ui.state.st, "session_state", state)
    monkeypatch.setattr(ui.models.st, "session_state", state)
    return state


def test_two_models_saved_under_one_name_get_two_versions_and_two_ids(tmp_path, session, monkeypatch):
    from ui.models import audit_identity, info_from_meta
    from ui.state import set_model
    monkeypatch.setenv("HEART_RISK_AUDIT_KEY", "test-key")
    first = save_model(_bundle("first"), "victim", root=tmp_path)
    set_model(object(), info_from_meta({"name": "victim"}, "store", first), {})
    one = audit_identity()
    delete_model(first, root=tmp_path)
    second = save_model(_bundle("second"), "victim", root=tmp_path)
    set_model(object(), info_from_meta({"name": "victim"}, "store", second), {})
    two = audit_identity()
    assert (one["model"], one["version"]) == ("victim", 1)
    assert (two["model"], two["version"]) == ("victim", 2)
    assert two["model_id"] == f"sha256:{bundle_digest(second)}" != one["model_id"]
    log = tmp_path / "audit.jsonl"
    append(log, [make_record({"age": 60}, 0.3, **one), make_record({"age": 60}, 0.7, **two)])
    table, _ = read_log(log)
    assert table["version"].tolist() == [1, 2] and table["model_id"].nunique() == 2


def test_models_never_saved_get_distinct_ids(session):
    from ui.models import audit_identity, info_from_meta
    from ui.state import set_model
    ids = []
    for _ in range(2):
        set_model(object(), info_from_meta({"name": None}, "trained"), {})
        ids.append(audit_identity())
    assert all(i["model_id"].startswith("unsaved:") and i["version"] is None for i in ids)
    assert ids[0]["model_id"] != ids[1]["model_id"]
    # a saved model changed in the session (recalibrated) is no longer the saved bundle
    saved = {"name": "m (v1)", "source": "store", "store_name": "m", "version": 1, "model_id": "sha256:ab"}
    set_model(object(), {**saved, "source": "trained", "name": None}, {})
    changed = audit_identity()
    assert changed["model_id"].startswith("unsaved:") and changed["version"] is None
