"""The GPU check of issue 18: cpnas on one CUDA GPU, its figures as JSON (benchmarks/gpu_check.sh
installs the project and runs the CUDA tests first, then this).

    python benchmarks/gpu_check.py --out gpu_check.json [--samples 5] [--skip-cpu]

1. `quick`: `cpnas search --device cuda` and `cpnas train <its genotype> --device cuda` as
   subprocesses (wall times, accuracies), and `cpnas search --device cpu` with the same seed:
   is the genotype the same (float sums differ between the devices, so it need not be)?
2. `cifar10` search on synthetic CIFAR-10 written in the real on-disk format (the pickled
   batches of tests/test_data.py's writer, 50000 + 10000 random images): the first `--samples`
   samples with search.amp=true and with search.amp=false, in this process: seconds per sample,
   training images/s (Child and Parent on the same images count once), peak GPU memory.
3. One epoch of `cpnas train --preset cifar10 --size small` on the same data (AMP as `auto`).
4. Projections: the paper's full search (105 samples) and evaluation (600 epochs) on this GPU,
   beside the paper's search cost of 0.1 GPU-days (Tab. 1).

Random images cannot be learned, so the accuracies of parts 2 and 3 mean nothing; the times do.
"""

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests/ (the CIFAR writer) and, uninstalled, cpnas_cli

from cpnas_cli.config import dump_yaml, load_config  # noqa: E402
from cpnas_cli.engine.run.interrupt import Interrupted, StopFlag  # noqa: E402
from cpnas_cli.engine.search.runner import Search  # noqa: E402
from cpnas_cli.engine.train.trainer import Trainer  # noqa: E402
from cpnas_cli.events import read_all  # noqa: E402
from cpnas_cli.runs import new_run_dir  # noqa: E402
from cpnas_cli.space import genotype as genotypes  # noqa: E402
from tests.genotypes import DARTS_V2  # noqa: E402
from tests.test_data import write_cifar  # noqa: E402

PAPER_SEARCH_SAMPLES = 105  # 3 x (8 + 7 + ... + 2), Sec. 3.1
PAPER_EPOCHS = 600  # CIFAR-10 evaluation, Sec. 3.1
PAPER_SEARCH_GPU_DAYS = 0.1  # Tab. 1, CP-NAS on CIFAR-10


def cli(args: list[str], timeout: float) -> tuple[float, subprocess.CompletedProcess]:
    """`cpnas ARGS` in a subprocess: (wall seconds, the finished process)."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "cpnas_cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))},
    )
    if done.returncode != 0:
        raise RuntimeError(f"cpnas {' '.join(args)} failed ({done.returncode}): {done.stderr[-2000:]}")
    return time.perf_counter() - started, done


def cells(run_dir: Path) -> dict:
    data = json.loads((run_dir / "genotype.json").read_text())
    return {k: data[k] for k in ("normal", "reduce")}


def quick(work: Path, skip_cpu: bool) -> dict:
    out: dict = {}
    seconds, _ = cli(["search", "--device", "cuda", "--seed", "0", "--run-dir", str(work / "q-cuda")], 1200)
    out["search_cuda_wall_s"] = round(seconds, 1)
    seconds, _ = cli(["train", str(work / "q-cuda" / "genotype.json"), "--device", "cuda", "--seed", "0",
                      "--run-dir", str(work / "q-train")], 1200)  # fmt: skip
    finished = [e for e in read_all(work / "q-train" / "events.jsonl") if e.get("state") == "finished"][-1]
    out["train_cuda_wall_s"] = round(seconds, 1)
    out["train_cuda_result"] = {k: v for k, v in finished.items() if k not in ("kind", "t", "state")}
    if not skip_cpu:
        seconds, _ = cli(["search", "--device", "cpu", "--seed", "0", "--run-dir", str(work / "q-cpu")], 1800)
        out["search_cpu_wall_s"] = round(seconds, 1)
        gpu, cpu = cells(work / "q-cuda"), cells(work / "q-cpu")
        out["genotype_same_as_cpu"] = gpu == cpu
        out["genotype_edges_differing"] = sum(
            a != b for kind in ("normal", "reduce") for a, b in zip(gpu[kind], cpu[kind], strict=True)
        )
    return out


def search_samples(data_dir: Path, work: Path, amp: bool, samples: int) -> dict:
    """The first `samples` samples of the paper's CIFAR-10 search, stopped as Ctrl-C stops it."""
    config = load_config("cifar10", sets=[f"data.data_dir={data_dir}", "device=cuda", f"search.amp={str(amp).lower()}"])
    run = new_run_dir("gpu-check", work / f"search-amp-{amp}")
    run.config.write_text(dump_yaml(config))
    stop, seen = StopFlag(), []

    def report(event: dict) -> None:
        if event["kind"] == "sample":
            seen.append(event)
            if len(seen) >= samples:
                stop.set()

    torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    search = Search(config, report=report, stop=stop)
    search.begin(run)
    with contextlib.suppress(Interrupted):  # the stop after the last sample asked for
        search.run()
    wall = time.perf_counter() - started
    later = seen[1:] or seen  # the first sample also times cuDNN's autotuning of every conv shape it meets
    return {
        "amp": amp,
        "dtype": str(search.strategy.model.precision.dtype),
        "samples": len(seen),
        "wall_s": round(wall, 1),
        "seconds_per_sample_first": seen[0]["seconds"],
        "seconds_per_sample_median_after_first": statistics.median(e["seconds"] for e in later),
        "train_images_per_s": statistics.median(e["images_per_s"] for e in later),
        "eval_seconds_per_sample": statistics.median(e["eval_seconds"] for e in later),
        "images_per_sample": seen[0]["images"],
        "peak_gpu_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2),
    }


