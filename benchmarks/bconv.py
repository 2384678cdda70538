"""One 1-bit conv on the native engine against torch's float32 conv of the same shape (oneDNN,
channels_last), at 1 and 2 threads, batch 1 and 64. Prints JSON: per shape the median times,
the ratios, the ISA path and the CPU.

    python benchmarks/bconv.py [--quick] [--threads 1,2] [--batch 1,64] [--seconds 1] [--ops 1x1,3x3]
    CPNAS_NATIVE_ISA=avx2 python benchmarks/bconv.py     # force a path
    CPNAS_NATIVE_ISA=avx2 ONEDNN_MAX_CPU_ISA=AVX2 python benchmarks/bconv.py   # an AVX2 machine, both sides

native_ms: float NHWC in -> float out: binarize + pack the input, XOR-popcount, the epilogue
(beta and a folded BatchNorm), into a reused output buffer (as a network executor runs it).
bits_ms: the same conv fed packed bits (a previous layer's output). chained_ms: native_ms per layer
when 8 such calls run as one library.Chain (one C call), as NativeNetwork runs consecutive 1-bit
convs: the layer without the Python/ctypes cost of a call (about 3 us). native_alloc_ms: native_ms
with a fresh output tensor per call, as torch's conv allocates its own: on a VM a fresh 64 MB
tensor costs tens of ms of page faults, paid by float_ms too. bits_to_bits_ms: bits in, bits out
(the sign of the epilogue), as inside a chain of 1-bit convs.
Times are medians of the rounds; *_min ratios use the fastest call instead, the better figure
when other processes share the CPU (load averages are recorded): a call that lost its core to
another process for a scheduler slice (several ms) says nothing about either engine.
All are measured interleaved: each round calls each once, back to back, so a noisy neighbour
slows all of them alike; rounds fill a time budget per shape.
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cpnas_cli.engine.deploy.native import library


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def shapes(quick: bool) -> list[dict]:
    """(name, channels, spatial size, kernel, padding, dilation, groups) of the measured convs."""
    found = []
    for size in (32, 16, 8):
        for c in (64, 256) if quick else (64, 128, 256, 448):
            found.append({"op": "1x1", "c": c, "size": size, "k": 1, "pad": 0, "dil": 1, "groups": 1})
    for size in (32, 16, 8):
        for c in (64, 256) if quick else (64, 128, 256):
            found.append({"op": "3x3", "c": c, "size": size, "k": 3, "pad": 1, "dil": 1, "groups": 1})
    for c in (64, 256):
        found.append({"op": "3x3 grouped 16", "c": c, "size": 16, "k": 3, "pad": 1, "dil": 1, "groups": c // 16})
        found.append({"op": "3x3 depth-wise", "c": c, "size": 16, "k": 3, "pad": 1, "dil": 1, "groups": c})
        found.append({"op": "5x5 dil 2 depth-wise", "c": c, "size": 16, "k": 5, "pad": 4, "dil": 2, "groups": c})
    return found


def timed_once(run) -> float:
    start = time.perf_counter()
    run()
    return (time.perf_counter() - start) * 1e3


def measure(shape: dict, batch: int, budget_s: float, min_rounds: int = 5, max_rounds: int = 300) -> dict:
    budget_s *= 1e3  # timed_once is in ms
    c, size, k, groups = shape["c"], shape["size"], shape["k"], shape["groups"]
    geometry = {"stride": 1, "padding": shape["pad"], "dilation": shape["dil"], "groups": groups}
    x = torch.randn(batch, c, size, size).contiguous(memory_format=torch.channels_last)
    weight = torch.randn(c, c // groups, k, k)
    weight_cl = weight.contiguous(memory_format=torch.channels_last)
    plan = library.BinaryConvPlan(weight, torch.rand(c), bn_scale=torch.rand(c), bn_shift=torch.randn(c), **geometry)
    bits = library.pack_activations(x)
    out = plan(x)
    chain, chained_calls = chained(plan, x, out, batch, size)
    to_bits = library.BinaryConvPlan(
        weight, torch.rand(c), bn_scale=torch.rand(c), bn_shift=torch.randn(c), output="bits", **geometry
    )
    bits_out = to_bits(bits)
    runs = {
        "float_ms": lambda: F.conv2d(x, weight_cl, None, **geometry),
        "native_ms": lambda: plan(x, out=out),
        "bits_ms": lambda: plan(bits, out=out),
        "chained_ms": chain.run,
        "native_alloc_ms": lambda: plan(x),
        "bits_to_bits_ms": lambda: to_bits(bits, out=bits_out),
    }
    for run in runs.values():  # warm-up
        run()
    rounds = min(max_rounds, max(min_rounds, int(budget_s / sum(timed_once(run) for run in runs.values()))))
    samples: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):  # one call of each per round: a disturbance hits all of them alike
        for name, run in runs.items():
            samples[name].append(timed_once(run))
    samples["chained_ms"] = [t / chained_calls for t in samples["chained_ms"]]
    times = {name: round(statistics.median(values), 4) for name, values in samples.items()}
    fastest = {name: min(values) for name, values in samples.items()}
    return {
        **shape,
        "batch": batch,
        "rounds": rounds,
        **times,
        "ratio": round(times["float_ms"] / times["native_ms"], 2),
        "ratio_bits_in": round(times["float_ms"] / times["bits_ms"], 2),
        "ratio_alloc": round(times["float_ms"] / times["native_alloc_ms"], 2),
        "ratio_bits_to_bits": round(times["float_ms"] / times["bits_to_bits_ms"], 2),
        "ratio_chained": round(times["float_ms"] / times["chained_ms"], 2),
        "kind": plan.kind,
        "ratio_min": round(fastest["float_ms"] / fastest["native_ms"], 2),
        "ratio_bits_in_min": round(fastest["float_ms"] / fastest["bits_ms"], 2),
    }


def chained(plan, x, out, batch: int, size: int, calls: int = 8):
    """A Chain running the layer `calls` times on the same input and output (and workspace)."""
    chain = library.Chain([plan.bound(batch, size, size) for _ in range(calls)])
    workspace = torch.empty(batch, size, size, -(-plan.in_c // 64), dtype=torch.int64)
    for call in chain.calls:
        call.x, call.out = x.data_ptr(), out.data_ptr()
        if plan.packs_input_first:
            call.x_bits = workspace.data_ptr()
    chain.workspace = workspace  # type: ignore[attr-defined]  # alive as long as the chain
    return chain, calls


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer channel counts")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--batch", default="1,64")
    parser.add_argument("--seconds", type=float, default=1.0, help="time budget per shape (at least 5 rounds)")
    parser.add_argument("--ops", default="", help="only these ops, comma-separated (e.g. 1x1,3x3)")
    args = parser.parse_args()
    if not library.available():
        print(json.dumps({"error": library.why_unavailable()}))
        return 2
    torch.manual_seed(0)
    results, load_before = [], os.getloadavg()
    for threads in map(int, args.threads.split(",")):
        torch.set_num_threads(threads)
        for batch in map(int, args.batch.split(",")):
            for shape in shapes(args.quick):
                if args.ops and shape["op"] not in args.ops.split(","):
                    continue
                results.append({"threads": threads, **measure(shape, batch, args.seconds)})
                print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    print(
        json.dumps(
            {
                "cpu": cpu_model(),
                "isa": library.isa(),
                "torch": torch.__version__,
                "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA", "default"),
                "load_average_before_after": [load_before, os.getloadavg()],
                "results": results,
            },
            indent=1,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
