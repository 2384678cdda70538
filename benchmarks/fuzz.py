"""A longer fuzz campaign over every parser of cpnas (the targets of tests/fuzz_targets.py): many
more generated inputs than the test suite's few hundred per target. Unlike the test, a failure
does not stop the campaign: every input is tried, and each failure (an exception other than
UserError, a write, or text on stderr) is counted and kept by its kind, with the smallest input that showed it.
Prints JSON: per target the inputs tried, how many loaded or were refused with the one-line error,
the failures, and the seconds taken.

    python benchmarks/fuzz.py [--examples 1000] [--target model] [--seed 0]

Atheris is not used: on these parsers its byte-level mutation adds nothing the structured
hypothesis strategies (safetensors headers, JSON values, YAML, pickles) do not already reach, and
it needs a libFuzzer-enabled build.
"""

import argparse
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, seed, settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.fuzz_targets import TARGETS, Target, outcome


def campaign(target: Target, examples: int, seed_value: int) -> dict:
    counts = {"tried": 0, "loaded": 0, "refused": 0}
    failures: dict[str, bytes] = {}

    @seed(seed_value)
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(target.inputs())
    def attempt(data: bytes) -> None:
        counts["tried"] += 1
        with tempfile.TemporaryDirectory() as folder:
            try:
                counts[outcome(target, data, Path(folder))] += 1
            except Exception as err:
                where = traceback.extract_tb(err.__traceback__)[-1]
                kind = f"{type(err).__name__} at {Path(where.filename).name}:{where.lineno}"
                if kind not in failures or len(data) < len(failures[kind]):
                    failures[kind] = data

    started = time.perf_counter()
    attempt()  # outcome() keeps the Notices (of version-1 model files) off the screen
    return {
        **counts,
        "failures": len(failures),
        "failure_kinds": {kind: repr(data[:200]) for kind, data in failures.items()},
        "seconds": round(time.perf_counter() - started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=1000, help="generated inputs per target")
    parser.add_argument("--target", default="", help="only the targets whose name holds this text")
    parser.add_argument("--seed", type=int, default=0, help="hypothesis's seed: same seed, same inputs")
    args = parser.parse_args()
    chosen = [t for name, t in TARGETS.items() if args.target.lower() in name.lower()]
    results = {t.name: campaign(t, args.examples, args.seed) for t in chosen}
    total = {k: sum(r[k] for r in results.values()) for k in ("tried", "loaded", "refused", "failures")}
    print(
        json.dumps(
            {"examples_per_target": args.examples, "seed": args.seed, "total": total, "targets": results}, indent=2
        )
    )


if __name__ == "__main__":
    main()