def train_epoch(data_dir: Path, work: Path) -> dict:
    config = load_config(
        "cifar10", sets=[f"data.data_dir={data_dir}", "device=cuda", "train.size=small", "train.epochs=1"]
    )
    run = new_run_dir("gpu-check", work / "train")
    run.config.write_text(dump_yaml(config))
    torch.cuda.reset_peak_memory_stats()
    trainer = Trainer(config, genotypes.from_darts(DARTS_V2))
    trainer.begin(run)
    trainer.run()
    (epoch,) = [e for e in read_all(run.events) if e["kind"] == "epoch"]
    return {
        "genotype": "DARTS_V2 (tests/genotypes.py)",
        "channels": trainer.spec.channels,
        "amp_dtype": str(trainer.pair.precision.dtype),
        "epoch_seconds": epoch["seconds"],
        "eval_seconds": epoch["eval_seconds"],
        "train_images": epoch["images"],
        "images_per_s": epoch["images_per_s"],
        "peak_gpu_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2),
    }


def projections(searches: list[dict], epoch: dict) -> dict:
    fastest = min(searches, key=lambda s: s["seconds_per_sample_median_after_first"])
    search_hours = PAPER_SEARCH_SAMPLES * fastest["seconds_per_sample_median_after_first"] / 3600
    return {
        "full_search_hours": round(search_hours, 2),
        "full_search_gpu_days": round(search_hours / 24, 3),
        "full_search_amp": fastest["amp"],
        "paper_search_gpu_days": PAPER_SEARCH_GPU_DAYS,
        "evaluation_600_epochs_hours": round(PAPER_EPOCHS * epoch["epoch_seconds"] / 3600, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("gpu_check.json"))
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--skip-cpu", action="store_true", help="no CPU quick search (no genotype comparison)")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("gpu_check: no CUDA GPU visible to torch")
    result: dict = {
        "gpu": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "bf16": torch.cuda.is_bf16_supported(),
        "cpu_threads": torch.get_num_threads(),
    }

    def part(name: str, measure) -> None:
        """One figure; a failure is recorded and the next part still runs. Saved after each."""
        try:
            result[name] = measure()
        except Exception as err:  # whatever broke, the other figures are still wanted
            result[name] = {"error": f"{type(err).__name__}: {err}"}
        args.out.write_text(json.dumps(result, indent=2) + "\n")

    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        part("quick", lambda: quick(work, args.skip_cpu))
        data_dir = work / "cifar"
        write_cifar(data_dir, per_batch=10000, n_test=10000)  # the real pickled layout, random pixels
        for amp in (True, False):
            part(
                f"cifar10_search_amp_{str(amp).lower()}",
                lambda amp=amp: search_samples(data_dir, work, amp, args.samples),
            )
        part("cifar10_train_small_1_epoch", lambda: train_epoch(data_dir, work))
        searches = [result[f"cifar10_search_amp_{a}"] for a in ("true", "false")]
        part(
            "projection",
            lambda: projections([s for s in searches if "error" not in s], result["cifar10_train_small_1_epoch"]),
        )
    print(json.dumps(result, indent=2))
    failed = [name for name, value in result.items() if isinstance(value, dict) and "error" in value]
    sys.exit(f"gpu_check: failed parts: {', '.join(failed)}" if failed else 0)


if __name__ == "__main__":
    main()
