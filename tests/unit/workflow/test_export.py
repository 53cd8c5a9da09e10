import pandas as pd

from core.workflow import csv_bytes, neutralise, write_csv


def test_formula_cells_neutralised_numbers_untouched():
    df = pd.DataFrame({"name": ["=HYPERLINK(\"x\")", "+1+1", "-cmd", "@SUM(A1)", "plain"], "value": [-1.5, 2, 3, 4, 5]})
    out = neutralise(df)
    assert out["name"].tolist() == ["'=HYPERLINK(\"x\")", "'+1+1", "'-cmd", "'@SUM(A1)", "plain"]
    assert out["value"].tolist() == [-1.5, 2, 3, 4, 5]
    assert df["name"].iloc[0].startswith("=")  # input not mutated


def test_csv_is_utf8_with_bom_and_written_atomically(tmp_path):
    df = pd.DataFrame({"年龄": [63.0], "note": ["=1+2"]})
    data = csv_bytes(df)
    assert data.startswith(b"\xef\xbb\xbf")
    path = tmp_path / "out.csv"
    write_csv(df, path)
    back = pd.read_csv(path, encoding="utf-8-sig")
    assert back.columns.tolist() == ["年龄", "note"] and back["note"].iloc[0] == "'=1+2"
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]
