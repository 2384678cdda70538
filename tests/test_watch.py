"""`cpnas watch`: the dashboard driven through Textual's Pilot against logs the tests write line by
line, the reader's handling of torn, bad, rewritten and too-new logs, torch-freedom, and a tiny
real search followed to its genotype."""

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cpnas_cli.cli.app import app as cli
from cpnas_cli.events import SCHEMA, EventReader, EventWriter, header
from cpnas_cli.tui.app import HelpScreen, WatchApp
from cpnas_cli.tui.panel import short
from cpnas_cli.tui.state import RunState
from tests.cli import ENV
from tests.dashboard import CELLS, EDGES, POLL, drive, started_log, text_of, until
from tests.tiny_runs import tiny_args


def sample(n: int, arch_op: str, acc_child: float, acc_parent: float, k: int = 3) -> dict:
    z = acc_child + 2 * (acc_parent - acc_child)
    return {
        "kind": "sample",
        "t": time.time(),
        "n": n,
        "total": 5,
        "K": k,
        "round": 1,
        "index": n,
        "arch": {c: [arch_op] * len(EDGES) for c in CELLS},
        "acc_child": acc_child,
        "acc_parent": acc_parent,
        "z": z,
        "loss_child": 2.0,
        "loss_parent": 1.5,
        "train_acc_child": 20.0,
        "train_acc_parent": 30.0,
        "lr": 0.05,
        "images": 100,
        "seconds": 2.0,
        "child_seconds": 1.0,
        "parent_seconds": 0.5,
        "eval_seconds": 0.5,
        "images_per_s": 66.7,
        "elapsed": 2.0 * n,
    }


def per_edge(values: dict) -> dict:
    return {c: [dict(values) for _ in EDGES] for c in CELLS}


def append_raw(path: Path, text: str) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(text)


def row(text: str, edge: str = "0→2") -> str:
    return next(line for line in text.splitlines() if line.startswith(edge))


# --- the ranking table -------------------------------------------------------------------------


def test_ranking_table_orders_ops_by_e_after_a_ranking_event(tmp_path):
    log = started_log(
        tmp_path / "events.jsonl",
        sample(1, "zero", 40, 50),
        sample(2, "skip", 30, 35),
        sample(3, "sep_conv_3x3", 50, 70),
    )

    async def scenario(pilot):
        await until(pilot, lambda: len(pilot.app.state.samples) == 3)
        # live: Eq. 2 over the mean z so far; sep (z 90) > zero (60) > skip (40). A log without
        # indicator_scale is from before it was recorded: percent, where 30 points give 1.000
        table = text_of(pilot, "#rank-normal")
        assert row(table).split()[1:] == [
            "sep_conv_3x3",
            "1.000",
            "90.0",
            "zero",
            "9e-14",
            "60.0",
            "skip",
            "2e-22",
            "40.0",
        ]
        assert "e (percent) z̄ (%)" in table
        log.emit(
            "ranking",
            K=3,
            mean_z=per_edge({"zero": 1, "skip": 3, "sep_conv_3x3": 2}),
            indicator=per_edge({"zero": 0.09, "skip": 0.665, "sep_conv_3x3": 0.245}),
        )
        await until(pilot, lambda: pilot.app.state.ranking is not None)
        table = text_of(pilot, "#rank-normal")
        assert row(table).split()[1:] == ["skip", ".665", "3.0", "sep_conv_3x3", ".245", "2.0", "zero", ".090", "1.0"]
        assert "ranking at K=3" in table
        leader = pilot.app.state.edge_rows("normal", 0)[0]
        assert leader.op == "skip" and leader.leader

    drive(tmp_path / "events.jsonl", scenario)


