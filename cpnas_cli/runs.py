"""Run directories: layout, creation, finding the latest run, and atomic file writes. Torch-free.

runs/<timestamp>-<name>/
  config.yaml      the resolved configuration
  events.jsonl     the event log (events.py)
  checkpoint/      state.json + weights (safetensors), replaced atomically
  genotype.json    a search's result
"""

import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError

RUNS_ROOT = Path("runs")


def _file_mode() -> int:
    """What open() would give a new file: 0666 minus the umask (read once, at import: reading it
    means setting it, which is not thread-safe)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


FILE_MODE = _file_mode()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temp file in the same directory, fsync, then rename over `path`: readers see the
    old file or the new one, never a torn one, whenever the process dies."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), FILE_MODE)  # mkstemp makes 0600; a user's files follow the umask
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def publish(tmp: Path, path: Path) -> None:
    """Rename a finished temp file over `path`, with the mode a new file gets (writers such as
    safetensors create 0600 files)."""
    os.chmod(tmp, FILE_MODE)
    os.replace(tmp, path)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def read_text(path: Path, what: str, fix: str) -> str:
    """A text file a user or a run handed us: one that cannot be read or is not UTF-8 (a binary
    file passed by mistake) is a UserError naming `what`, not a traceback."""
    try:
        return Path(path).read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise UserError(f"{what} is not UTF-8 text (byte {err.start} is {err.object[err.start]:#04x})", fix) from None
    except OSError as err:
        raise UserError(f"{what} cannot be read ({err.strerror})", fix) from None


@dataclass(frozen=True)
class RunDir:
    path: Path

    @property
    def config(self) -> Path:
        return self.path / "config.yaml"

    @property
    def events(self) -> Path:
        return self.path / "events.jsonl"

    @property
    def checkpoint(self) -> Path:
        return self.path / "checkpoint"

    @property
    def genotype(self) -> Path:
        return self.path / "genotype.json"

    def is_run(self) -> bool:
        return self.config.is_file()


def new_run_dir(name: str, run_dir: Path | None = None, root: Path = RUNS_ROOT) -> RunDir:
    """Create the run directory: `run_dir` if given (must be new or empty), else runs/<time>-<name>."""
    if run_dir is None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        run_dir = root / f"{stamp}-{name}"
        suffix = 1
        while run_dir.exists():
            suffix += 1
            run_dir = root / f"{stamp}-{name}-{suffix}"
    run_dir = Path(run_dir)
    if run_dir.exists() and any(run_dir.iterdir()):
        raise UserError(
            f"run directory {run_dir} already exists and is not empty",
            f"resume it with --resume {run_dir}, or choose another --run-dir",
        )
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(
            f"cannot create run directory {run_dir} ({err.strerror})", "choose a writable --run-dir"
        ) from None
    return RunDir(run_dir)


def existing_run(path: Path | str) -> RunDir:
    run = RunDir(Path(path))
    if not run.is_run():
        raise UserError(
            f"{path} is not a cpnas run directory (no config.yaml)",
            "pass a directory created by `cpnas search` or `cpnas train`, e.g. runs/<id>",
        )
    return run


def latest_run(root: Path = RUNS_ROOT) -> RunDir | None:
    """The most recently started run under `root` (its config.yaml is written once, at the start)."""
    runs = [RunDir(p) for p in root.glob("*") if RunDir(p).is_run()] if root.is_dir() else []
    return max(runs, key=lambda r: r.config.stat().st_mtime, default=None)
