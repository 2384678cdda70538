"""Peak memory of a search: cp (single path) against pc-darts and dcp (every op on every edge).

Every (preset, strategy) runs in a fresh process, which loads the preset's data, builds the
strategy, then trains a few batches of the first phase of each of its roles (cp: a sample;
dcp: the Parent's phase, then the Child's) with architecture steps on from the first batch.
Memory is the process's resident set from /proc/self/status: VmRSS once everything is built,
then the high-water mark VmHWM over training, its counter reset after the build (writing 5 to
/proc/self/clear_refs) so that loading the dataset does not hide the training peak. Resident
memory, because tensors live in torch's CPU allocator (malloc/mmap), which tracemalloc (a
tracer of Python objects) never sees; a fresh process per setting, because a high-water mark
only ever grows. Prints JSON; run it under the CPU lock:

    flock /tmp/cpnas-cpu.lock python benchmarks/memory.py [--presets quick,fashion-mnist]
        [--strategies cp,pc-darts,dcp] [--batches 3]
"""

import argparse
import contextlib
import json
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIRST_STEPS = {"dcp": (0, 1)}  # steps to probe: the first phase of each role; others: step 0


def status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024  # kB
    raise RuntimeError(f"no {field} in /proc/self/status")


def measure(preset: str, strategy: str, batches: int) -> dict:
    """In this (fresh) process: build, reset the high-water mark, train `batches` per probed step."""
    sys.path.insert(0, str(ROOT))
    from cpnas_cli.config import load_config
    from cpnas_cli.engine.search.runner import Search
    from cpnas_cli.engine.search.strategies import StepContext, StopRequested

    config = load_config(preset, sets=[f"search.strategy={strategy}", "search.diff_warmup_epochs=0", "device=cpu"])
    search = Search(config)
    built = status_mb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    stop = threading.Event()

    def report(event):
        if event["kind"] == "progress" and event["batch"] >= batches:
            stop.set()

    started = time.perf_counter()
    for n in FIRST_STEPS.get(strategy, (0,)):
        stop.clear()
        with contextlib.suppress(StopRequested):
            search.strategy.step(n, StepContext(report, stop, 0.0))
    s = config.search
    return {
        "preset": preset,
        "strategy": strategy,
        "dataset": config.data.dataset,
        "batch_size": s.diff_batch_size if strategy in ("pc-darts", "dcp") else s.batch_size,
        "channels": s.channels,
        "cells": s.cells,
        "pc_k": s.pc_k if strategy in ("pc-darts", "dcp") else None,
        "built_mb": round(built, 1),
        "peak_mb": round(status_mb("VmHWM"), 1),
        "training_mb": round(status_mb("VmHWM") - built, 1),
        "seconds": round(time.perf_counter() - started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="quick,fashion-mnist")
    parser.add_argument("--strategies", default="cp,pc-darts,dcp")
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--one", nargs=2, metavar=("PRESET", "STRATEGY"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(*args.one, args.batches)))
        return
    results = []
    for preset in args.presets.split(","):
        for strategy in args.strategies.split(","):
            out = subprocess.run(
                [sys.executable, __file__, "--one", preset, strategy, "--batches", str(args.batches)],
                capture_output=True,
                text=True,
                check=True,
            )
            results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(
        json.dumps(
            {
                "benchmark": "search peak memory (VmHWM over training, fresh process each)",
                "batches_per_role": args.batches,
                "python": platform.python_version(),
                "results": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
