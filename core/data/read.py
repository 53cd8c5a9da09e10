"""Cohort files in, a clean table and a binary outcome out.

``read_table`` reads whatever a hospital exports (UTF-8 / BOM / GB18030 / Latin-1; comma, semicolon, tab,
pipe; decimal commas; the header-less UCI ``processed.*.data`` files) and refuses, in one line, anything it
cannot read honestly. ``validate`` applies the schema with pandera: impossible values become missing with a
warning, text in a numeric column is refused. Every message names columns, rows and rules, never a
patient's value."""
from __future__ import annotations

import codecs
import csv
import io
import os
import re
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from core.data.schema import CLEVELAND_COLUMNS
from core.errors import CohortError, format_rows

MISSING_MARKERS = frozenset({"", "?", "NA", "N/A", "n/a", "NaN", "nan", "null", "NULL", "-", "#N/A"})
DELIMITERS = ",;\t|"
MAX_COLUMNS = 2000
MIN_ROWS = 10
_DECIMAL_COMMA = re.compile(r"^[+-]?(\d+,\d*|,\d+)([eE][+-]?\d+)?$")  # "1,5" "1," ",5" "1,5e3"
# C0/C1 control characters that never occur in a text export (tab, newlines and form feed are fine).
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]")
_SAMPLE = 1 << 16


@dataclass
class ReadResult:
    df: pd.DataFrame
    encoding: str
    delimiter: str
    has_header: bool
    uci_format: bool
    name: str
    decimal_comma: list[str] = field(default_factory=list)  # columns read with "1,5" = 1.5
    blank_rows: int = 0  # fully empty lines skipped
    layout: str | None = None  # 'uci-processed' (processed.*.data) or 'uci-statlog' (heart.dat, class 1/2)
    sheet: str | None = None  # the Excel sheet read
    sheets: list[str] = field(default_factory=list)  # every sheet of an Excel workbook


# ---- reading -----------------------------------------------------------------------------------
def read_table(source, name: str | None = None, max_bytes: int = 50 * 2**20, sheet: str | None = None) -> ReadResult:
    """Read a cohort file (path, bytes or an uploaded file object; CSV, TSV, whitespace-delimited text or
    an Excel .xlsx workbook, its first sheet or ``sheet``) into a table of numbers and text."""
    data, name = _read_bytes(source, name, max_bytes)
    if not data.strip():
        raise CohortError(f"{name}: the file is empty")
    sheets, sheet_read = [], None
    if data.startswith(b"PK\x03\x04") and _is_workbook(data):
        rows, sheets, sheet_read = _read_workbook(data, name, sheet)
        text, encoding, delimiter, blank = "", "xlsx", ",", 0
        rows = [r for r in rows if "".join(r).strip()]
    else:
        text, encoding = _decode(data, name)
        delimiter = _detect_delimiter(text)
        if delimiter == " ":
            records = [line.split() for line in text.splitlines()]
            rows = [r for r in records if r]
            blank = len(records) - len(rows)
        else:
            rows, blank = _parse_rows(text, delimiter, name)
    if not rows:
        raise CohortError(f"{name}: the file is empty")
    width = len(rows[0])
    if width > MAX_COLUMNS:
        raise CohortError(f"{name}: {width} columns; at most {MAX_COLUMNS} are supported")
    has_header = not _all_numeric(rows[0], delimiter)
    uci = not has_header and width == len(CLEVELAND_COLUMNS)
    layout = None
    if has_header:
        header = [c.strip() or f"col{j + 1}" for j, c in enumerate(rows[0])]
    elif uci:
        # The Statlog heart file (heart.dat) has the same 13 attributes but its class is 1 = absent,
        # 2 = present, where processed.*.data have num 0-4.
        last = {r[-1].strip() for r in rows if len(r) == width}
        layout = "uci-statlog" if last <= {"1", "2", "1.0", "2.0"} else "uci-processed"
        header = list(CLEVELAND_COLUMNS[:-1]) + (["class"] if layout == "uci-statlog" else [CLEVELAND_COLUMNS[-1]])
    else:
        header = [f"col{j + 1}" for j in range(width)]
    dupes = [n for n, k in Counter(header).items() if k > 1]
    if dupes:
        raise CohortError(f"{name}: duplicate column names: {', '.join(map(repr, dupes))}")
    first = int(has_header)
    if len(rows) == first:
        raise CohortError(f"{name}: the file has a header but no data rows")
    for k in range(first, len(rows)):
        if len(rows[k]) != width:
            rows[k] = _trim(rows[k], width)
        if len(rows[k]) != width:
            raise CohortError(f"{name}: line {_line_of(text, delimiter, k)} has {len(rows[k])} fields where the "
                              f"{'header' if has_header else 'first row'} has {width} "
                              "(ragged rows: check delimiters and quotes)")
    columns, decimal_comma = {}, []
    for col, values in zip(header, zip(*rows[first:])):
        columns[col], used_comma = _convert_column(list(values), delimiter != ",")
        if used_comma:
            decimal_comma.append(col)
    df = pd.DataFrame(columns)
    return ReadResult(df, encoding, delimiter, has_header, uci, name, decimal_comma, blank, layout, sheet_read, sheets)


