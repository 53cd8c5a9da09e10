"""The translation table: every key in English and Chinese, every key the interface uses exists."""
import io
import json
import re
import string
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TABLE = json.loads((ROOT / "assets" / "i18n.json").read_text(encoding="utf-8"))
UI_SOURCES = [ROOT / "app.py", *sorted((ROOT / "pages").glob("*.py")), *sorted((ROOT / "ui").glob("*.py"))]
CORE_SOURCES = sorted((ROOT / "core").rglob("*.py"))
LITERAL_CALL = re.compile(r"""\bt\(\s*(['"])([^'"]+)\1""")
CORE_CALL = re.compile(r"""(?<![\w.])tr\(\s*(['"])([^'"]+)\1""")
# The one computed key in core: the model card's metric rows, tr(f"metric.{key}") over METRIC_KEYS.
CORE_COMPUTED = {"model_card.py": 1, "i18n.py": 1}  # i18n.py: unit_text, over UNIT_WORDS (counted in core_keys)


def fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def used_keys(paths, pattern) -> set[str]:
    keys = set()
    for path in paths:
        keys |= {m.group(2) for m in pattern.finditer(path.read_text(encoding="utf-8"))}
    return keys


def test_the_sources_are_scanned():
    assert len(UI_SOURCES) >= 10
    assert {p.name for p in UI_SOURCES} >= {"app.py", "cohort.py", "train.py", "patient.py", "explain.py",
                                             "model_card.py", "state.py", "common.py", "figures.py"}
    assert {p.relative_to(ROOT).as_posix() for p in CORE_SOURCES} >= {
        "core/workflow/report.py", "core/workflow/model_card.py", "core/explain/reasons.py", "core/data/schema.py",
        "core/workflow/counterfactual.py", "core/evaluate/glassbox.py", "core/evaluate/subgroups.py", "core/cli.py"}


def test_every_key_has_english_and_chinese():
    incomplete = [k for k, entry in TABLE.items()
                  if set(entry) != {"en", "zh"} or not all(str(v).strip() for v in entry.values())]
    assert incomplete == []


def test_both_languages_take_the_same_placeholders():
    assert [k for k, entry in TABLE.items() if fields(entry["en"]) != fields(entry["zh"])] == []


def test_chinese_strings_are_chinese():
    # A copy-pasted English string in the zh column would pass the tests above; most entries have CJK text.
    cjk = [k for k, v in TABLE.items() if re.search(r"[\u4e00-\u9fff]", v["zh"])]
    assert len(cjk) >= 0.95 * len(TABLE)


def test_every_key_the_interface_uses_exists():
    used = used_keys(UI_SOURCES, LITERAL_CALL)
    assert len(used) > 150
    assert sorted(used - set(TABLE)) == []


def code_text(source: str) -> str:
    """The source without comments and plain strings (docstrings); f-strings stay: they hold calls."""
    kept = []
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            continue
        if tok.type == tokenize.STRING and not tok.string.lstrip("rRbB").lower().startswith("f"):
            kept.append('"s"')  # a literal, its text no longer scanned
            continue
        kept.append(tok.string)
    return " ".join(kept)


def test_the_interface_calls_t_only_with_literal_keys():
    """A computed key (t(f"band.{x}") or t(key)) would escape the scan above."""
    any_call = re.compile(r"(?<![\w.])t\s*\(")
    for path in UI_SOURCES:
        code = code_text(path.read_text(encoding="utf-8"))
        calls = len(any_call.findall(code)) - code.count("def t (")
        literal = len(re.findall(r"""(?<![\w.])t\s*\(\s*(['"])[^'"]+\1""", code))
        assert calls == literal, path.name


def core_keys() -> set[str]:
    from core.workflow import METRIC_KEYS
    from core.i18n import UNIT_WORDS
    return used_keys(CORE_SOURCES, CORE_CALL) | {f"metric.{k}" for k in METRIC_KEYS} | {f"unit.{u}" for u in UNIT_WORDS}


def test_every_key_the_core_uses_exists():
    """The report, model card, reasons, values in words, what-ifs: every key core asks for."""
    used = core_keys()
    assert len(used) > 150
    assert sorted(used - set(TABLE)) == []


def test_the_core_calls_tr_only_with_literal_keys():
    any_call = re.compile(r"(?<![\w.])tr\s*\(")
    for path in CORE_SOURCES:
        code = code_text(path.read_text(encoding="utf-8"))
        calls = len(any_call.findall(code)) - code.count("def tr (")
        literal = len(re.findall(r"""(?<![\w.])tr\s*\(\s*(['"])[^'"]+\1""", code))
        assert calls - literal == CORE_COMPUTED.get(path.name, 0), path.relative_to(ROOT).as_posix()


# Chinese that is data, not interface text: what a file's headers, labels and yes-words may be.
CJK_AS_DATA = {
    "core/i18n.py": "the language's own name in the language picker",
    "core/data/schema.py": "a built-in layout's clinical labels (like cleveland_schema.json) and header/yes words",
    "core/data/concepts.py": "column-name synonyms in Chinese exports",
    "core/workflow/report.py": "glyphs a font must have to write the Chinese report",
}


def test_the_core_has_no_text_of_its_own_in_chinese():
    """Interface text in Chinese belongs in the table (tr); Chinese elsewhere in core is data, in known files."""
    cjk = re.compile(r"[\u4e00-\u9fff]")
    found = set()
    for path in CORE_SOURCES:
        for tok in tokenize.generate_tokens(io.StringIO(path.read_text(encoding="utf-8")).readline):
            if tok.type == tokenize.STRING and cjk.search(tok.string):
                found.add(path.relative_to(ROOT).as_posix())
    assert sorted(found - set(CJK_AS_DATA)) == []


def test_no_key_is_left_unused():
    used = used_keys(UI_SOURCES, LITERAL_CALL) | core_keys()
    assert sorted(set(TABLE) - used) == []


def test_t_formats_in_the_session_language(monkeypatch):
    import ui.i18n as i18n
    monkeypatch.setattr(i18n, "lang", lambda: "zh")
    assert i18n.t("sidebar.cohort_stats", n=303, prevalence="46%") == "303 名患者 · 结局患病率 46%"
    monkeypatch.setattr(i18n, "lang", lambda: "en")
    assert i18n.t("sidebar.cohort_stats", n=303, prevalence="46%") == "303 patients · outcome prevalence 46%"
    assert i18n.t("no.such.key") == "no.such.key"


def test_small_texts_say_each_thing_once_and_chinese_needs_no_space_before_de():
    """QA: "Proposed threshold 0.50: 0.5, as the outcome is common" said the number twice; "血清胆固醇 的单位";
    "Scored in 152.51 s"."""
    from core.i18n import tr
    from ui.scoring_job import seconds_text
    for lang in ("en", "zh"):
        rule = tr("train.rule_fixed", lang, prevalence="46%")
        assert "0.5" not in tr("train.threshold_proposed", lang, threshold="@", rule=rule, n=1, flagged=1, tp=1, fn=1,
                                fp=1, sensitivity=1, specificity=1).replace("@", "")
    assert tr("patient.unit", "zh", label="血清胆固醇") == "血清胆固醇的单位"
    assert tr("language.en", "zh") == "英文" and tr("language.zh", "en") == "Chinese"
    assert (seconds_text(152.51), seconds_text(10.4), seconds_text(2.345)) == ("153", "10", "2.35")
