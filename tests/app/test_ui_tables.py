"""ui.common's Markdown tables: any text shows as written (read back with markdown-it, CommonMark and its
tables, which Streamlit's frontend follows), and only short tables are Markdown."""
from __future__ import annotations

import re
import string

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st
from streamlit.testing.v1 import AppTest

from tables import markdown_tables, plain_text
from ui.common import STATIC_TABLE_MAX_ROWS, markdown_table, markdown_text

# Markdown's own characters, Streamlit's ($ for LaTeX, :colour[...], :material/...:), HTML and entities,
# Chinese, and whitespace of every kind a header can carry.
TEXT = st.text(alphabet=st.sampled_from(list(string.printable) + list("年龄胸痛 ——·…\u3000")), max_size=40)
HOSTILE = ["![x](http://127.0.0.1:9/x.png)", "<img src=x onerror=alert(1)>", "a|b", "$x^2$", ":red[x]",
           ":material/home:", "**bold**", "`code`", "&amp;", "\\", "# heading", "- item", "1. item", "~~s~~",
           "<!-- c -->", "[l](javascript:alert(1))", "年龄 (岁)", "a\nb\tc"]


def shown(text: str) -> str:
    """What a screen shows of a plain text: whitespace runs as one space, none at the ends."""
    return re.sub(r"\s+", " ", text).strip()


@settings(max_examples=300)
@given(TEXT)
def test_any_text_reads_back_as_written(text):
    assert plain_text(markdown_text(text)) == shown(text)


def test_every_ascii_punctuation_mark_is_escaped_so_no_streamlit_syntax_can_start():
    """Streamlit's own Markdown ($...$, :colour[...], :material/icon:) is not CommonMark: markdown-it cannot
    check it. The rule that stops it is that no punctuation mark is left bare (seen in Chromium: these
    cells show as written, with no image, link, formula or colour)."""
    for text in HOSTILE:
        escaped = markdown_text(text)
        bare = re.sub(r"\\[!-/:-@\[-`{-~]", "", escaped)
        assert not any(ch in string.punctuation for ch in bare), (text, escaped)


@settings(max_examples=100)
@given(st.lists(TEXT, min_size=1, max_size=5, unique_by=shown), st.data())
def test_any_table_reads_back_cell_by_cell(columns, data):
    rows = data.draw(st.lists(st.lists(TEXT, min_size=len(columns), max_size=len(columns)), max_size=4))
    frame = pd.DataFrame(rows, columns=columns, dtype=object)
    [back] = markdown_tables(markdown_table(frame))
    assert back.columns.tolist() == [shown(c) for c in columns]
    assert back.to_numpy().tolist() == [[shown(v) for v in row] for row in rows]


def test_hostile_names_and_numbers_read_back_and_numbers_are_right_aligned():
    frame = pd.DataFrame({h: [h] for h in HOSTILE[:6]} | {"count": [3], "share": [np.nan], "flag": [True]})
    markdown = markdown_table(frame)
    [back] = markdown_tables(markdown)
    assert back.columns.tolist() == [*HOSTILE[:6], "count", "share", "flag"]
    assert back.iloc[0].tolist() == [*HOSTILE[:6], "3", "", "True"]
    assert markdown.splitlines()[1].split("|")[1:-1] == ["---"] * 6 + ["---:", "---:", "---"]


def _draw_table(rows: int) -> None:
    import pandas as pd
    from ui.common import show_table
    show_table(pd.DataFrame({"column": [f"c{i}" for i in range(rows)], "missing": range(rows)}))


def test_a_short_table_is_markdown_and_a_long_one_a_dataframe():
    short = AppTest.from_function(_draw_table, args=(STATIC_TABLE_MAX_ROWS,)).run()
    assert not short.dataframe and len(markdown_tables(short.markdown[0].value)[0]) == STATIC_TABLE_MAX_ROWS
    long = AppTest.from_function(_draw_table, args=(STATIC_TABLE_MAX_ROWS + 1,)).run()
    assert not long.markdown and len(long.dataframe[0].value) == STATIC_TABLE_MAX_ROWS + 1


def test_a_download_is_named_once_after_its_source():
    from ui.common import file_slug
    assert file_slug("heart.csv", "cohort") == "heart"  # 'risk-heart.csv', never 'risk-heart.csv.csv'
    assert file_slug("队列.csv", "cohort") == "队列"
    assert file_slug("ward export (2024).xlsx", "cohort") == "ward-export-2024"
    assert file_slug("../../etc/passwd.csv.gz", "cohort") == "etc-passwd"
    assert file_slug("", "model") == "model" and file_slug(None, "model") == "model"