MAX_WORKBOOK_BYTES = 200 * 2**20  # uncompressed: a 50 MB upload may not unpack into gigabytes


def _is_workbook(data: bytes) -> bool:
    import zipfile
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            return "xl/workbook.xml" in z.namelist()
    except (zipfile.BadZipFile, ValueError, OSError):
        return False


def _read_workbook(data: bytes, name: str, sheet: str | None) -> tuple[list[list[str]], list[str], str]:
    """The cells of one sheet of an .xlsx workbook as text (openpyxl, values not formulas), so that they
    go through the same header, missing-marker and number rules as a CSV's."""
    import zipfile
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        if sum(i.file_size for i in z.infolist()) > MAX_WORKBOOK_BYTES:
            raise CohortError(f"{name}: the workbook unpacks to more than {MAX_WORKBOOK_BYTES // 2**20} MB")
    from openpyxl import load_workbook
    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # noqa: BLE001 - openpyxl raises many kinds for a damaged workbook; one line for all
        raise CohortError(f"{name}: the Excel workbook cannot be read ({type(exc).__name__})") from None
    try:
        names = list(book.sheetnames)
        chosen = sheet if sheet is not None else names[0]
        if chosen not in names:
            raise CohortError(f"{name}: no sheet {chosen!r}; sheets are {', '.join(map(repr, names))}")
        rows = []
        for values in book[chosen].iter_rows(values_only=True):
            rows.append(["" if v is None else _cell_text(v) for v in values])
    finally:
        book.close()
    width = max((len(r) for r in rows), default=0)
    while width and all(len(r) < width or not r[width - 1].strip() for r in rows):
        width -= 1  # formatted but empty columns on the right
    return [r[:width] + [""] * (width - len(r[:width])) for r in rows], names, chosen


def _cell_text(value) -> str:
    if isinstance(value, float):
        return repr(value)
    if hasattr(value, "isoformat"):
        return value.isoformat(sep=" ") if hasattr(value, "hour") else value.isoformat()
    return str(value)


def _read_bytes(source, name, max_bytes) -> tuple[bytes, str]:
    limit = f"the limit is {max_bytes / 2**20:.3g} MB"
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        name = name or "uploaded file"
    elif isinstance(source, (str, os.PathLike)):
        name = name or os.path.basename(os.fspath(source))
        try:
            size = os.path.getsize(source)
            if size > max_bytes:
                raise CohortError(f"{name}: the file is {size / 2**20:.3g} MB; {limit}")
            with open(source, "rb") as fh:
                data = fh.read(max_bytes + 1)
        except OSError as exc:
            raise CohortError(f"{name}: cannot open the file ({exc.strerror or type(exc).__name__})") from None
    elif hasattr(source, "read"):  # an uploaded file object (Streamlit, io.BytesIO)
        name = name or getattr(source, "name", None) or "uploaded file"
        data = source.read(max_bytes + 1)
        data = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    else:
        raise CohortError(f"cannot read a cohort from a {type(source).__name__}")
    if len(data) > max_bytes:
        raise CohortError(f"{name}: the file is larger than the limit; {limit}")
    return data, name


