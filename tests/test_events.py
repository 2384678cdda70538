"""The event log: whole lines only, torn lines held back, shrinking logs, bad lines, new schemas."""

import json

import pytest

from cpnas_cli.events import SCHEMA, EventReader, EventWriter, SchemaError, header, read_all


def test_reader_returns_only_new_complete_events(tmp_path):
    log = EventWriter(tmp_path / "events.jsonl")
    reader = EventReader(log.path)
    assert reader.read() == ([], False)  # no file yet: nothing, no error
    log.write([header("search", {}, cells=["normal"], edges=[[0, 2]], ops=["skip"])])
    log.emit("sample", n=1)
    events, reset = reader.read()
    assert [e["kind"] for e in events] == ["header", "sample"] and not reset
    log.emit("sample", n=2)
    events, _ = reader.read()
    assert [e["n"] for e in events] == [2]
    assert reader.read() == ([], False)


def test_a_torn_last_line_waits_for_its_newline(tmp_path):
    path = tmp_path / "events.jsonl"
    line = json.dumps({"kind": "sample", "n": 1})
    path.write_text(line[:10])
    reader = EventReader(path)
    assert reader.read() == ([], False)
    with open(path, "a") as f:
        f.write(line[10:])
    assert reader.read() == ([], False)  # still no newline
    with open(path, "a") as f:
        f.write("\n")
    events, _ = reader.read()
    assert events == [{"kind": "sample", "n": 1}]


def test_a_truncated_log_is_read_again_from_the_top(tmp_path):
    log = EventWriter(tmp_path / "events.jsonl")
    for n in range(3):
        log.emit("sample", n=n)
    reader = EventReader(log.path)
    reader.read()
    size_after_one = len(log.path.read_bytes().splitlines(keepends=True)[0])
    log.truncate(size_after_one)
    events, reset = reader.read()
    assert reset and [e["n"] for e in events] == [0]


def test_malformed_lines_are_skipped_with_a_notice(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text('{"kind": "sample", "n": 1}\nnot json\n[1, 2]\n{"kind": "sample", "n": 2}\n')
    reader = EventReader(path)
    events, _ = reader.read()
    assert [e["n"] for e in events] == [1, 2]
    assert [(n.line, n.text) for n in reader.notices] == [
        (2, "skipped a malformed line"),
        (3, "skipped a line without a kind"),
    ]


def test_a_newer_schema_is_one_clear_error(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text(json.dumps({"kind": "header", "schema": SCHEMA + 1}) + "\n")
    with pytest.raises(SchemaError, match=f"schema {SCHEMA + 1}"):
        read_all(path)


def test_atomic_writes_give_files_the_usual_permissions(tmp_path):
    from cpnas_cli.runs import atomic_write_text

    plain = tmp_path / "plain.txt"
    plain.write_text("x")  # what open() gives under this process's umask
    atomic_write_text(tmp_path / "atomic.txt", "x")
    assert (tmp_path / "atomic.txt").stat().st_mode == plain.stat().st_mode


def test_published_temp_files_get_the_usual_permissions(tmp_path):
    import os

    from cpnas_cli.runs import publish

    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    tmp = tmp_path / ".model.tmp"
    tmp.write_text("x")
    os.chmod(tmp, 0o600)  # as safetensors' writer leaves it
    publish(tmp, tmp_path / "model.safetensors")
    assert not tmp.exists()
    assert (tmp_path / "model.safetensors").stat().st_mode == plain.stat().st_mode
