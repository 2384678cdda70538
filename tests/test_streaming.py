"""Folder datasets streamed from disk (data/image_files.py) against the in-memory path, on small
folders of real JPEG and PNG files: the same evaluation tensors, reproducible training batches
with any number of workers, the automatic choice, and damaged files ending in one line."""

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from cpnas_cli.cli.app import app
from cpnas_cli.data import Augment, batches, load_dataset
from cpnas_cli.data.folder import must_stream
from cpnas_cli.data.image_files import ImageFiles
from cpnas_cli.errors import UserError
from cpnas_cli.events import read_all
from tests.cli import assert_one_line_error, set_flags
from tests.genotypes import DARTS_V2

SIZE = 16
FLIP = Augment(flip=True)
runner = CliRunner()


def noise_image(rng: np.random.Generator, width: int, height: int, mode: str) -> Image.Image:
    image = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
    return image.convert(mode)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Two classes; train 6 images each, test 3: JPEG and PNG, RGB and grayscale, portrait and
    landscape, larger and smaller than SIZE."""
    root = tmp_path_factory.mktemp("folder")
    rng = np.random.default_rng(0)
    shapes = [(40, 30, "RGB", "jpg"), (30, 40, "RGB", "png"), (64, 64, "L", "png"), (12, 20, "RGB", "jpeg")]
    for split, count in (("train", 6), ("test", 3)):
        for name in ("cat", "dog"):
            (root / split / name).mkdir(parents=True)
            for i in range(count):
                width, height, mode, suffix = shapes[i % len(shapes)]
                noise_image(rng, width, height, mode).save(root / split / name / f"{i}.{suffix}")
    return root


def eval_batches(images, labels, batch_size=4):
    return list(batches(images, labels, torch.arange(len(labels)), batch_size, shuffle_generator=None))


@pytest.mark.parametrize("crop_fraction", [1.0, 0.875])
def test_streamed_evaluation_batches_equal_the_in_memory_ones(folder, crop_fraction):
    memory = load_dataset("folder", str(folder), SIZE, streaming=False, crop_fraction=crop_fraction)
    disk = load_dataset("folder", str(folder), SIZE, streaming=True, workers=0, crop_fraction=crop_fraction)
    assert not memory.streaming and disk.streaming
    assert isinstance(disk.train_images, ImageFiles) and disk.train_images.shape == (12, 3, SIZE, SIZE)
    assert (disk.in_channels, disk.image_size, disk.num_classes) == (3, SIZE, 2) and disk.classes == memory.classes
    assert torch.equal(disk.train_labels, memory.train_labels) and torch.equal(disk.test_labels, memory.test_labels)
    for split in ("train", "test"):
        ours = eval_batches(getattr(disk, f"{split}_images"), getattr(disk, f"{split}_labels"))
        theirs = eval_batches(getattr(memory, f"{split}_images"), getattr(memory, f"{split}_labels"))
        assert len(ours) == len(theirs) == (3 if split == "train" else 2)
        for (x, y), (x_mem, y_mem) in zip(ours, theirs, strict=True):
            assert x.dtype == torch.float32 and torch.equal(x, x_mem) and torch.equal(y, y_mem)


def test_a_centre_crop_fraction_crops_before_scaling(folder):
    whole = load_dataset("folder", str(folder), SIZE, streaming=False).test_images
    cropped = load_dataset("folder", str(folder), SIZE, streaming=False, crop_fraction=0.5).test_images
    assert whole.shape == cropped.shape and not torch.equal(whole, cropped)


def train_batches(files, labels, workers, *, aug=FLIP, seed=7, start=0):
    files.workers = workers
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(1))
    return list(batches(files, labels, order, 5, shuffle_generator=None, aug=aug, aug_seed=seed, start_batch=start))


def test_streamed_training_batches_are_reproducible_with_any_number_of_workers(folder):
    disk = load_dataset("folder", str(folder), SIZE, streaming=True)
    files, labels = disk.train_images, disk.train_labels
    assert isinstance(files, ImageFiles)
    rng_before = torch.get_rng_state()
    alone = train_batches(files, labels, 0)
    assert torch.equal(torch.get_rng_state(), rng_before)  # decoding in this process leaves its generator alone
    pooled = train_batches(files, labels, 2)
    assert [len(y) for _, y in alone] == [5, 5, 2]
    for (x, y), (x2, y2) in zip(alone, pooled, strict=True):
        assert torch.equal(x, x2) and torch.equal(y, y2)
        assert x.shape[1:] == (3, SIZE, SIZE) and x.min() >= -1 and x.max() <= 1
    resumed = train_batches(files, labels, 2, start=1)  # a resume from batch 1
    assert all(torch.equal(a[0], b[0]) for a, b in zip(alone[1:], resumed, strict=True))
    other_seed = train_batches(files, labels, 0, seed=8)
    assert not torch.equal(alone[0][0], other_seed[0][0])
    memory = load_dataset("folder", str(folder), SIZE, streaming=False)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(1))
    plain = list(batches(memory.train_images, labels, order, 5, shuffle_generator=None))
    assert not torch.equal(alone[0][0], plain[0][0])  # random resized crops of the full images


def test_device_side_augmentation_still_applies_to_streamed_batches(folder):
    disk = load_dataset("folder", str(folder), SIZE, streaming=True, workers=0)
    files, labels = disk.train_images, disk.train_labels
    plain = train_batches(files, labels, 0, aug=Augment(flip=True))
    cut = train_batches(files, labels, 0, aug=Augment(flip=True, cutout=6))
    for (x, _), (x_cut, _) in zip(plain, cut, strict=True):
        changed = x != x_cut
        assert changed.any() and torch.equal(x_cut[changed], torch.zeros_like(x_cut[changed]))  # cutout fills 0


def test_the_decoded_size_against_half_the_available_memory_decides():
    # 100 images of 224 px decode to 100 * 3 * 224 * 224 = 15,052,800 bytes.
    assert not must_stream(100, 224, 2 * 15_052_800)
    assert must_stream(100, 224, 2 * 15_052_800 - 2)
    assert not must_stream(100, 224, None)  # the system does not say: in memory, as before


@pytest.mark.parametrize(("available", "streams"), [(10**12, False), (10**4, True), (None, False)])
def test_auto_streams_when_the_decoded_set_would_not_fit(folder, monkeypatch, available, streams):
    monkeypatch.setattr("cpnas_cli.data.folder.available_memory", lambda: available)
    # 18 images * 3 * 16^2 = 13,824 bytes decoded
    assert load_dataset("folder", str(folder), SIZE).streaming is streams
    assert load_dataset("folder", str(folder), SIZE, streaming=False).streaming is False


def test_streaming_and_crops_are_for_folders_only():
    with pytest.raises(UserError, match="folder datasets only"):
        load_dataset("embedded", streaming=True)
    with pytest.raises(UserError, match="folder datasets only"):
        load_dataset("embedded", crop_fraction=0.875)
    assert not load_dataset("embedded", streaming="auto").streaming


def damaged_copy(folder, tmp_path):
    import shutil

    root = tmp_path / "damaged"
    shutil.copytree(folder, root)
    bad = root / "train" / "dog" / "2.png"
    good = bad.read_bytes()
    bad.write_bytes(good[: len(good) // 3])  # a truncated real PNG
    return root, bad


@pytest.mark.parametrize("workers", [0, 2])
def test_a_damaged_file_is_named_when_a_batch_reaches_it(folder, tmp_path, workers):
    root, bad = damaged_copy(folder, tmp_path)
    disk = load_dataset("folder", str(root), SIZE, streaming=True, workers=workers)  # not decoded yet
    for aug in (None, Augment(flip=True)):
        with pytest.raises(UserError, match=str(bad)) as err:
            list(batches(disk.train_images, disk.train_labels, torch.arange(12), 4, shuffle_generator=None,
                         aug=aug, aug_seed=0))  # fmt: skip
        assert "\n" not in str(err.value) and "Traceback" not in str(err.value)
    with pytest.raises(UserError, match=str(bad)):
        load_dataset("folder", str(root), SIZE, streaming=False)  # the in-memory path refuses at load


@pytest.mark.e2e
def test_train_on_a_streamed_folder_with_a_damaged_file_ends_in_one_line(folder, tmp_path):
    root, bad = damaged_copy(folder, tmp_path)
    genotype = tmp_path / "g.txt"
    genotype.write_text(DARTS_V2)
    # 2 of the 12 training images held out, 10 in 2 batches of 5: every file is decoded in epoch 1
    sets = ["data.streaming=true", "data.workers=2", "data.image_size=16", "train.val_images=2", "device=cpu"]
    sets += ["train.channels=4", "train.cells=3", "train.epochs=1", "train.batch_size=5", "train.auxiliary_weight=0"]
    args = ["train", str(genotype), "--dataset", "folder", "--data-dir", str(root), "--run-dir", str(tmp_path / "r")]
    result = runner.invoke(app, [*args, *set_flags(sets)])
    assert_one_line_error(result, f"cannot decode image {bad}")
    ended = [e for e in read_all(tmp_path / "r" / "events.jsonl") if e["kind"] == "status"][-1]
    assert ended["state"] == "failed" and str(bad) in ended["error"]  # the log says how the run ended
