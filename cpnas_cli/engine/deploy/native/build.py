"""Compile the native 1-bit kernel library (src/*.c) into `_cpnas_native.so` beside this file.

Used by the hatchling build hook (`hatch_build.py`, on every `pip install`) and by hand:
    python -m cpnas_cli.engine.deploy.native.build
The compiler is $CC or gcc. Baseline flags only: the AVX2 / AVX-512 kernels are function
variants chosen at run time, so one build loads on any x86-64. The epilogue's one FMA is
written out (fmaf, hence -lm); -ffp-contract=off keeps the compiler from fusing any other
mul-then-add, so floats match torch bit for bit.
"""

import os
import shlex
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCES = sorted((HERE / "src").glob("*.c"))
LIBRARY = HERE / "_cpnas_native.so"
FLAGS = ["-O3", "-std=c11", "-fPIC", "-shared", "-fopenmp", "-ffp-contract=off", "-fvisibility=hidden", "-Wall"]
LIBS = ["-lm"]


class BuildError(RuntimeError):
    """The compiler is missing or failed; the message is one line."""


def compiler() -> list[str]:
    return shlex.split(os.environ.get("CC", "gcc")) or ["gcc"]


def build(output: Path = LIBRARY) -> Path:
    """Compile the library to `output` (atomically: a failed build leaves no half-written file)."""
    command = [*compiler(), *FLAGS, *map(str, SOURCES), "-o", f"{output}.tmp", *LIBS]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise BuildError(f"{command[0]}: {error}") from error
    if done.returncode != 0:
        first = next((line for line in done.stderr.splitlines() if "error" in line), done.stderr.strip()[:200])
        raise BuildError(f"{shlex.join(command[:1])} failed (exit {done.returncode}): {first or 'no message'}")
    os.replace(f"{output}.tmp", output)
    return output


def main() -> int:
    try:
        print(f"built {build()}")
    except BuildError as error:
        print(f"cpnas native kernels not built: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
