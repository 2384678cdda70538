"""The scale of Eq. 2 as a search records and shows it: the log names it, a replay of the log on
its own scale gives the search's genotype, and the survivors table prints e beside the mean z
and the K = 2 margin that decided, naming the scale."""

import io
import json

import pytest
from rich.console import Console

from cpnas_cli.bookkeeping.indicator import edge_indicator
from cpnas_cli.bookkeeping.replay import log_scale, replay, replayed_genotype
from cpnas_cli.cli._search_view import survivors_table
from cpnas_cli.events import read_all
from cpnas_cli.space import genotype as genotypes


def rendered(table) -> str:
    console = Console(width=120, file=io.StringIO())
    console.print(table)
    return console.file.getvalue()


def test_a_search_logs_its_scale_and_its_replay_gives_its_genotype(tiny_search):
    run, _ = tiny_search()
    events = read_all(run / "events.jsonl")
    assert events[0]["indicator_scale"] == "fraction" == log_scale(events)
    rankings = [e for e in events if e["kind"] == "ranking"]
    assert {e["scale"] for e in rankings} == {"fraction"}
    # the logged e is Eq. 2 on the logged mean z, as fractions
    first = rankings[0]
    assert first["indicator"]["normal"][0] == pytest.approx(edge_indicator(first["mean_z"]["normal"][0]), abs=1e-6)
    own = json.loads((run / "genotype.json").read_text())
    replayed = genotypes.to_dict(replayed_genotype(events))
    assert {c: own[c] for c in ("normal", "reduce")} == {c: replayed[c] for c in ("normal", "reduce")}
    # on the other scale the removals stay as logged; only e changes
    percent = replay(events, "percent")
    assert percent.remaining == replay(events).remaining
    assert percent.last_ranking != replay(events).last_ranking


def test_the_survivors_table_shows_e_mean_z_and_the_margin(tiny_search):
    run, _ = tiny_search()
    events = read_all(run / "events.jsonl")
    last = [e for e in events if e["kind"] == "ranking"][-1]
    survivor = replay(events).remaining["normal"][0][0]
    means = last["mean_z"]["normal"][0]
    other = next(op for op in means if op != survivor)
    text = rendered(survivors_table(events))
    assert "e: Eq. 2 with accuracy as a fraction" in text and "at the last ranking (K=2)" in text
    row = next(line for line in text.splitlines() if line.strip().startswith("0 -> 2")).split()
    e, z, margin = last["indicator"]["normal"][0][survivor], means[survivor], means[survivor] - means[other]
    assert row[3:7] == [survivor, f"{e:.3f}", f"{z:.1f}", f"{margin:+.1f}"]


def test_a_log_without_a_scale_is_percent():
    head = {"kind": "header", "run": "search", "cells": ["normal"], "edges": [[0, 2]], "ops": ["a", "b"]}
    ranking = {"kind": "ranking", "K": 2, "mean_z": {"normal": [{"a": 70, "b": 60}]}}
    ranking["indicator"] = {"normal": [edge_indicator({"a": 70, "b": 60}, "percent")]}
    events = [head, ranking, {"kind": "prune", "K": 2, "removed": {"normal": ["b"]}}]
    assert log_scale(events) == "percent"
    text = rendered(survivors_table(events))
    # 1 / (1 + exp(-10)) = 0.99995: a 10-point margin already shows as 1.000
    assert "accuracy as a percentage" in text
    assert next(line for line in text.splitlines() if "0 -> 2" in line).split()[3:] == ["a", "1.000", "70.0", "+10.0"]


def test_replay_refuses_what_keeps_no_ledger():
    head = {"kind": "header", "run": "search", "config": {"search": {"strategy": "abandit"}}}
    with pytest.raises(ValueError, match="abandit"):
        replay([head])
