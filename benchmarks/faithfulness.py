"""Does the native 1-bit engine compute what torch computes? A packed model's labels and logits on
every test image, from the native engine and from the torch execution of the same exact semantics,
both as `cpnas evaluate --engine native|torch` loads them (evaluation.load_networks). Prints JSON: images,
label differences (and the first few indices), the largest logit difference relative to the
logits' scale, both accuracies, the ISA path and the CPU.

    python benchmarks/faithfulness.py model.cpnas [--dataset fashion-mnist] [--batch-size 500]

`cpnas evaluate` reports the accuracies of either engine; this script pairs them image by image,
which the issue's "zero label differences" asks for. --batch-size 1 gives the C export's view
(one image at a time).
"""

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.bconv import cpu_model
from cpnas_cli import data as datasets
from cpnas_cli.engine.deploy.evaluation import load_networks
from cpnas_cli.engine.deploy.native import library


@torch.no_grad()
def compare(path: Path, dataset: str | None, batch_size: int) -> dict:
    cpu = torch.device("cpu")
    (info, native, _), (_, torch_run, _) = load_networks(path, "native", cpu), load_networks(path, "torch", cpu)
    data = datasets.load_dataset(dataset or info.dataset, info.extras.get("data_dir"), None)
    every = torch.arange(len(data.test_labels))
    batches = datasets.batches(data.test_images, data.test_labels, every, batch_size, shuffle_generator=None)
    labels_native, labels_torch, labels_true, worst = [], [], [], 0.0
    for x, y in batches:
        a, b = native["child"](x)[0], torch_run["child"].eval()(x)[0]
        worst = max(worst, float((a - b).abs().max() / b.abs().max().clamp(min=1e-30)))
        labels_native.append(a.argmax(1))
        labels_torch.append(b.argmax(1))
        labels_true.append(y)
    n, t, y = torch.cat(labels_native), torch.cat(labels_torch), torch.cat(labels_true)
    differ = (n != t).nonzero().flatten()
    return {
        "model": str(path),
        "dataset": dataset or info.dataset,
        "images": len(y),
        "batch_size": batch_size,
        "label_differences": len(differ),
        "first_differing_images": differ[:10].tolist(),
        "max_logit_difference_over_scale": worst,
        "top1_native": round(100.0 * float((n == y).double().mean()), 2),
        "top1_torch": round(100.0 * float((t == y).double().mean()), 2),
        "isa": library.isa(),
        "threads": torch.get_num_threads(),
        "cpu": cpu_model(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="a packed model.cpnas (exact semantics)")
    parser.add_argument("--dataset", default=None, help="default: the dataset it was trained on")
    parser.add_argument("--batch-size", type=int, default=500)
    args = parser.parse_args()
    print(json.dumps(compare(args.model, args.dataset, args.batch_size), indent=2))


if __name__ == "__main__":
    main()
