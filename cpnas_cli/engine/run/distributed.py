"""Data-parallel runs under torchrun: which rank this process is, its process group, and the few
collectives that search, training and ablation need.

torchrun (or any launcher that sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT)
starts one process per rank; `joined()` sees WORLD_SIZE above 1 and joins the job. Everything
small (configuration digests, stop requests, metric sums, errors, step digests) travels in a gloo
group on the CPU, so the control plane is the same on every device and a dead peer shows at the
next batch; gradients and buffers travel in an NCCL group when the run's device is a GPU. Alone,
`joined()` gives SOLO, whose every method is the identity: a single process runs exactly the code
it ran before this module existed, with no process group.

Who does what:
- every rank builds the same networks from the same seed, takes its contiguous share of every
  global batch (`share`) and averages gradients weighted by the shares (`average_gradients`),
  so each step applies the gradient of the global batch's mean loss and the weights stay equal;
- validation and test batches are dealt out whole, round-robin (`deal`), and counts summed (`sum`),
  so every rank sees the same accuracies, those a single process measures;
- every random decision is a function of (seed, position) and of those sums, hence the same on
  every rank; `check_same` compares a digest of each step's events and tensors across ranks;
- rank 0 alone reads and writes the run directory (`on_main` runs a function there and hands its
  result, or its error, to the other ranks), and only it prints (the CLI quiets the others).

A rank that dies or hangs: gloo reports a closed connection at once and a silent peer after the
timeout (CPNAS_DIST_TIMEOUT seconds, default 300); every rank also beats a counter in the job's
store twice a second, so the survivors can name the ranks whose counter stopped (`lost_ranks`).
"""

import contextlib
import copy
import datetime
import hashlib
import itertools
import json
import os
import signal
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import torch
import torch.distributed as dist

from cpnas_cli.errors import ReportedElsewhere, UserError

from .device import resolve_device

TIMEOUT_ENV = "CPNAS_DIST_TIMEOUT"
DEFAULT_TIMEOUT = 300.0  # seconds a collective waits for a silent peer
BEAT = 0.5  # seconds between heartbeats
BEAT_KEY, POST_KEY = "cpnas/beat/", "cpnas/post/"
TIMING = frozenset({"t", "seconds", "eval_seconds", "child_seconds", "parent_seconds", "images_per_s", "elapsed"})


