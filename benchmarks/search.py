"""Search speed: runs a whole search (default: the quick preset) and prints its figures as JSON.

    python benchmarks/search.py                      # the default `cpnas search`
    python benchmarks/search.py --preset fashion-mnist --set search.rounds=1
    python benchmarks/search.py --run runs/<id>     # the figures of a finished run, from its log

Figures: wall time of the whole search (data loading included), median seconds per sample spent
training the Child and the Parent and evaluating both, median training images/s (Child and
Parent on the same images, so one image counts once), and the Child/Parent validation accuracy
of the final round (the K = 2 samples). With --run, the wall time is the search's own clock (the
`elapsed` of its last sample: training, validation and checkpoints, without data loading).
"""

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from cpnas_cli.config import dump_yaml, load_config
from cpnas_cli.engine.search.runner import Search
from cpnas_cli.events import read_all
from cpnas_cli.runs import new_run_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--set", dest="sets", action="append", default=[], help="config key=value")
    parser.add_argument("--run", type=Path, help="summarize this finished search run instead of running one")
    args = parser.parse_args()
    if args.run:
        samples = [e for e in read_all(args.run / "events.jsonl") if e["kind"] == "sample"]
        print(json.dumps({"run": str(args.run), "wall_seconds": samples[-1]["elapsed"], **figures(samples)}, indent=2))
        return
    config = load_config(args.preset, sets=args.sets)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        run = new_run_dir(config.name, Path(tmp) / "run")
        run.config.write_text(dump_yaml(config))
        search = Search(config)
        search.begin(run)
        search.run()
        wall = time.perf_counter() - started
        samples = [e for e in read_all(run.events) if e["kind"] == "sample"]
    print(
        json.dumps(
            {
                "preset": args.preset,
                "sets": args.sets,
                "device": str(search.device),
                "wall_seconds": round(wall, 1),
                **figures(samples),
            },
            indent=2,
        )
    )


def figures(samples: list[dict]) -> dict:
    final = [s for s in samples if s["K"] == 2]
    return {
        "samples": len(samples),
        "child_seconds_per_sample": round(statistics.median(s["child_seconds"] for s in samples), 3),
        "parent_seconds_per_sample": round(statistics.median(s["parent_seconds"] for s in samples), 3),
        "eval_seconds_per_sample": round(statistics.median(s["eval_seconds"] for s in samples), 3),
        "images_per_s": round(statistics.median(s["images_per_s"] for s in samples), 1),
        "final_round_acc_child": [s["acc_child"] for s in final],
        "final_round_acc_parent": [s["acc_parent"] for s in final],
    }


if __name__ == "__main__":
    main()
