"""The shared table reader's additions for the statistics commands (issue #11): streaming, typed checks."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from growthcurve.data.readers import infer_numeric, iter_delimited, line_of, read_table, require_numeric
from growthcurve.errors import DataError


def test_a_well_formed_long_field_is_not_malformed(tmp_path: Path) -> None:
    p = tmp_path / "t.csv"
    p.write_text("id,text\n1," + "x" * 300_000 + "\n2,short\n")
    assert read_table(p)["text"].str.len().tolist() == [300_000, 5]
    assert sum(len(c) for c in iter_delimited(p)) == 2


def test_field_limit_is_configurable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "t.csv"
    p.write_text("id,text\n1," + "x" * 50 + "\n")
    monkeypatch.setenv("GROWTHCURVE_CSV_FIELD_LIMIT", "10")
    with pytest.raises(DataError, match="t.csv:2: malformed CSV"):
        read_table(p)
    monkeypatch.setenv("GROWTHCURVE_CSV_FIELD_LIMIT", "lots")
    with pytest.raises(Exception, match="GROWTHCURVE_CSV_FIELD_LIMIT"):
        read_table(p)


def test_chunks_keep_file_line_numbers(tmp_path: Path) -> None:
    p = tmp_path / "t.csv"
    p.write_text('a,b\n1,2\n\n"3\nstill 3",4\n5,x\n6,7\n')
    chunks = list(iter_delimited(p, chunk_rows=2))
    assert [len(c) for c in chunks] == [2, 2]
    assert [line_of(c, i) for c in chunks for i in range(len(c))] == [2, 4, 6, 7]
    with pytest.raises(DataError, match=r"t.csv:6: column 'b' must be a finite number, got 'x'"):
        for c in chunks:
            require_numeric(c, ["b"], p)


def test_bad_byte_offset_is_exact_across_read_blocks(tmp_path: Path) -> None:
    p = tmp_path / "t.csv"
    body = b"a,b\n" + b"1,2\n" * 400_000  # 1.6 MB: the bad byte sits in the second 1 MiB block
    p.write_bytes(body + b"\xff,3\n")
    with pytest.raises(DataError, match=f"not UTF-8 text \\(byte {len(body)}\\)"):
        list(iter_delimited(p))


def test_require_numeric_blank_and_inf(tmp_path: Path) -> None:
    df = read_table(_write(tmp_path, "a,b\n1,\n2,inf\n"))
    with pytest.raises(DataError, match=r":3: column 'b' must be a finite number, got 'inf'"):
        require_numeric(df, ["b"], "t.csv")
    with pytest.raises(DataError, match=r":2: column 'b' .* got a blank cell"):
        require_numeric(df, ["b"], "t.csv", allow_missing=False)
    out = require_numeric(df.iloc[:1], ["a", "b"], "t.csv")
    assert out["a"].tolist() == [1.0] and pd.isna(out["b"].iloc[0])


def test_infer_numeric_types_only_all_number_columns(tmp_path: Path) -> None:
    df = infer_numeric(read_table(_write(tmp_path, "a,b,c\n1,x,2.5\n2,3,\n")))
    assert df["a"].tolist() == [1, 2] and df["b"].tolist() == ["x", "3"] and df["c"].iloc[0] == 2.5


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "t.csv"
    p.write_text(text)
    return p
