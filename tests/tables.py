"""The tables a run drew, as the text a user reads: st.dataframe's frames and the Markdown tables that
ui.common.show_table draws for short tables. Markdown is read with markdown-it (CommonMark and its table
extension, the rules Streamlit's frontend follows), so an escaped cell reads as what the screen shows."""
from __future__ import annotations

import pandas as pd
from markdown_it import MarkdownIt

_MARKDOWN = MarkdownIt("commonmark").enable("table")


def _inline_text(token) -> str:
    return "".join(child.content for child in token.children or [] if child.type != "html_inline")


def markdown_tables(markdown: str) -> list[pd.DataFrame]:
    """Every table in one Markdown text, all cells as text."""
    tables, header, rows, row, in_table, in_head = [], [], [], [], False, False
    for token in _MARKDOWN.parse(markdown):
        if token.type == "table_open":
            header, rows, in_table = [], [], True
        elif token.type == "thead_open":
            in_head = True
        elif token.type == "thead_close":
            in_head = False
        elif token.type == "tr_open":
            row = []
        elif token.type == "inline" and in_table:  # a cell's content
            row.append(_inline_text(token))
        elif token.type == "tr_close":
            (header.extend if in_head else rows.append)(row)
        elif token.type == "table_close":
            in_table = False
            tables.append(pd.DataFrame(rows, columns=header))
    return tables


def plain_text(markdown: str) -> str:
    """What one Markdown text shows, without its markup (escapes resolved)."""
    lines = []
    for token in _MARKDOWN.parse(markdown):
        if token.type == "inline":
            lines.append(_inline_text(token))
    return "\n".join(lines)


def shown_tables(block) -> list[pd.DataFrame]:
    """An AppTest block's tables: its Markdown tables first, in order, then its st.dataframe frames."""
    tables = [table for element in block.markdown for table in markdown_tables(element.value)]
    return tables + [frame.value for frame in block.dataframe]
