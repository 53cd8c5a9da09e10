"""Issue 16.4: a model trained in the dashboard goes to the model store as a draft at once; when the
server's memory of the session is gone (a restart), a new browser session with the same ?session= token
reloads that draft (verified, like any saved bundle); the Train page lists drafts apart from the named
versions, and one can be saved under a name. A draft that cannot be written is a warning, not a loss."""
from __future__ import annotations

import errno

import pytest
from streamlit.testing.v1 import AppTest

from core.model import list_drafts, list_models
from test_pages import APP, new_app, no_exceptions, texts, tr, train


@pytest.fixture(autouse=True)
def model_store(tmp_path, monkeypatch):
    root = tmp_path / "store"
    monkeypatch.setenv("HEART_RISK_STORE", str(root))
    return root


def test_a_trained_model_is_a_draft_that_a_new_session_with_the_token_reloads(model_store):
    import ui.resume

    at = new_app()
    train(at, epochs=5)
    token = at.session_state["resume_token"]
    trained = at.session_state["model"]
    drafts = list_drafts(model_store, token=token)
    assert len(drafts) == 1 and list_models(model_store) == []
    assert at.session_state["model_info"]["draft_path"] == str(drafts[0]["path"])
    from ui.models import draft_time
    label = tr("train.draft_label", time=draft_time(drafts[0]["created"]))
    assert any(m.value.startswith(label) for m in at.markdown), [m.value for m in at.markdown]

    ui.resume._kept.clear()  # what a server restart does to the in-memory sessions
    again = AppTest.from_file(APP, default_timeout=180)
    again.session_state["lang"] = "en"
    again.query_params["session"] = token
    again.run()
    no_exceptions(again)
    assert again.session_state["resume_token"] == token
    restored = again.session_state["model"]
    assert restored is not trained and again.session_state["model_info"]["source"] == "trained"
    assert restored.preprocessor_.feature_names == trained.preprocessor_.feature_names
    assert restored.metadata_.test_auc == pytest.approx(at.session_state["model_meta"].test_auc)

    # On the Train page: listed as this session's draft, and saved under a name it becomes a version.
    again.switch_page("pages/train.py").run()
    no_exceptions(again)
    key = drafts[0]["dir"].name
    again.text_input(key=f"draft_name_{key}").set_value("kept-draft")
    again.button(key=f"draft_save_{key}").click().run()
    no_exceptions(again)
    assert [m["name"] for m in list_models(model_store)] == ["kept-draft"]
    assert list_drafts(model_store, token=token) == []
    assert again.session_state["model_info"]["source"] == "store"


def test_an_unknown_token_starts_a_new_session(model_store):
    at = AppTest.from_file(APP, default_timeout=180)
    at.session_state["lang"] = "en"
    at.query_params["session"] = "no-such-token"
    at.run()
    no_exceptions(at)
    assert at.session_state["resume_token"] != "no-such-token"
    assert at.session_state["model"] is None


def test_a_full_disk_when_keeping_the_draft_is_a_warning_and_the_model_stays(model_store, monkeypatch):
    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("core.model.bundle._write_json", disk_full)
    at = new_app()
    train(at, epochs=5)
    assert at.session_state["model"] is not None
    assert at.session_state["model_info"]["source"] == "trained"
    expected = tr("train.draft_failed", reason="No space left on device")
    assert expected in texts(at.warning), texts(at.warning)
    assert list_drafts(model_store) == []