def launched() -> bool:
    """Started as one of several ranks (torchrun sets WORLD_SIZE)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def timeout() -> float:
    raw = os.environ.get(TIMEOUT_ENV, "")
    try:
        seconds = float(raw) if raw else DEFAULT_TIMEOUT
    except ValueError:
        seconds = -1.0
    if seconds <= 0:
        raise UserError(f"{TIMEOUT_ENV}={raw!r} is not a positive number of seconds", f"e.g. {TIMEOUT_ENV}=300")
    return seconds


@dataclass
class World:
    """This process's place in the job. SOLO (rank 0 of 1) is a process running alone."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    device: torch.device | None = None  # set by on_device under torchrun
    tensors: dist.ProcessGroup | None = None  # the group of gradients and buffers (None: the default gloo one)
    resume_hint: str = ""  # the command that resumes the run, for the line a lost rank ends with

    @property
    def main(self) -> bool:
        return self.rank == 0

    # --- data ---------------------------------------------------------------------------------

    def share(self, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> Iterator:
        """This rank's contiguous part of every global (x, y) batch: rows split as evenly as
        possible, the first ranks taking one more (a batch needs at least one image per rank)."""
        if self.size == 1:
            yield from batches
            return
        for x, y in batches:
            assert len(y) >= self.size, "a batch smaller than the world leaves a rank nothing to train on"
            yield x.tensor_split(self.size)[self.rank], y.tensor_split(self.size)[self.rank]

    def trainable(self, images: int, batch_size: int) -> int:
        """`images` cut so that no batch is smaller than the world: a pass's remainder of fewer
        images than ranks is left out (alone, nothing is)."""
        remainder = images % batch_size
        return images - remainder if self.size > remainder > 0 else images

    def deal(self, batches: Iterable) -> Iterator:
        """Whole batches dealt round-robin: batch k goes to rank k mod size. Each batch is what a
        single process evaluates, so batch statistics and counts stay those of one process."""
        return itertools.islice(batches, self.rank, None, self.size)

    # --- sums and agreement ---------------------------------------------------------------------

    def sum(self, values: dict, keep: frozenset[str] = TIMING) -> dict:
        """Numbers (nested dicts allowed) summed over the ranks; None stays None, ints stay ints,
        keys in `keep` (timings) stay this rank's."""
        if self.size == 1:
            return values
        paths = list(_number_paths(values, keep))
        if not paths:
            return values
        total = torch.tensor([_get(values, p) for p in paths], dtype=torch.float64)
        dist.all_reduce(total)
        out = copy.deepcopy(values)
        for path, value in zip(paths, total.tolist(), strict=True):
            _set(out, path, round(value) if isinstance(_get(values, path), int) else value)
        return out

    def mean(self, means: dict | None, images: int) -> tuple[int, dict | None]:
        """(images of all ranks, their means weighted by images) from this rank's means over its
        share (None, the same on every rank, stays None)."""
        if self.size == 1:
            return images, means
        summed = self.sum({"n": images, "sums": {k: v * images for k, v in (means or {}).items()}})
        n = summed["n"]
        return n, None if means is None else {k: v / max(n, 1) for k, v in summed["sums"].items()}

    def agree(self, flag: bool) -> bool:
        """True on every rank if it is True on any (a stop request: all ranks stop at one batch)."""
        if self.size == 1:
            return flag
        value = torch.tensor([float(flag)])
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())

    # --- gradients and buffers --------------------------------------------------------------------

    def average_gradients(self, params: Iterable[torch.Tensor], images: int) -> None:
        """Every rank's gradients weighted by its images, summed, divided by all images: the
        gradient of the global batch's mean loss. Which parameters have a gradient is agreed
        first (a few bytes a parameter): one that none has keeps None (ops a sampled architecture
        left out get no step, as DDP's unused parameters), and only the others travel."""
        if self.size == 1:
            return
        params = [p for p in params if p.requires_grad]
        flags = self.sum({"used": {str(i): int(p.grad is not None) for i, p in enumerate(params)}, "n": images})
        used = [p for i, p in enumerate(params) if flags["used"][str(i)]]
        if not used:
            return
        flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in used])
        flat.mul_(images)
        dist.all_reduce(flat, group=self.tensors)
        flat.div_(flags["n"])
        for p, chunk in zip(used, flat.split([p.numel() for p in used]), strict=True):
            if p.grad is None:
                p.grad = torch.empty_like(p)  # empty_like keeps the parameter's memory format
            p.grad.copy_(chunk.view(p.shape))

    def average_tensors(self, tensors: dict[str, torch.Tensor], images: int) -> dict[str, torch.Tensor]:
        """Named tensors (architecture gradients, DCP's tangent) averaged over the ranks, weighted by images."""
        if self.size == 1:
            return tensors
        names = list(tensors)
        parts = [tensors[k].reshape(-1) * images for k in names]
        flat = torch.cat([*parts, torch.tensor([float(images)], dtype=parts[0].dtype, device=parts[0].device)])
        dist.all_reduce(flat, group=self.tensors)
        chunks = (flat[:-1] / flat[-1]).split([t.numel() for t in parts])
        return {k: c.view(tensors[k].shape) for k, c in zip(names, chunks, strict=True)}

    def sync_buffers(self, modules: Iterable[torch.nn.Module]) -> None:
        """Rank 0's buffers (BatchNorm running statistics) on every rank. Ranks update them from
        their own shares; before anything reads or saves them, rank 0's are taken, so the
        running statistics follow rank 0's shares alone, exactly as after a resume."""
        if self.size == 1:
            return
        buffers = [b for m in modules for b in m.buffers()]
        for dtype in sorted({b.dtype for b in buffers}, key=str):  # one order on every rank
            same = [b for b in buffers if b.dtype == dtype]
            flat = torch.cat([b.reshape(-1) for b in same])
            dist.broadcast(flat, src=0, group=self.tensors)
            for b, chunk in zip(same, flat.split([b.numel() for b in same]), strict=True):
                b.copy_(chunk.view(b.shape))

    # --- objects, rank 0's work, errors ------------------------------------------------------------

    def gather(self, value) -> list:
        """Every rank's `value` (picklable), in rank order."""
        if self.size == 1:
            return [value]
        values: list = [None] * self.size
        dist.all_gather_object(values, value)
        return values

    def broadcast(self, value):
        """Rank 0's `value` on every rank."""
        if self.size == 1:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def on_main(self, work):
        """Run `work()` on rank 0 alone (it reads or writes the run directory); every rank gets
        its result, or raises its UserError (rank 0 prints it, the others exit quietly)."""
        if self.size == 1:
            return work()
        result, error = None, None
        if self.main:
            try:
                result = work()
            except UserError as err:
                error = err
        result, text = self.broadcast((result, None if error is None else str(error)))
        if error is not None:
            raise error
        if text is not None:
            raise ReportedElsewhere(text)
        return result

    def everywhere(self, error: UserError) -> UserError:
        """An error every rank meets alike: rank 0 reports it, the others exit quietly."""
        return error if self.main else ReportedElsewhere(str(error))

    @contextmanager
    def together(self) -> Iterator[None]:
        """Around work without collectives that may fail on some ranks (configuration, data,
        networks): if any rank met a UserError, every rank stops; rank 0 prints the first one
        (naming its rank if not its own), the others exit quietly."""
        if self.size == 1:
            yield
            return
        error: UserError | None = None
        try:
            yield
        except UserError as err:
            error = err
        errors = self.gather(None if error is None or isinstance(error, ReportedElsewhere) else str(error))
        first = next(((r, text) for r, text in enumerate(errors) if text is not None), None)
        if first is None:
            if error is not None:
                raise error
            return
        rank, text = first
        if not self.main:
            raise ReportedElsewhere(text)
        raise error if rank == 0 and error is not None else UserError(f"rank {rank}: {text}")

    def check_same(self, where: str, events: list[dict], tensors: dict[str, torch.Tensor]) -> None:
        """Every rank's step (its events without timings, its weights and optimizer state) must
        be rank 0's: a rank that decided otherwise stops the run with one line."""
        if self.size == 1:
            return
        digests = self.gather(step_digest(events, tensors))
        differ = [r for r, d in enumerate(digests) if d != digests[0]]
        if differ:
            raise self.everywhere(
                UserError(
                    f"rank {', '.join(map(str, differ))} left rank 0 at {where}: its decisions or weights differ",
                    "this is a bug in cpnas (report it); the last checkpoint stands and resumes alone or under "
                    "torchrun",
                )
            )

    # --- setting up ------------------------------------------------------------------------------------

    def on_device(self, config, batch: tuple[str, int] | None, extra=None) -> None:
        """Settle this rank's device (cuda:LOCAL_RANK unless --device names one) and what every rank
        must share: the same resolved configuration (and `extra`, e.g. an ablation's plan), a GPU
        where the device is one, and a batch (config key, size) the world size divides. A problem
        on any rank is one line from rank 0 and exit 2 on every rank."""
        if self.size == 1:
            return
        problem = None
        try:
            self.device = resolve_device(config.device, self.local_rank)
            if self.device.type == "cuda" and not dist.is_nccl_available():
                raise UserError(
                    "this torch has no NCCL, which data-parallel runs on GPUs need", "use --device cpu (gloo)"
                )
        except UserError as err:
            problem = str(err)
        answers = self.gather((problem, config_digest(config, extra)))
        problems = [(r, p) for r, (p, _) in enumerate(answers) if p is not None]
        if problems:
            rank, text = problems[0]
            raise self.everywhere(UserError(text if rank == 0 else f"rank {rank}: {text}"))
        differ = [r for r, (_, d) in enumerate(answers) if d != answers[0][1]]
        if differ:
            raise self.everywhere(
                UserError(
                    f"the configuration of rank {', '.join(map(str, differ))} differs from rank 0's",
                    "start every rank with the same command, preset files and --set values",
                )
            )
        if batch is not None and batch[1] % self.size:
            key, size = batch
            raise self.everywhere(
                UserError(
                    f"{key} {size} is not a multiple of the world size {self.size}",
                    f"give every rank an equal share: a batch size divisible by {self.size}, "
                    f"or a number of processes that divides {size}",
                )
            )
        assert self.device is not None
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
            group = dist.new_group(backend="nccl", timeout=datetime.timedelta(seconds=timeout()))
            assert isinstance(group, dist.ProcessGroup)  # every rank is a member
            self.tensors = group

    def unit_device(self, name: str) -> str:
        """The device of work this rank runs alone (an ablation's unit): its GPU by local rank."""
        if self.size > 1 and self.device is not None and self.device.type == "cuda" and name in ("auto", "cuda"):
            return f"cuda:{self.device.index}"
        return name

    # --- messages through the job's store (no collective: no timeout while others work) ----------------

    def post(self, key: str, text: str) -> None:
        """Leave `text` under `key` for rank 0 (a finished ablation unit's result)."""
        dist.distributed_c10d._get_default_store().set(f"{POST_KEY}{key}", text)

    def posted(self, keys: Iterable[str]) -> dict[str, str]:
        """The texts left so far under any of `keys`."""
        store = dist.distributed_c10d._get_default_store()
        return {k: store.get(f"{POST_KEY}{k}").decode() for k in keys if store.check([f"{POST_KEY}{k}"])}

    # --- lost ranks ---------------------------------------------------------------------------------

    def silent_ranks(self) -> set[int]:
        """The other ranks whose heartbeat stood still for a moment: ended, or hung."""
        return set() if self.size == 1 else set(lost_ranks(self.rank, self.size) or [])

    def lost(self, error: BaseException) -> UserError:
        """The one line a failed collective ends with: the ranks that stopped (their heartbeat
        stood still), or that no peer answered in time; printed by the lowest surviving rank."""
        silent = lost_ranks(self.rank, self.size)
        if silent is None:  # the store is gone: it lived in rank 0 (a launch without torchrun's agent)
            silent = [0] if self.rank else []
        survivors = [r for r in range(self.size) if r not in silent]
        hint = f"; resume with: {self.resume_hint}" if self.resume_hint else ""
        if silent:
            names = ", ".join(map(str, silent))
            line = UserError(
                f"rank {names} stopped (its process ended or hangs), so the job cannot go on",
                f"the run's last checkpoint stands{hint} (under torchrun with any number of processes, or alone)",
            )
        else:
            line = UserError(
                f"no answer from the other ranks within {timeout():g} s ({type(error).__name__})",
                f"check the other ranks' output; raise {TIMEOUT_ENV} for slow steps; the last checkpoint stands{hint}",
            )
        return line if self.rank == min(survivors) else ReportedElsewhere(str(line))


