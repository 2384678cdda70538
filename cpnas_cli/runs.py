"""Run directories: layout, creation, finding the latest run, and atomic file writes. Torch-free.

runs/<timestamp>-<name>/
  config.yaml      the resolved configuration
  events.jsonl     the event log (events.py)
  checkpoint/      state.json + weights (safetensors), replaced atomically
  genotype.json    a search's result
  writer.lock      the advisory lock of the one process writing the run (holds its PID)
"""

import fcntl
import json
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .errors import UserError

RUNS_ROOT = Path("runs")
LOCK = "writer.lock"
_held: dict[Path, BinaryIO] = {}  # run directory -> its open lock file, while this process writes it


def _file_mode() -> int:
    """What open() would give a new file: 0666 minus the umask (read once, at import: reading it
    means setting it, which is not thread-safe)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


FILE_MODE = _file_mode()


WRITE_FIX = (
    "free space on that disk or make the place writable, then run again (a run resumes from its last checkpoint)"
)


@contextmanager
def disk_errors(
    path: Path, tmp: Path | None = None, errors: tuple[type[Exception], ...] = (OSError,)
) -> Iterator[None]:
    """A failed write of `path` (a full disk, a read-only or forbidden place: `errors`) as a
    UserError naming it and the cause, with the half-written `tmp` removed: the previous `path`
    stands untouched."""
    try:
        yield
    except errors as err:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        cause = getattr(err, "strerror", None) or str(err)
        raise UserError(f"cannot write {path} ({cause})", WRITE_FIX) from None


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temp file in the same directory, fsync, then rename over `path`: readers see the
    old file or the new one, never a torn one, whenever the process dies."""
    path = Path(path)
    with disk_errors(path):
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with disk_errors(path, Path(tmp)):
        try:
            with os.fdopen(fd, "wb") as f:
                os.fchmod(f.fileno(), FILE_MODE)  # mkstemp makes 0600; a user's files follow the umask
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:  # Ctrl-C too: no temp file is left behind
            Path(tmp).unlink(missing_ok=True)
            raise


def publish(tmp: Path, path: Path) -> None:
    """Rename a finished temp file over `path`, with the mode a new file gets (writers such as
    safetensors create 0600 files)."""
    with disk_errors(path, tmp):
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


def read_json(path: Path, what: str, fix: str):
    """A JSON file cpnas wrote (or a user edited): unreadable or not JSON is a UserError."""
    try:
        return json.loads(read_text(path, what, fix))
    except json.JSONDecodeError as err:
        raise UserError(f"{what} is not valid JSON ({err.msg} at line {err.lineno})", fix) from None


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
    # writer.lock alone: a run killed before it wrote its config; starting it again is safe (the lock
    # below refuses if that run is still alive)
    if run_dir.exists() and any(p.name != LOCK for p in run_dir.iterdir()):
        _refuse_if_written(run_dir)  # a live run there: say whose, as a second --resume is told
        raise UserError(
            f"run directory {run_dir} already exists and is not empty",
            f"resume it with --resume {run_dir}, or choose another --run-dir",
        )
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        lock_writer(run_dir)  # before config.yaml: two commands given one new --run-dir must not mix
    except OSError as err:
        raise UserError(
            f"cannot create run directory {run_dir} ({err.strerror})", "choose a writable --run-dir"
        ) from None
    return RunDir(run_dir)


def lock_writer(folder: Path) -> None:
    """Make this process the one writer of `folder` until `release_writer` (or its exit): a flock
    on folder/writer.lock, which holds our PID. Another live writer is a UserError naming its PID;
    the kernel drops the lock of a process however it died (kill -9 too), so a stale lock file is
    simply taken over. Readers (watch, export, evaluate, profile) never take it."""
    key = Path(folder).resolve()
    if key in _held:  # the CLI creates the directory, then the run loop starts in it
        return
    lock = open(key / LOCK, "a+b")  # noqa: SIM115 (held open for the whole run, closed by release_writer)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read(20).decode("ascii", "replace").strip() or "unknown"
        lock.close()
        raise UserError(
            f"{folder} is being written by another cpnas process (PID {holder})",
            "wait for it to end or stop it first; `cpnas watch` follows a live run without disturbing it",
        ) from None
    lock.truncate(0)
    lock.write(f"{os.getpid()}\n".encode())
    lock.flush()
    _held[key] = lock


def _refuse_if_written(folder: Path) -> None:
    """A UserError naming the PID of the process writing `folder` now, if one does: a look that
    takes writer.lock shared for an instant and gives it back (a writer's exclusive lock refuses it)."""
    try:
        lock = open(Path(folder) / LOCK, "rb")  # noqa: SIM115 (closed below, the lock with it)
    except OSError:
        return  # no lock file (or none we may read): no cpnas process is writing there
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = lock.read(20).decode("ascii", "replace").strip() or "unknown"
            raise UserError(
                f"{folder} is being written by another cpnas process (PID {holder})",
                "choose another --run-dir; `cpnas watch` follows a live run without disturbing it",
            ) from None


def release_writer(folder: Path) -> None:
    """End this process's writing of `folder` (the lock file stays: deleting it would race with
    the next writer taking it)."""
    lock = _held.pop(Path(folder).resolve(), None)
    if lock is not None:
        lock.close()


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