def test_pruned_ops_are_struck_with_the_k_they_went_at(tmp_path):
    log = started_log(tmp_path / "events.jsonl", sample(1, "zero", 40, 50))

    async def scenario(pilot):
        await until(pilot, lambda: pilot.app.state.samples)
        log.emit(
            "ranking",
            K=3,
            mean_z=per_edge({"zero": 1, "skip": 3, "sep_conv_3x3": 2}),
            indicator=per_edge({"zero": 0.1, "skip": 0.6, "sep_conv_3x3": 0.3}),
        )
        log.emit("prune", K=3, removed={c: ["zero"] * len(EDGES) for c in CELLS})
        await until(pilot, lambda: pilot.app.state.k == 2)
        await pilot.press("tab")  # the reduction cell
        table = pilot.app.board.query_one("#rank-reduce")
        rendered = table.render()
        line = row(rendered.plain, "4→5")
        assert line.split()[1:] == ["skip", ".600", "3.0", "sep_conv_3x3", ".300", "2.0", "zero", "K3"]
        start = rendered.plain.index(line) + line.index("zero")
        struck = [s for s in rendered.spans if s.start <= start < s.end and "strike" in str(s.style)]
        assert struck, "the pruned op is not struck"

    drive(tmp_path / "events.jsonl", scenario)


def test_a_fraction_scale_log_shows_graded_e_and_the_k2_margin(tmp_path):
    log = started_log(tmp_path / "events.jsonl", sample(1, "zero", 40, 50), indicator_scale="fraction")

    async def scenario(pilot):
        await until(pilot, lambda: pilot.app.state.samples)
        log.emit(
            "ranking",
            K=3,
            mean_z=per_edge({"zero": 60, "skip": 70, "sep_conv_3x3": 80}),
            indicator=per_edge({"zero": 0.3, "skip": 0.33, "sep_conv_3x3": 0.37}),
            scale="fraction",
        )
        log.emit("prune", K=3, removed={c: ["zero"] * len(EDGES) for c in CELLS})
        log.write([sample(2, "skip", 40, 50, k=2), sample(3, "sep_conv_3x3", 50, 70, k=2)])  # z 60 and 90
        await until(pilot, lambda: len(pilot.app.state.samples) == 3)
        # live at K = 2: e = softmax(z̄ / 100): sep 1 / (1 + exp(-0.3)) = 0.5744, skip 0.4256; margin 90 - 60
        table = text_of(pilot, "#rank-normal")
        assert row(table).split()[1:] == [
            "sep_conv_3x3",
            ".574",
            "90.0",
            "skip",
            ".426",
            "60.0",
            "zero",
            "K3",
            "Δ+30.0",
        ]
        assert "e (fraction) z̄ (%)" in table
        log.emit(
            "ranking",
            K=2,
            mean_z=per_edge({"skip": 60, "sep_conv_3x3": 90}),
            indicator=per_edge({"skip": 0.425557, "sep_conv_3x3": 0.574443}),
            scale="fraction",
        )
        log.emit("prune", K=2, removed={c: ["skip"] * len(EDGES) for c in CELLS})
        await until(pilot, lambda: pilot.app.state.k == 1)
        # one op left: the K = 2 ranking's e, z̄ and margin stay beside it
        assert row(text_of(pilot, "#rank-normal")).split()[1:] == [
            "sep_conv_3x3",
            ".574",
            "90.0",
            "skip",
            "K2",
            "zero",
            "K3",
            "Δ+30.0",
        ]

    drive(tmp_path / "events.jsonl", scenario)


# --- K timeline and the Child/Parent gap ---------------------------------------------------------