SOLO = World()


@contextmanager
def joined() -> Iterator[World]:
    """This process's World: under torchrun, the gloo group joined (and left at the end) with a
    heartbeat, and a failed collective turned into one line naming the lost rank; alone, SOLO."""
    if not launched():
        yield SOLO
        return
    env = {k: int(os.environ[k]) for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK") if k in os.environ}
    world = World(env["RANK"], env["WORLD_SIZE"], env.get("LOCAL_RANK", 0))
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=timeout()))
    heart = _Heartbeat(world.rank)
    try:
        yield world
    except RuntimeError as err:
        if not _collective_failure(err):
            raise
        _ignore_stop_signals()  # torchrun's SIGTERM follows a peer's death: the line comes first
        raise world.lost(err) from None
    finally:
        heart.stop()
        dist.destroy_process_group()


def _ignore_stop_signals() -> None:
    """This rank is stopping already: SIGTERM or SIGINT (the Ctrl-C handler is gone by now) would
    kill it before it prints why."""
    with contextlib.suppress(ValueError):  # signals belong to the main thread
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, signal.SIG_IGN)


def lost_ranks(me: int, size: int, wait: float = 4 * BEAT) -> list[int] | None:
    """The other ranks whose heartbeat did not move in `wait` seconds; None if the job's store
    cannot be reached (it lived in a process that is gone)."""
    try:
        store = dist.distributed_c10d._get_default_store()
        before = [store.add(f"{BEAT_KEY}{r}", 0) for r in range(size)]
        time.sleep(wait)
        after = [store.add(f"{BEAT_KEY}{r}", 0) for r in range(size)]
    except (RuntimeError, ValueError):
        return None
    return [r for r in range(size) if r != me and after[r] == before[r]]