def _decode(data: bytes, name: str) -> tuple[str, str]:
    not_text = f"{name}: not a text CSV file"
    if data.startswith(b"\xd0\xcf\x11\xe0"):
        raise CohortError(f"{not_text} (it looks like an old Excel .xls workbook: save it as .xlsx or CSV)")
    if data.startswith(b"PK\x03\x04"):
        raise CohortError(f"{not_text} (it looks like an Excel workbook, but not one that can be opened: "
                          "save it again as .xlsx or CSV)")
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):  # Excel's "Unicode text"
        candidates = ["utf-16"]
    elif b"\x00" in data:
        raise CohortError(f"{not_text} (it contains NUL bytes)")
    else:
        candidates = ["utf-8-sig", "gb18030", _guess_encoding, "cp1252", "latin-1"]
        _refuse_mixed_encodings(data, name)
    for encoding in candidates:
        if callable(encoding):  # charset-normalizer only when the strict decoders failed (it is slow)
            encoding = encoding(data) or "cp1252"
        try:
            text = data.decode(encoding)
        except (UnicodeDecodeError, LookupError):
            continue
        # Latin-1 bytes often decode as GB18030 too ("Größe" -> "Gr鲞e"): accept GB18030 only for
        # common GB2312 characters, and when charset-normalizer finds it less chaotic than cp1252.
        if encoding == "gb18030" and not (_looks_chinese(text) and _prefers(data, "gb18030", "cp1252")):
            continue
        if encoding == "utf-8-sig" and not data.startswith(codecs.BOM_UTF8):
            encoding = "utf-8"
        sample = text[: 1 << 20]
        if len(_CONTROL.findall(sample)) > max(1, len(sample) // 200):
            raise CohortError(f"{not_text} (it contains binary data)")
        return text, encoding
    raise CohortError(f"{not_text} (it cannot be decoded)")


def _refuse_mixed_encodings(data: bytes, name: str) -> None:
    """Refuse a file whose lines were saved in different encodings (rows pasted together from two
    exports): some lines are UTF-8 with accented or Chinese letters, others are not UTF-8 at all. Any one
    decoding would turn one half into nonsense silently. Only the first MB is examined."""
    try:
        data.decode("utf-8")
        return
    except UnicodeDecodeError:
        pass
    lines = _head(data).split(b"\n")
    utf8_cjk, utf8_latin, other = [], [], []
    for number, line in enumerate(lines):
        if line.isascii():
            continue
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            other.append(number)
            continue
        if any("\u4e00" <= c <= "\u9fff" for c in text):
            utf8_cjk.append(number)
        elif any("\u00c0" <= c <= "\u00ff" and c not in "\u00d7\u00f7" for c in text):
            utf8_latin.append(number)
    if not other:
        return
    # A GB18030 line of one or two characters is valid UTF-8 now and then ("毛" reads as "ë"): accented
    # letters count only when the other lines are not Chinese.
    rest = b"\n".join(lines[n] for n in other)
    try:
        chinese = _looks_chinese(rest.decode("gb18030")) and _prefers(rest, "gb18030", "cp1252")
    except UnicodeDecodeError:
        chinese = False
    utf8 = sorted(utf8_cjk + ([] if chinese else utf8_latin))
    if utf8:
        numbered = lambda numbers: format_rows(numbers).replace(" rows)", " lines)")  # noqa: E731
        raise CohortError(f"{name}: the file mixes text encodings: lines {numbered(utf8)} are UTF-8, lines "
                          f"{numbered(other)} are not (save the whole file again as UTF-8)")


def _looks_chinese(text: str) -> bool:
    wide = [c for c in text[:_SAMPLE] if ord(c) > 127]
    cjk = sum(1 for c in wide if "\u4e00" <= c <= "\u9fff" or "\u3000" <= c <= "\u303f" or "\uff00" <= c <= "\uffef")
    return cjk >= 0.9 * len(wide)


def _head(data: bytes) -> bytes:
    """The first MB, cut at a line end so that no multi-byte character is split."""
    head = data[: 1 << 20]
    return head[: head.rindex(b"\n") + 1] if len(data) > len(head) and b"\n" in head else head


def _prefers(data: bytes, encoding: str, other: str) -> bool:
    from charset_normalizer import from_bytes

    best = from_bytes(_head(data), cp_isolation=[encoding, other]).best()
    return best is None or best.encoding == encoding


def _guess_encoding(data: bytes) -> str | None:
    """charset-normalizer's guess; cp1252 when it reads no worse (short Western headers cannot tell
    the code pages apart), never UTF-16/32 without a BOM."""
    from charset_normalizer import from_bytes

    matches = [m for m in from_bytes(_head(data)) if not m.encoding.startswith(("utf_16", "utf_32"))]
    if not matches:
        return None
    western = [m for m in matches if "cp1252" in m.could_be_from_charset]
    return "cp1252" if western and western[0].chaos <= matches[0].chaos else matches[0].encoding


def _split_stats(sample: str, delimiter: str) -> tuple[list[int], float]:
    """Fields per record (first 50) and the share of fields that still hold another delimiter
    (a decimal comma like "1,5" does not count): high when the split is the wrong one."""
    counts, foreign, total = [], 0, 0
    others = re.compile("[" + re.escape(DELIMITERS.replace(delimiter, "")) + "]")
    try:
        for row in csv.reader(io.StringIO(sample, newline=""), delimiter=delimiter):
            if "".join(row).strip():
                counts.append(len(row))
                total += len(row)
                foreign += sum(1 for c in row if others.search(c) and not _DECIMAL_COMMA.match(c.strip()))
            if len(counts) >= 50:
                break
    except csv.Error:
        pass
    return counts, foreign / max(total, 1)


def _detect_delimiter(text: str) -> str:
    sample = text[:_SAMPLE]
    if len(text) > _SAMPLE and "\n" in sample:
        sample = sample[: sample.rindex("\n")]
    scores = {}
    for d in DELIMITERS:
        counts, foreign = _split_stats(sample, d)
        if counts:
            modal, hits = Counter(counts).most_common(1)[0]
            if modal > 1:
                share = hits / len(counts)
                scores[d] = (share >= 0.9, -round(foreign, 2), modal, share)
    if not scores or not max(scores.values())[0]:
        # No delimiter splits the lines evenly: whitespace-delimited text (heart.dat, fixed-width exports).
        widths = [len(line.split()) for line in sample.splitlines()[:50] if line.strip()]
        if widths and min(widths) > 1 and Counter(widths).most_common(1)[0][1] >= 0.9 * len(widths):
            return " "
        if not scores:
            return ","
    best = max(scores, key=scores.get)
    try:
        sniffed = csv.Sniffer().sniff(sample, delimiters=DELIMITERS).delimiter
    except csv.Error:
        return best
    # The sniffer only breaks exact ties: alone it takes ',' in "63,0;1,0" (a decimal comma) or
    # splits inconsistently.
    return sniffed if scores.get(sniffed) == scores[best] else best


def _reader(text: str, delimiter: str):
    return csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)


