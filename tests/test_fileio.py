"""Atomic file output: the target shows the old content or the new, never a part."""

from __future__ import annotations

import pytest

from algo_trade.fileio import atomic_path, write_text_atomic


def test_success_replaces_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "sub" / "report.html"
    write_text_atomic(target, "old")
    with atomic_path(target) as tmp:
        tmp.write_text("new, half")
        assert target.read_text() == "old"  # not visible until the block ends
        tmp.write_text("new")
    assert target.read_text() == "new"
    assert [p.name for p in target.parent.iterdir()] == ["report.html"]


def test_failure_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    target = tmp_path / "results.csv"
    write_text_atomic(target, "old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("partial")
        raise RuntimeError("writer died")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["results.csv"]