class _Heartbeat:
    """A daemon thread adding 1 to this rank's counter in the job's store every BEAT seconds."""

    def __init__(self, rank: int):
        self.store = dist.distributed_c10d._get_default_store()
        self.key, self.done = f"{BEAT_KEY}{rank}", threading.Event()
        self.store.add(self.key, 1)
        self.thread = threading.Thread(target=self._beat, name="cpnas-heartbeat", daemon=True)
        self.thread.start()

    def _beat(self) -> None:
        while not self.done.wait(BEAT):
            try:
                self.store.add(self.key, 1)
            except (RuntimeError, ValueError):
                return  # the store went away with the job

    def stop(self) -> None:
        self.done.set()
        self.thread.join()


def _collective_failure(error: RuntimeError) -> bool:
    """An error of a collective: a peer gone (connection closed or reset) or silent (timeout)."""
    text = str(error).lower()
    return isinstance(error, dist.DistError) or any(w in text for w in ("gloo", "nccl", "connection", "timed out"))


def config_digest(config, extra=None) -> str:
    """A short hash of the resolved configuration (and `extra`), the same for equal ones on any machine."""
    text = json.dumps([asdict(config), extra], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def step_digest(events: list[dict], tensors: dict[str, torch.Tensor]) -> str:
    """A hash of a step's events without their timings and of every tensor's bytes."""
    digest = hashlib.sha256()
    plain = [{k: v for k, v in e.items() if k not in TIMING} for e in events]
    digest.update(json.dumps(plain, sort_keys=True).encode())
    for name in sorted(tensors):
        digest.update(name.encode())
        digest.update(tensors[name].detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def _number_paths(value, keep: frozenset[str], path: tuple = ()) -> Iterator[tuple]:
    """Paths (key tuples) to the int and float leaves of nested dicts, skipping keys in `keep`."""
    for key, item in value.items():
        if key in keep:
            continue
        if isinstance(item, dict):
            yield from _number_paths(item, keep, (*path, key))
        elif isinstance(item, (int, float)) and not isinstance(item, bool):
            yield (*path, key)


def _get(value: dict, path: tuple):
    for key in path:
        value = value[key]
    return value


def _set(value: dict, path: tuple, item) -> None:
    for key in path[:-1]:
        value = value[key]
    value[path[-1]] = item
