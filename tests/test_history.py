"""history.csv's one reader (nettrain.run.history): NA, empty and cut-off cells, unreadable
files, and what a resume keeps."""

from __future__ import annotations

import math

from nettrain.run import history


def test_na_empty_and_missing_cells_are_values_that_are_not_there(tmp_path):
    path = tmp_path / "history.csv"
    path.write_text("epoch,loss,val_loss\r\n0,0.9,NA\r\n1,0.8,\r\n\r\n2,0.7\r\n3,x,0.5,9\r\n")
    rows = history.read(path)
    assert rows.columns == ["epoch", "loss", "val_loss"] and len(rows) == 4  # blank line: none
    assert [rows.epoch(i) for i in range(4)] == [0, 1, 2, 3]
    assert [r["loss"] for r in rows.rows][:3] == [0.9, 0.8, 0.7]
    assert all(math.isnan(v) for v in (rows.rows[0]["val_loss"], rows.rows[1]["val_loss"],
                                       rows.rows[2]["val_loss"], rows.rows[3]["loss"]))
    assert rows.with_values() == ["epoch", "loss", "val_loss"]
    assert list(rows.frame()["epoch"]) == [0, 1, 2, 3]
    path.write_text("epoch,loss,val_loss\r\n0,0.9,NA\r\n")
    assert history.read(path).with_values() == ["epoch", "loss"]  # a column of NA only


def test_a_missing_empty_or_unreadable_file(tmp_path):
    path = tmp_path / "history.csv"
    assert history.read(path) is None and history.header(path) == []
    path.write_bytes(b"")
    assert len(history.read(path)) == 0 and history.header(path) == []
    path.write_text("epoch,loss\n")
    assert len(history.read(path)) == 0 and history.header(path) == ["epoch", "loss"]
    path.write_bytes(b"epoch,loss\n0,\xff\xfe\n")
    assert history.read(path) is None  # not UTF-8


def test_a_resume_keeps_the_header_and_the_completed_epochs(tmp_path):
    path = tmp_path / "history.csv"
    path.write_bytes(b"epoch;loss\r\n0;0.9\r\n1;0.8\r\n2;0.7")  # a killed epoch's row last
    history.keep_epochs(path, 2)
    assert path.read_bytes() == b"epoch;loss\r\n0;0.9\r\n1;0.8\r\n"
    assert history.header(path, ";") == ["epoch", "loss"]