def test_k_timeline_and_gap_chart_take_new_lines(tmp_path):
    log = started_log(tmp_path / "events.jsonl", sample(1, "zero", 40, 50))

    async def scenario(pilot):
        await until(pilot, lambda: pilot.app.state.samples)
        k_before, gap_before = text_of(pilot, "#k"), text_of(pilot, "#gap")
        assert "1/5 samples · 4 left" in k_before and "A_C 40.0" in gap_before
        log.write([sample(2, "skip", 55, 61), sample(3, "sep_conv_3x3", 20, 80)])
        await until(pilot, lambda: len(pilot.app.state.samples) == 3)
        k_after, gap_after = text_of(pilot, "#k"), text_of(pilot, "#gap")
        assert "3/5 samples · 2 left" in k_after and "ETA" in k_after and k_after != k_before
        assert "A_C 20.0  A_P 80.0  gap +60.0  z 140.0" in gap_after
        chart = lambda text: [line[3:] for line in text.splitlines()[:-1]]  # noqa: E731 (the braille part)
        assert chart(gap_after) != chart(gap_before)

    drive(tmp_path / "events.jsonl", scenario)


# --- reading the log -------------------------------------------------------------------------------


def test_a_torn_line_is_held_back_until_complete(tmp_path):
    path = tmp_path / "events.jsonl"
    started_log(path)
    line = json.dumps(sample(1, "skip", 40, 50)) + "\n"

    async def scenario(pilot):
        await until(pilot, lambda: pilot.app.state.header is not None)
        append_raw(path, line[:25])
        await pilot.pause(10 * POLL)
        assert pilot.app.state.samples == [] and pilot.app.board.query_one("#status").skipped == 0
        append_raw(path, line[25:])
        await until(pilot, lambda: len(pilot.app.state.samples) == 1)
        assert "skip" in row(text_of(pilot, "#rank-normal")) and "bad line" not in text_of(pilot, "#status")

    drive(path, scenario)


def test_a_malformed_line_is_skipped_with_a_visible_notice(tmp_path):
    path = tmp_path / "events.jsonl"
    started_log(path)
    append_raw(path, "{not json\n" + json.dumps(sample(1, "skip", 40, 50)) + '\n{"kind": "sample", "n": 2}\n')

    async def scenario(pilot):
        await until(pilot, lambda: pilot.app.state.samples)
        assert "2 bad lines skipped" in text_of(pilot, "#status") and len(pilot.app.state.samples) == 1
        notices = [n.message for n in pilot.app._notifications]
        assert any("line 3" in m for m in notices) and any("a sample event without" in m for m in notices)

    drive(path, scenario)


def test_a_failed_run_shows_its_last_error(tmp_path):
    path = tmp_path / "events.jsonl"
    log = started_log(path, sample(1, "skip", 40, 50))

    async def scenario(pilot):
        await until(pilot, lambda: pilot.app.state.samples)
        log.emit("status", state="failed", error="RuntimeError: out of memory", sample=1)
        await until(pilot, lambda: pilot.app.state.state == "failed")
        assert "✗ failed  RuntimeError: out of memory" in text_of(pilot, "#status")
        assert any("out of memory" in n.message for n in pilot.app._notifications)
        assert "ETA" not in text_of(pilot, "#status")

    drive(path, scenario)


def test_a_rewritten_log_is_read_again_from_the_top(tmp_path):
    """A resume cuts the log back and may write more than it cut: the reader starts over."""
    path = tmp_path / "events.jsonl"
    log = started_log(path, sample(1, "skip", 40, 50))
    reader = EventReader(path)
    assert len(reader.read()[0]) == 3
    log.emit("status", state="interrupted", sample=1, batch=0)  # a second Ctrl-C: after the checkpoint
    assert len(reader.read()[0]) == 1
    keep = path.read_bytes().splitlines(keepends=True)[:3]
    path.write_bytes(b"".join(keep))  # the resume cuts back to the checkpoint ...
    log.emit("status", state="resumed", sample=1, batch=3, device="cpu")  # ... and writes more than it cut
    log.emit("status", state="interrupted", sample=1, batch=0)
    events, reset = reader.read()
    assert reset and [e["kind"] for e in events] == ["header", "status", "sample", "status", "status"]
    state = RunState()
    for e in events:
        state.apply(e)
    assert len(state.samples) == 1 and state.state == "interrupted"


