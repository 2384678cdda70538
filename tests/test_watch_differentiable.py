"""`cpnas watch` on pc-darts and dcp logs: architecture weights per edge, the current argmax
genotype, the phase panel and, for dcp, the Child/Parent gap, driven through Textual's Pilot."""

import time

from cpnas_cli.events import EventWriter, header
from cpnas_cli.tui.alpha_panels import ranked
from tests.test_watch import CELLS, EDGES, OPS, drive, text_of, until

# node 2 of each cell: edge 0->2 prefers sep_conv_3x3, 1->2 prefers skip (zero leads on 1->2)
WEIGHTS = [{"zero": 0.2, "skip": 0.3, "sep_conv_3x3": 0.5}, {"zero": 0.5, "skip": 0.3, "sep_conv_3x3": 0.2}]
WEIGHTS += [{"zero": 0.4, "skip": 0.35, "sep_conv_3x3": 0.25}] * (len(EDGES) - 2)
NODES = [[{"op": "sep_conv_3x3", "input": 0}, {"op": "skip", "input": 1}]] + [
    [{"op": "skip", "input": 0}, {"op": "skip", "input": 1}]
] * 3
GENOTYPE = {
    "format": "cpnas-genotype",
    "version": 1,
    "meta": {},
    **{c: {"nodes": NODES, "concat": [2, 3, 4, 5]} for c in CELLS},
}


def alpha(step: int, role: str = "search", **fields) -> dict:
    return {
        "kind": "alpha",
        "t": time.time(),
        "step": step,
        "total": 4,
        "role": role,
        "epoch": 0.25 * step,
        "images": 3000,
        "arch_steps": 20,
        "lr": 0.009,
        "loss": 1.25,
        "train_acc": 55.0,
        "arch_loss": 1.3,
        "acc_child": 60.0 + step,
        "weights": {c: WEIGHTS for c in CELLS},
        "genotype": GENOTYPE,
        "seconds": 30.0,
        "images_per_s": 100.0,
        "elapsed": 30.0 * step,
        **fields,
    }


def started(path, strategy: str, *events) -> EventWriter:
    log = EventWriter(path)
    log.write(
        [
            header("search", {"search": {"strategy": strategy}}, cells=CELLS, edges=EDGES, ops=OPS),
            {"kind": "status", "t": time.time(), "state": "started", "total": 4},
            *events,
        ]
    )
    return log


def edge_row(text: str, edge: str) -> str:
    return next(line for line in text.splitlines() if edge in line and "softmax" not in line)


def test_pc_darts_shows_weights_per_edge_the_current_genotype_and_the_phase(tmp_path):
    beta = {c: [0.7, 0.3] + [0.5] * (len(EDGES) - 2) for c in CELLS}
    log = started(tmp_path / "events.jsonl", "pc-darts", alpha(1, edge_weights=beta))

    async def scenario(pilot):
        await until(pilot, lambda: pilot.app.state.alphas)
        board = pilot.app.board
        assert board.has_class("-differentiable") and not board.query_one("#search").display
        table = text_of(pilot, "#weights-normal")
        assert "phase 1/4" in table
        assert edge_row(table, "0→2").split()[:7] == ["*0→2", "β0.70", "sep_conv_3x3", ".500", "skip", ".300", "zero"]
        assert edge_row(table, "1→2").split()[2:4] == ["zero", ".500"]  # zero first, yet skip leads
        leaders = [r.op for r in ranked(WEIGHTS[1]) if r.leader]
        assert leaders == ["skip"]
        assert text_of(pilot, "#diff-genotype").startswith("normal 2:sep3←0 skip←1")
        assert "argmax after phase 1/4" in board.query_one("#diff-genotype").border_title
        phase = " ".join(text_of(pilot, "#phase").split())
        assert "A_C 61.0" in phase and "arch loss 1.3" in phase and "A_P" not in phase
        assert "phase 1/4" in text_of(pilot, "#status") and "100 img/s" in text_of(pilot, "#status")
        log.emit("alpha", **{k: v for k, v in alpha(2, edge_weights=beta).items() if k not in ("kind", "t")})
        await until(pilot, lambda: len(pilot.app.state.alphas) == 2)
        assert "phase 2/4" in text_of(pilot, "#weights-normal") and "A_C 62.0" in text_of(pilot, "#phase")

    drive(tmp_path / "events.jsonl", scenario, size=(100, 40))


def test_at_80x24_the_weights_and_the_accuracy_fit(tmp_path):
    started(tmp_path / "events.jsonl", "pc-darts", alpha(1))

    async def scenario(pilot):
        await until(pilot, lambda: pilot.app.state.alphas)
        table = text_of(pilot, "#weights-normal").splitlines()
        assert len(table) == 16 and table[-1].startswith("best non-zero op")  # head, 14 edges, legend
        assert text_of(pilot, "#phase").startswith("A_C 61.0")
        await pilot.press("tab")
        assert pilot.app.board.query_one("#weights-reduce").display

    drive(tmp_path / "events.jsonl", scenario)


def test_dcp_shows_the_child_parent_gap_and_where_their_architectures_differ(tmp_path):
    parent = {c: [{"zero": 0.1, "skip": 0.6, "sep_conv_3x3": 0.3}] + WEIGHTS[1:] for c in CELLS}
    started(
        tmp_path / "events.jsonl",
        "dcp",
        alpha(1, "parent", acc_parent=70.0, weights_parent=parent),
        alpha(2, "child", acc_parent=70.0, weights_parent=parent, tangent_distance=0.002, penalty_share=1e-6),
    )

    async def scenario(pilot):
        await until(pilot, lambda: len(pilot.app.state.alphas) == 2)
        assert "Child softmax(alpha)" in text_of(pilot, "#weights-normal")
        phase = " ".join(text_of(pilot, "#phase").split())
        assert "A_C 62.0 A_P 70.0 gap +8.0" in phase
        assert "D 0.002" in phase and "penalty share 1e-06" in phase
        assert "different ops on 2 edges" in phase  # edge 0->2 of both cells: sep (Child) vs skip (Parent)
        assert pilot.app.board.query_one("#phase").border_title == "phase 2/4 · child"

    drive(tmp_path / "events.jsonl", scenario, size=(100, 40))
