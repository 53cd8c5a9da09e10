"""Saving a model from the Train and Trust pages goes through one path (ui.models.save_and_activate):
a full disk is a one-line message on both pages, never a traceback (issue 13, bug 5); a tampered saved
model is refused on load with a message naming the file (issue 18, item 1)."""
from __future__ import annotations

import errno
import json

import pytest

from test_pages import new_app, no_exceptions, texts, tr, train, widget


@pytest.fixture(autouse=True)
def model_store(tmp_path, monkeypatch):
    root = tmp_path / "store"
    monkeypatch.setenv("HEART_RISK_STORE", str(root))
    return root


def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_while_saving_is_a_message_on_the_train_and_trust_pages(model_store, monkeypatch):
    at = new_app()
    train(at, epochs=5)
    model = at.session_state["model"]
    monkeypatch.setattr("core.model.bundle._write_json", _disk_full)
    expected = tr("train.store_error", reason="No space left on device")

    at.switch_page("pages/trust.py").run()
    no_exceptions(at)
    form = at.form(key="trust_save_calibration")
    form.text_input[0].set_value("full-disk")
    [b for b in at.get("form_submit_button") if b.label == tr("trust.save")][0].click().run()
    assert [e.value for e in at.exception] == []
    assert expected in texts(at.error), texts(at.error)
    assert at.session_state["model"] is model and at.session_state["model_info"]["source"] == "trained"

    at.switch_page("pages/train.py").run()
    widget(at.button, tr("train.save")).click().run()
    assert [e.value for e in at.exception] == []
    assert expected in texts(at.error), texts(at.error)
    assert not any(model_store.glob("*/v*"))  # nothing half-written is visible

    monkeypatch.undo()
    monkeypatch.setenv("HEART_RISK_STORE", str(model_store))
    at.switch_page("pages/train.py").run()
    widget(at.button, tr("train.save")).click().run()
    no_exceptions(at)
    assert (model_store / "heart-mlp" / "v1" / "metadata.json").is_file()
    assert at.session_state["model"] is model  # the trained object stays, with its test results
    assert at.session_state["model_meta"].name == "heart-mlp"


def saved_then_loaded_with_edited_metadata(model_store, edit):
    """Train and save a model, change its metadata.json on disk through ``edit(dict)``, and load it again
    from the Train page (the cached bundle forgotten, as after a restart)."""
    at = new_app()
    train(at, epochs=5)
    widget(at.button, tr("train.save")).click().run()
    no_exceptions(at)
    meta_path = model_store / "heart-mlp" / "v1" / "metadata.json"
    meta = json.loads(meta_path.read_text())
    edit(meta)
    meta_path.write_text(json.dumps(meta))
    from ui.state import forget_saved_bundles
    forget_saved_bundles()
    at.switch_page("pages/train.py").run()
    widget(at.button, tr("train.load")).click().run()
    return at


def test_a_saved_model_whose_metadata_was_edited_is_refused_by_name(model_store):
    at = saved_then_loaded_with_edited_metadata(
        model_store, lambda meta: meta.update(calibration={"method": "platt", "a": 1, "b": 3}))
    assert [e.value for e in at.exception] == []
    assert any("metadata.json does not match its recorded SHA-256" in e for e in texts(at.error)), texts(at.error)


def test_a_model_saved_before_metadata_was_hashed_loads_with_a_warning_on_its_card(model_store):
    def as_an_older_program_wrote_it(meta):
        del meta["metadata_sha256"]
        meta["version"] = 2

    at = saved_then_loaded_with_edited_metadata(model_store, as_an_older_program_wrote_it)
    no_exceptions(at)
    at.switch_page("pages/model_card.py").run()
    no_exceptions(at)
    assert tr("card_page.legacy_unverified") in texts(at.warning)