def test_it_waits_for_a_run_dir_that_does_not_exist_yet(tmp_path):
    run = tmp_path / "later"

    async def scenario(pilot):
        waiting = pilot.app.board.query_one("#waiting")
        await until(pilot, lambda: "Waiting for" in str(waiting.render()))
        assert f"{run}" in str(waiting.render()) and pilot.app.board.has_class("-waiting")
        run.mkdir()
        started_log(run / "events.jsonl", sample(1, "zero", 40, 50))
        await until(pilot, lambda: pilot.app.state.samples)
        assert not pilot.app.board.has_class("-waiting") and "running" in text_of(pilot, "#status")

    drive(run, scenario)


def test_without_a_run_it_waits_for_the_latest_one_under_runs(tmp_path):
    root = tmp_path / "runs"
    app = WatchApp(None, root=root, interval=POLL)

    async def scenario(pilot):
        waiting = pilot.app.board.query_one("#waiting")
        await until(pilot, lambda: f"Waiting for a run under {root}/" in str(waiting.render()))
        run = root / "20261122-101500-quick"
        run.mkdir(parents=True)
        (run / "config.yaml").write_text("name: quick\n")
        started_log(run / "events.jsonl", sample(1, "zero", 40, 50))
        await until(pilot, lambda: pilot.app.state.samples)
        assert pilot.app.board.query_one("#status").path == run / "events.jsonl"

    drive(root, scenario, app=app)


def test_a_newer_schema_is_one_clear_error(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "events.jsonl").write_text(json.dumps({"kind": "header", "schema": SCHEMA + 1}) + "\n")
    result = CliRunner().invoke(cli, ["watch", str(run)])
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and f"schema {SCHEMA + 1}" in lines[0] and "upgrade cpnas" in lines[0]


def test_a_log_turning_too_new_later_stops_the_dashboard_with_the_error(tmp_path):
    run = tmp_path / "run"

    async def scenario(pilot):
        await pilot.pause(5 * POLL)
        run.mkdir()
        (run / "events.jsonl").write_text(json.dumps({"kind": "header", "schema": SCHEMA + 1}) + "\n")
        await until(pilot, lambda: pilot.app.error is not None)

    app = drive(run, scenario)
    assert f"schema {SCHEMA + 1}" in app.error and "upgrade cpnas" in app.error and app.return_code == 2


# --- keys --------------------------------------------------------------------------------------------


def test_keys_switch_cells_pause_help_and_quit(tmp_path):
    path = tmp_path / "events.jsonl"
    log = started_log(path, sample(1, "zero", 40, 50))

    async def scenario(pilot):
        board = pilot.app.board
        await until(pilot, lambda: pilot.app.state.samples)
        normal, reduce = board.query_one("#rank-normal"), board.query_one("#rank-reduce")
        assert normal.display and not reduce.display
        await pilot.press("tab")
        assert reduce.display and not normal.display
        await pilot.press("f")  # pause: new lines wait, the screen stays
        log.write([sample(2, "skip", 55, 61)])
        await until(pilot, lambda: "PAUSED, 1 new events" in text_of(pilot, "#status"))
        assert len(pilot.app.state.samples) == 1 and "1/5 samples" in text_of(pilot, "#k")
        await pilot.press("f")  # follow: they are applied
        assert len(pilot.app.state.samples) == 2 and "2/5 samples" in text_of(pilot, "#k")
        await pilot.press("question_mark")
        assert isinstance(pilot.app.screen, HelpScreen)
        await pilot.press("x")
        assert not isinstance(pilot.app.screen, HelpScreen)
        await pilot.press("q")
        assert pilot.app._exit

    drive(path, scenario)


def test_a_wide_terminal_shows_both_cells_and_the_sample(tmp_path):
    path = tmp_path / "events.jsonl"
    started_log(path, sample(1, "zero", 40, 50))

    async def scenario(pilot):
        await until(pilot, lambda: pilot.app.state.samples)
        board = pilot.app.board
        assert all(board.query_one(s).display for s in ("#rank-normal", "#rank-reduce", "#sample", "#gap", "#k"))
        assert "67 img/s" in text_of(pilot, "#sample")

    drive(path, scenario, size=(200, 50))


