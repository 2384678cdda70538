"""The `cpnas` command line as the tests drive it: one-line errors through Typer's runner, and the
CLI in a subprocess, interrupted by Ctrl-C or killed with SIGKILL at a seeded random moment."""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "160"}
KILL_SEED = "CPNAS_KILL_SEED"  # set it to a printed seed to replay that kill moment


def set_flags(overrides: list[str]) -> list[str]:
    """`--set key=value` for each override, as the command line takes them."""
    return [x for s in overrides for x in ("--set", s)]


def assert_one_line_error(result, pattern):
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    assert pattern in lines[0], lines[0]


def run_cli(args, **kwargs):
    return subprocess.run([sys.executable, "-m", "cpnas_cli", *args], env=ENV, capture_output=True, text=True, **kwargs)


def start_cli(args):
    return subprocess.Popen(
        [sys.executable, "-m", "cpnas_cli", *args], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def wait_for(condition, seconds=120):
    deadline = time.time() + seconds
    while not condition():
        assert time.time() < deadline, "timed out"
        time.sleep(0.02)


def press_ctrl_c(proc, timeout: float) -> tuple[str, str]:
    """Send the process Ctrl-C's SIGINT and wait for it to end: its stdout and stderr."""
    proc.send_signal(signal.SIGINT)
    return proc.communicate(timeout=timeout)


def kill_at_a_random_moment(proc, run_dir: Path, within: float, started: str = "config.yaml") -> None:
    """SIGKILL `proc` once its run has started (`run_dir/started` exists: imports take long on a busy
    machine), after a delay drawn uniformly from [0, within) seconds by a seeded generator; wait for it.

    The seed and the delay are printed: `pytest -s` shows them, and pytest's report of a failing test
    shows its captured stdout. `CPNAS_KILL_SEED=<seed>` replays the draw; the delay is the same fraction
    of `within`, the duration of this machine's uninterrupted reference run."""
    wait_for(lambda: (run_dir / started).exists())
    seed = int(os.environ.get(KILL_SEED) or random.SystemRandom().randrange(1_000_000))
    delay = random.Random(seed).uniform(0.0, within)
    test = os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" ", 1)[0]
    print(
        f"kill -9 replay: seed={seed} after {delay:.3f}s of {within:.3f}s; "
        f"replay with {KILL_SEED}={seed} OMP_NUM_THREADS=1 python -m pytest -s '{test}'",
        flush=True,
    )
    time.sleep(delay)
    proc.kill()
    proc.wait()