def _parse_rows(text: str, delimiter: str, name: str) -> tuple[list[list[str]], int]:
    """Non-blank records (the C reader alone: per-record Python work costs seconds on 50 MB)."""
    try:
        records = list(_reader(text, delimiter))
    except csv.Error as exc:
        reader, start = _reader(text, delimiter), 1
        try:
            for _ in reader:
                start = reader.line_num + 1
        except csv.Error:
            pass
        if "field larger" in str(exc) and not _quote_left_open(text, start):
            raise CohortError(f"{name}: line {start} has a field longer than {csv.field_size_limit():,} "
                              "characters (too long for a cell of a cohort file)") from None
        reason = "an unclosed quote" if "end of data" in str(exc) or "field larger" in str(exc) \
            else "a misplaced quote"
        raise CohortError(f"{name}: line {start} has {reason} (ragged or broken row)") from None
    rows = [r for r in records if "".join(r).strip()]
    return rows, len(records) - len(rows)


def _quote_left_open(text: str, line: int) -> bool:
    """Does an odd number of quote marks follow the start of ``line``: a quote opened there is never
    closed (a doubled "" inside a field counts twice). Tells an unclosed quote from a field that is
    merely longer than the csv module's limit."""
    head = text.split("\n", line - 1)
    offset = len(text) - len(head[-1]) if len(head) == line else 0
    return text.count('"', offset) % 2 == 1


def _line_of(text: str, delimiter: str, index: int) -> int:
    """File line where the non-blank record ``index`` starts (only needed for an error message)."""
    reader, start, seen = _reader(text, delimiter), 1, -1
    for row in reader:
        seen += bool("".join(row).strip())
        if seen == index:
            return start
        start = reader.line_num + 1
    return start


def _trim(row: list[str], width: int) -> list[str]:
    """Drop trailing empty fields beyond ``width`` (spreadsheet exports leave trailing delimiters)."""
    while len(row) > width and not row[-1].strip():
        row = row[:-1]
    return row


def _all_numeric(row: list[str], delimiter: str) -> bool:
    """Is this first row data rather than a header: numbers (or missing markers), at least one number."""
    if all(c.strip() in MISSING_MARKERS for c in row):
        return False
    return _convert_column(row, delimiter != ",")[0].dtype == np.float64


def _convert_column(values: list[str], allow_decimal_comma: bool) -> tuple[pd.Series, bool]:
    """Cells -> floats when every present cell is a number, else stripped text (never evaluated)."""
    joined = "".join(values)
    if "_" not in joined and joined.isascii():  # fast path; Python's float() would take "1_0" and "١"
        comma = allow_decimal_comma and "," in joined
        try:
            cells = [v.replace(",", ".") for v in values] if comma else values
            return pd.Series(np.asarray(cells, dtype=np.float64)), comma
        except ValueError:
            pass
    cells = pd.Series(values, dtype=object).str.strip()
    cells = cells.where(~cells.isin(MISSING_MARKERS), np.nan)
    numbers = pd.to_numeric(cells, errors="coerce")
    text = numbers.isna() & cells.notna()
    if not text.any():
        return numbers.astype(float), False
    if allow_decimal_comma and cells[text].str.match(_DECIMAL_COMMA).all():
        numbers[text] = pd.to_numeric(cells[text].str.replace(",", "."), errors="coerce")
        return numbers.astype(float), True
    return cells.astype("str"), False