# --- training runs ---------------------------------------------------------------------------------


def test_a_training_run_shows_loss_and_accuracy_per_epoch(tmp_path):
    path = tmp_path / "events.jsonl"
    log = EventWriter(path)
    # a time budget: the header holds the most epochs (20), each epoch the current plan (4)
    log.write([header("train", {}, epochs=20), {"kind": "status", "t": time.time(), "state": "started"}])
    for epoch, (loss, child) in enumerate([(2.0, 30.0), (1.5, 50.0)], 1):
        log.emit(
            "epoch",
            epoch=epoch,
            epochs=4,
            loss=loss,
            loss_ce=loss - 0.1,
            loss_kernel=0.05,
            loss_center=0.05,
            train_acc_child=child - 5,
            train_acc_parent=None,
            test_acc_child=child,
            test_acc_parent=None,
            lr=0.1,
            images_per_s=500.0,
            seconds=10.0,
            elapsed=10.0 * epoch,
            best=True,
        )

    async def scenario(pilot):
        await until(pilot, lambda: len(pilot.app.state.epochs) == 2)
        assert pilot.app.board.has_class("-train")
        assert "test Child 50.00" in text_of(pilot, "#accuracy") and "test Parent -" in text_of(pilot, "#accuracy")
        assert "loss 1.50" in text_of(pilot, "#loss")
        assert "epoch 2/4 · 2 left · ETA" in text_of(pilot, "#epoch")
        assert "epoch 2/4" in text_of(pilot, "#status")

    drive(path, scenario)


# --- no torch, and a real search ---------------------------------------------------------------------


def test_the_dashboard_imports_no_torch(tmp_path):
    started_log(tmp_path / "events.jsonl", sample(1, "zero", 40, 50))
    script = textwrap.dedent(f"""
        import asyncio, sys, time
        from pathlib import Path
        from typer.testing import CliRunner
        from cpnas_cli.cli.app import app  # the whole CLI, as `cpnas watch` loads it
        assert CliRunner().invoke(app, ["watch", "--help"]).exit_code == 0
        from cpnas_cli.tui.app import WatchApp
        async def main():
            app = WatchApp(Path({str(tmp_path)!r}), interval=0.02)
            async with app.run_test() as pilot:
                deadline = time.monotonic() + 20
                while not app.state.samples and time.monotonic() < deadline:
                    await pilot.pause(0.02)
            assert app.state.samples
        asyncio.run(main())
        print("torch" in sys.modules)
    """)
    result = subprocess.run([sys.executable, "-c", script], env=ENV, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


@pytest.mark.e2e
def test_it_follows_a_real_search_to_its_genotype(tmp_path):
    run = tmp_path / "run"  # the dashboard starts first and waits for it
    app = WatchApp(run, interval=0.1)
    proc = None

    async def scenario(pilot):
        nonlocal proc
        await pilot.pause(0.2)
        proc = subprocess.Popen(
            [sys.executable, "-m", "cpnas_cli", *tiny_args(run)],
            env=ENV,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        await until(pilot, lambda: pilot.app.state.genotype is not None, timeout=180)
        await pilot.pause(0.3)
        assert pilot.app.state.state == "finished" and len(pilot.app.state.samples) == 9
        saved = json.loads((run / "genotype.json").read_text())
        node2 = " ".join(f"{short(e['op'])}←{e['input']}" for e in saved["normal"]["nodes"][0])
        assert text_of(pilot, "#genotype").startswith(f"normal 2:{node2}")
        assert "finished" in text_of(pilot, "#status")

    try:
        drive(run, scenario, app=app)
    finally:
        if proc is not None:
            assert proc.wait(timeout=60) == 0, proc.stderr.read()
