"""Tests of cpnas_cli.data: loaders on small files in the real on-disk formats, the search split,
normalization, batched augmentation and resumable batching. No network: downloads are faked."""

import gzip
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from cpnas_cli.data import (
    DATASETS,
    Augment,
    augment,
    batches,
    derive_seed,
    fashion_mnist,
    load_dataset,
    normalize,
    num_batches,
    search_split,
)
from cpnas_cli.errors import UserError

FASHION_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]


# ---------------------------------------------------------------- IDX / Fashion-MNIST


def idx_bytes(array: np.ndarray) -> bytes:
    """The official IDX encoding, written independently of the code under test."""
    return struct.pack(f">HBB{array.ndim}I", 0, 0x08, array.ndim, *array.shape) + array.astype(np.uint8).tobytes()


def write_fashion(directory: Path, n_train=6, n_test=4, compress=True, seed=0):
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    directory.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        data = idx_bytes(array)
        if compress:
            (directory / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (directory / name).write_bytes(data)
    return arrays


@pytest.fixture
def no_download(monkeypatch):
    """Make every torchvision download fail as it would offline; record the attempts."""
    attempts = []

    def offline(root, *args, **kwargs):
        attempts.append(root)
        raise OSError("Error downloading x.gz:\nTried http://example.invalid/, got:\nName or service not known")

    monkeypatch.setattr("torchvision.datasets.FashionMNIST", offline)
    monkeypatch.setattr("torchvision.datasets.CIFAR10", offline)
    return attempts


@pytest.mark.parametrize("compress", [True, False])
def test_fashion_mnist_loads_idx_values_exactly(tmp_path, compress):
    arrays = write_fashion(tmp_path, compress=compress)
    ds = load_dataset("fashion-mnist", str(tmp_path))
    assert ds.train_images.shape == (6, 1, 28, 28) and ds.test_images.shape == (4, 1, 28, 28)
    assert ds.train_images.dtype == torch.uint8 and ds.train_labels.dtype == torch.int64
    assert torch.equal(ds.train_images[:, 0], torch.from_numpy(arrays["train-images-idx3-ubyte"]))
    assert torch.equal(ds.test_images[:, 0], torch.from_numpy(arrays["t10k-images-idx3-ubyte"]))
    assert ds.train_labels.tolist() == arrays["train-labels-idx1-ubyte"].tolist()
    assert ds.test_labels.tolist() == arrays["t10k-labels-idx1-ubyte"].tolist()
    assert ds.classes == FASHION_CLASSES
    assert (ds.in_channels, ds.image_size, ds.num_classes) == (1, 28, 10)


def test_fashion_mnist_found_in_torchvision_layout(tmp_path):
    arrays = write_fashion(tmp_path / "FashionMNIST" / "raw")
    ds = load_dataset("fashion-mnist", str(tmp_path))
    assert ds.train_labels.tolist() == arrays["train-labels-idx1-ubyte"].tolist()


def test_fashion_mnist_default_is_system_dir(tmp_path, monkeypatch, no_download):
    arrays = write_fashion(tmp_path, n_train=3)
    monkeypatch.setattr(fashion_mnist, "SYSTEM_DIR", tmp_path)
    ds = load_dataset("fashion-mnist")
    assert ds.train_labels.tolist() == arrays["train-labels-idx1-ubyte"].tolist()


def test_fashion_mnist_missing_system_copy_names_the_package(tmp_path, monkeypatch, no_download):
    monkeypatch.setattr(fashion_mnist, "SYSTEM_DIR", tmp_path / "absent")
    with pytest.raises(UserError) as err:
        load_dataset("fashion-mnist")
    assert "train-images-idx3-ubyte.gz" in err.value.problem
    assert "dataset-fashion-mnist" in err.value.fix and "--data-dir" in err.value.fix
    assert no_download == []  # without --data-dir nothing is downloaded


def test_fashion_mnist_missing_and_offline(tmp_path, no_download):
    with pytest.raises(UserError) as err:
        load_dataset("fashion-mnist", str(tmp_path))
    assert str(tmp_path) in err.value.problem and "could not be downloaded" in err.value.problem
    assert "dataset-fashion-mnist" in err.value.fix and str(tmp_path) in err.value.fix
    assert "Name or service not known" in err.value.problem and "\n" not in str(err.value)  # one line
    assert no_download == [str(tmp_path)]


def test_truncated_idx_payload_names_the_file(tmp_path):
    write_fashion(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes())[:-100]))
    with pytest.raises(UserError, match=r"train-images-idx3-ubyte.gz.*truncated"):
        load_dataset("fashion-mnist", str(tmp_path))


def test_truncated_gzip_stream_names_the_file(tmp_path):
    write_fashion(tmp_path)
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(UserError, match=r"t10k-labels-idx1-ubyte.gz"):
        load_dataset("fashion-mnist", str(tmp_path))


def test_wrong_idx_magic(tmp_path):
    write_fashion(tmp_path)
    # An images file where the labels file should be: magic 0x0803 instead of 0x0801.
    images = gzip.decompress((tmp_path / "t10k-images-idx3-ubyte.gz").read_bytes())
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(images))
    with pytest.raises(UserError, match=r"t10k-labels-idx1-ubyte.gz.*magic"):
        load_dataset("fashion-mnist", str(tmp_path))


def test_idx_count_mismatch_and_bad_labels(tmp_path):
    write_fashion(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.zeros(5, np.uint8))))
    with pytest.raises(UserError, match=r"6 images but .* 5 labels"):
        load_dataset("fashion-mnist", str(tmp_path))
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.full(6, 10, np.uint8))))
    with pytest.raises(UserError, match=r"labels outside 0..9"):
        load_dataset("fashion-mnist", str(tmp_path))


def test_idx_wrong_image_size(tmp_path):
    write_fashion(tmp_path)
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.zeros((4, 32, 32), np.uint8))))
    with pytest.raises(UserError, match="32x32 images, expected 28x28"):
        load_dataset("fashion-mnist", str(tmp_path))


# ---------------------------------------------------------------- CIFAR-10

CIFAR_NAMES = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]


def write_cifar(data_dir: Path, per_batch=2, n_test=3, protocol=2):
    """torchvision's cifar-10-batches-py layout; returns the pickled (data, labels) per file."""
    batch_dir = data_dir / "cifar-10-batches-py"
    batch_dir.mkdir(parents=True)
    rng = np.random.default_rng(1)
    written = {}
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        n = n_test if name == "test_batch" else per_batch
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, n).tolist()
        with open(batch_dir / name, "wb") as file:
            pickle.dump({b"batch_label": name.encode(), b"data": data, b"labels": labels}, file, protocol=protocol)
        written[name] = (data, labels)
    with open(batch_dir / "batches.meta", "wb") as file:
        pickle.dump({b"label_names": CIFAR_NAMES, b"num_vis": 3072}, file, protocol=protocol)
    return written


@pytest.mark.parametrize("protocol", [2, 5])
def test_cifar10_loads_channels_first(tmp_path, protocol):
    written = write_cifar(tmp_path, protocol=protocol)
    ds = load_dataset("cifar10", str(tmp_path))
    assert ds.train_images.shape == (10, 3, 32, 32) and ds.test_images.shape == (3, 3, 32, 32)
    assert ds.classes == [n.decode() for n in CIFAR_NAMES]
    train_labels = [label for i in range(1, 6) for label in written[f"data_batch_{i}"][1]]
    assert ds.train_labels.tolist() == train_labels
    assert ds.test_labels.tolist() == written["test_batch"][1]
    # CIFAR's row layout: 1024 red values, then green, then blue, each row-major.
    data = written["data_batch_3"][0]
    image = ds.train_images[4]  # first image of batch 3
    for channel, row, col in [(0, 1, 2), (1, 5, 7), (2, 31, 0), (2, 0, 31)]:
        assert image[channel, row, col] == data[0, channel * 1024 + row * 32 + col]
    assert torch.equal(ds.test_images.reshape(3, -1), torch.from_numpy(written["test_batch"][0]))


def test_cifar10_known_pixel_pattern(tmp_path):
    write_cifar(tmp_path)
    batch_dir = tmp_path / "cifar-10-batches-py"
    data = np.zeros((1, 3072), np.uint8)
    data[0, 0 * 1024 + 1 * 32 + 2] = 200  # red, row 1, col 2
    data[0, 1 * 1024 + 5 * 32 + 7] = 100  # green, row 5, col 7
    data[0, 2 * 1024 + 31 * 32 + 0] = 50  # blue, row 31, col 0
    with open(batch_dir / "test_batch", "wb") as file:
        pickle.dump({b"data": data, b"labels": [7]}, file, protocol=2)
    image = load_dataset("cifar10", str(tmp_path)).test_images[0]
    expected = torch.zeros(3, 32, 32, dtype=torch.uint8)
    expected[0, 1, 2], expected[1, 5, 7], expected[2, 31, 0] = 200, 100, 50
    assert torch.equal(image, expected)


def test_cifar10_missing_and_offline(tmp_path, no_download):
    with pytest.raises(UserError) as err:
        load_dataset("cifar10", str(tmp_path))
    assert "CIFAR-10 not found under" in err.value.problem and "could not be downloaded" in err.value.problem
    assert "https://www.cs.toronto.edu/~kriz/cifar.html" in err.value.fix and str(tmp_path) in err.value.fix
    assert no_download == [str(tmp_path)]


def test_cifar10_downloads_when_missing(tmp_path, monkeypatch):
    monkeypatch.setattr("torchvision.datasets.CIFAR10", lambda root, **kwargs: write_cifar(Path(root)))
    assert len(load_dataset("cifar10", str(tmp_path)).train_images) == 10


def test_cifar10_needs_data_dir():
    with pytest.raises(UserError, match="--data-dir"):
        load_dataset("cifar10")


def test_cifar10_bad_batches(tmp_path):
    write_cifar(tmp_path)
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_2"
    with open(batch, "wb") as file:
        pickle.dump({b"data": np.zeros((2, 1024), np.uint8), b"labels": [0, 1]}, file)
    with pytest.raises(UserError, match=r"data_batch_2.*uint8 \[N, 3072\]"):
        load_dataset("cifar10", str(tmp_path))
    batch.write_bytes(b"\x80\x02}q\x00")  # a pickle cut short
    with pytest.raises(UserError, match="data_batch_2"):
        load_dataset("cifar10", str(tmp_path))


@pytest.mark.parametrize(
    "damaged, says",
    [
        (b"\x80\x04\x96" + struct.pack("<Q", 2**62) + b"abc.", "expected 4611686018427387904 bytes in a bytearray8"),
        (b"\x80\x04\x8e" + struct.pack("<Q", 2**40) + b"abc.", "expected 1099511627776 bytes in a bytes8"),
        (b"\x80\x02Nr" + struct.pack("<I", 2**31) + b".", "memo index 2147483648 at byte 3 is beyond the 2 opcodes"),
    ],
)
def test_cifar10_sizes_a_damaged_pickle_claims_are_checked_before_anything_is_allocated(tmp_path, damaged, says):
    write_cifar(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_1").write_bytes(damaged)
    with pytest.raises(UserError, match=f"data_batch_1 is not a readable CIFAR-10 python batch \\({says}"):
        load_dataset("cifar10", str(tmp_path))


class RunsCode:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return os.mkdir, (self.target,)


def test_cifar10_pickle_cannot_run_code(tmp_path):
    write_cifar(tmp_path)
    target = tmp_path / "created-by-pickle"
    with open(tmp_path / "cifar-10-batches-py" / "test_batch", "wb") as file:
        pickle.dump({b"data": RunsCode(str(target)), b"labels": []}, file)
    with pytest.raises(UserError, match="test_batch"):
        load_dataset("cifar10", str(tmp_path))
    assert not target.exists()


# ---------------------------------------------------------------- image folders

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def save(path: Path, image: Image.Image):
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def test_folder_shapes_labels_and_class_order(tmp_path):
    save(tmp_path / "train" / "b_zebra" / "1.png", Image.new("RGB", (40, 20), RED))
    save(tmp_path / "train" / "b_zebra" / "2.PNG", Image.new("L", (20, 20), 128))  # grayscale
    save(tmp_path / "train" / "a_ant" / "1.jpg", Image.new("RGB", (24, 30), BLUE))
    (tmp_path / "train" / "a_ant" / "notes.txt").write_text("not an image")
    save(tmp_path / "val" / "a_ant" / "x.bmp", Image.new("RGB", (8, 8), GREEN))
    save(tmp_path / "val" / "b_zebra" / "y.jpeg", Image.new("RGB", (9, 9), RED))
    ds = load_dataset("folder", str(tmp_path), image_size=8)
    assert ds.classes == ["a_ant", "b_zebra"]
    assert ds.train_images.shape == (3, 3, 8, 8) and ds.test_images.shape == (2, 3, 8, 8)
    assert ds.train_labels.tolist() == [0, 1, 1] and ds.test_labels.tolist() == [0, 1]
    pixels = ds.train_images.permute(0, 2, 3, 1).reshape(3, -1, 3).int()
    assert (pixels[0] - torch.tensor(BLUE)).abs().max() <= 8  # jpeg is lossy
    assert torch.equal(pixels[1], torch.tensor(RED).expand(64, 3))
    assert torch.equal(pixels[2], torch.full((64, 3), 128))  # gray replicated to RGB
    assert torch.equal(ds.test_images[0].permute(1, 2, 0).reshape(-1, 3).int(), torch.tensor(GREEN).expand(64, 3))
    assert (ds.in_channels, ds.image_size, ds.num_classes) == (3, 8, 2)


def test_folder_resizes_shorter_side_and_crops_centre(tmp_path):
    # 30 wide x 10 high: red | green | blue thirds; the centre 10x10 square is all green.
    stripes = Image.new("RGB", (30, 10), RED)
    stripes.paste(Image.new("RGB", (10, 10), GREEN), (10, 0))
    stripes.paste(Image.new("RGB", (10, 10), BLUE), (20, 0))
    save(tmp_path / "train" / "c" / "s.png", stripes)
    save(tmp_path / "test" / "c" / "s.png", stripes.resize((60, 20), Image.Resampling.NEAREST))
    ds = load_dataset("folder", str(tmp_path), image_size=10)
    expected = torch.tensor(GREEN, dtype=torch.uint8)[:, None, None].expand(3, 10, 10)
    assert torch.equal(ds.train_images[0], expected)
    # Downscaled 2x from 20 px high: PIL's filter reads across the crop edge, so only check the interior.
    assert torch.equal(ds.test_images[0, :, :, 1:-1], expected[:, :, 1:-1])
    assert load_dataset("folder", str(tmp_path)).image_size == 32  # the default


def test_folder_prefers_test_over_val(tmp_path):
    save(tmp_path / "train" / "c" / "a.png", Image.new("RGB", (4, 4), RED))
    save(tmp_path / "test" / "c" / "a.png", Image.new("RGB", (4, 4), BLUE))
    save(tmp_path / "val" / "c" / "a.png", Image.new("RGB", (4, 4), GREEN))
    ds = load_dataset("folder", str(tmp_path), image_size=4)
    assert ds.test_images[0, :, 0, 0].tolist() == list(BLUE)


def test_folder_mismatched_classes(tmp_path):
    save(tmp_path / "train" / "cat" / "a.png", Image.new("RGB", (4, 4)))
    save(tmp_path / "train" / "dog" / "a.png", Image.new("RGB", (4, 4)))
    save(tmp_path / "val" / "cat" / "a.png", Image.new("RGB", (4, 4)))
    save(tmp_path / "val" / "cow" / "a.png", Image.new("RGB", (4, 4)))
    with pytest.raises(UserError, match=r"different classes.*dog.*cow"):
        load_dataset("folder", str(tmp_path))


def test_folder_empty_class(tmp_path):
    save(tmp_path / "train" / "cat" / "a.png", Image.new("RGB", (4, 4)))
    (tmp_path / "train" / "dog").mkdir()
    (tmp_path / "train" / "dog" / "readme.txt").write_text("x")
    save(tmp_path / "val" / "cat" / "a.png", Image.new("RGB", (4, 4)))
    save(tmp_path / "val" / "dog" / "a.png", Image.new("RGB", (4, 4)))
    with pytest.raises(UserError, match="dog holds no"):
        load_dataset("folder", str(tmp_path))


def test_folder_corrupt_images_are_named(tmp_path):
    save(tmp_path / "train" / "cat" / "ok.png", Image.new("RGB", (4, 4)))
    save(tmp_path / "val" / "cat" / "ok.png", Image.new("RGB", (64, 64), RED))
    bad = tmp_path / "train" / "cat" / "bad.png"
    bad.write_bytes(b"this is not a png")
    with pytest.raises(UserError, match=r"bad.png"):
        load_dataset("folder", str(tmp_path))
    good = (tmp_path / "val" / "cat" / "ok.png").read_bytes()
    bad.write_bytes(good[: len(good) // 2])  # a truncated real PNG
    with pytest.raises(UserError, match=r"bad.png"):
        load_dataset("folder", str(tmp_path))


def test_folder_layout_errors(tmp_path):
    with pytest.raises(UserError, match="needs --data-dir"):
        load_dataset("folder")
    with pytest.raises(UserError, match="train does not exist"):
        load_dataset("folder", str(tmp_path))
    save(tmp_path / "train" / "cat" / "a.png", Image.new("RGB", (4, 4)))
    with pytest.raises(UserError, match="neither a test/ nor a val/"):
        load_dataset("folder", str(tmp_path))
    (tmp_path / "test").mkdir()
    with pytest.raises(UserError, match="no class subfolders"):
        load_dataset("folder", str(tmp_path))


# ---------------------------------------------------------------- embedded sample and registry


def test_embedded_sample_is_balanced_fashion_mnist():
    ds = load_dataset("embedded")
    assert ds.train_images.shape == (8000, 1, 28, 28) and ds.test_images.shape == (2000, 1, 28, 28)
    assert ds.train_labels.bincount(minlength=10).tolist() == [800] * 10
    assert ds.test_labels.bincount(minlength=10).tolist() == [200] * 10
    assert ds.classes == FASHION_CLASSES
    assert ds.train_images.float().std() > 50  # real pictures, not blank


def test_registry_rejects_bad_requests(tmp_path):
    assert DATASETS == ("embedded", "fashion-mnist", "cifar10", "folder")
    with pytest.raises(UserError) as err:
        load_dataset("mnist")
    assert "embedded, fashion-mnist, cifar10, folder" in err.value.fix
    with pytest.raises(UserError, match="does not exist"):
        load_dataset("cifar10", str(tmp_path / "typo"))
    with pytest.raises(UserError, match="28x28, not 32x32"):
        load_dataset("embedded", image_size=32)
    with pytest.raises(UserError, match="does not apply"):
        load_dataset("embedded", str(tmp_path))


# ---------------------------------------------------------------- search split, seeds, normalize


def test_search_split_disjoint_sized_and_seeded():
    weights, val = search_split(1000, 0.5, 0.3, seed=7)
    assert weights.dtype == torch.int64 and len(weights) == 500 and len(val) == 300
    assert len(set(weights.tolist()) | set(val.tolist())) == 800
    assert min(weights.min(), val.min()) >= 0 and max(weights.max(), val.max()) < 1000
    again = search_split(1000, 0.5, 0.3, seed=7)
    assert torch.equal(again[0], weights) and torch.equal(again[1], val)
    assert not torch.equal(search_split(1000, 0.5, 0.3, seed=8)[0], weights)
    full_weights, full_val = search_split(3, 0.5, 0.5, seed=0)  # both round 1.5 up: validation takes the rest
    assert (len(full_weights), len(full_val)) == (2, 1) and not set(full_weights.tolist()) & set(full_val.tolist())


@pytest.mark.parametrize("fractions", [(0.0, 0.5), (0.5, 0.0), (-0.1, 0.5), (0.7, 0.4), (float("nan"), 0.5)])
def test_search_split_bad_fractions(fractions):
    with pytest.raises(UserError, match="fractions"):
        search_split(100, *fractions, seed=0)


def test_derive_seed_is_stable_and_unambiguous():
    assert derive_seed("run", 3) == derive_seed("run", 3) == 6597418721685909735  # pinned across processes
    assert 0 <= derive_seed(1) < 2**63
    assert derive_seed("a", "bc") != derive_seed("ab", "c")
    assert derive_seed(1) != derive_seed("1")
    assert derive_seed(5, 0) != derive_seed(5, 1)
    with pytest.raises(TypeError):
        derive_seed(1.5)


def test_normalize_range():
    out = normalize(torch.tensor([0, 127, 255], dtype=torch.uint8))
    assert out.dtype == torch.float32
    assert out[0] == -1.0 and out[2] == 1.0 and -0.01 < out[1] < 0


# ---------------------------------------------------------------- augmentation


def random_batch(b=64, c=3, h=8, w=8, seed=0):
    # Values in [0.1, 1]: never 0, so zeros in the output can only come from padding or cutout.
    return torch.rand(b, c, h, w, generator=torch.Generator().manual_seed(seed)) * 0.9 + 0.1


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_augment_off_is_identity_copy():
    batch = random_batch()
    out = augment(batch, Augment(), gen())
    assert torch.equal(out, batch) and out.data_ptr() != batch.data_ptr()


def test_augment_keeps_shape_dtype_and_is_seeded():
    batch = random_batch(b=16, c=1, h=28, w=28)
    aug = Augment(crop_padding=4, flip=True, cutout=8)
    out = augment(batch, aug, gen(3))
    assert out.shape == batch.shape and out.dtype == batch.dtype and out.device == batch.device
    assert torch.equal(out, augment(batch, aug, gen(3)))
    assert not torch.equal(out, augment(batch, aug, gen(4)))


def test_flip_mirrors_some_images_and_keeps_the_rest():
    batch = random_batch()
    out = augment(batch, Augment(flip=True), gen())
    mirrored = [torch.equal(o, b.flip(2)) for o, b in zip(out, batch, strict=True)]
    kept = [torch.equal(o, b) for o, b in zip(out, batch, strict=True)]
    assert all(m or k for m, k in zip(mirrored, kept, strict=True))
    assert 10 < sum(mirrored) < 54  # about half of 64


def test_crop_is_a_shifted_window_of_the_zero_padded_image():
    batch, pad = random_batch(), 2
    out = augment(batch, Augment(crop_padding=pad), gen())
    padded = F.pad(batch, (pad,) * 4)
    offsets = []
    shifts = [(dy, dx) for dy in range(2 * pad + 1) for dx in range(2 * pad + 1)]
    for o, p in zip(out, padded, strict=True):
        windows = [(dy, dx) for dy, dx in shifts if torch.equal(o, p[:, dy : dy + 8, dx : dx + 8])]
        assert len(windows) == 1
        offsets.append(windows[0])
    assert len(set(offsets)) > 10  # offsets are drawn per image


def test_cutout_zeroes_exactly_one_clipped_square():
    batch, side = random_batch(h=10, w=10), 4
    out = augment(batch, Augment(cutout=side), gen())
    full_squares = 0
    for o, b in zip(out, batch, strict=True):
        zero = o == 0.0
        assert torch.equal(zero, zero[:1].expand_as(zero))  # same square in every channel
        rows, cols = zero[0].any(1).nonzero().flatten(), zero[0].any(0).nonzero().flatten()
        assert 1 <= len(rows) <= side and 1 <= len(cols) <= side
        assert rows.tolist() == list(range(rows[0], rows[0] + len(rows)))  # contiguous
        assert cols.tolist() == list(range(cols[0], cols[0] + len(cols)))
        assert int(zero[0].sum()) == len(rows) * len(cols)  # a filled rectangle
        assert torch.equal(o[~zero], b[~zero])  # everything else untouched
        full_squares += len(rows) == len(cols) == side
    assert full_squares > 0


def test_augment_rejects_negative_sizes():
    with pytest.raises(UserError):
        Augment(crop_padding=-1)


# ---------------------------------------------------------------- batching


def indexed_data(n=23):
    """Image i is filled with value i and labelled i, so batches reveal which indices they hold."""
    images = torch.arange(n, dtype=torch.uint8)[:, None, None, None].expand(n, 1, 4, 4).contiguous()
    return images, torch.arange(n)


def test_batches_cover_every_index_once():
    images, labels = indexed_data()
    indices = torch.arange(3, 23)
    out = list(batches(images, labels, indices, 6, shuffle_generator=gen(1)))
    assert [len(y) for _, y in out] == [6, 6, 6, 2] and len(out) == num_batches(20, 6, drop_last=False)
    seen = torch.cat([y for _, y in out])
    assert sorted(seen.tolist()) == indices.tolist() and seen.tolist() != indices.tolist()
    for x, y in out:
        assert torch.equal(x[:, 0, 0, 0], normalize(y.to(torch.uint8)))  # images travel with their labels
    in_order = torch.cat([y for _, y in batches(images, labels, indices, 6, shuffle_generator=None)])
    assert torch.equal(in_order, indices)


def test_batches_drop_last():
    images, labels = indexed_data()
    out = list(batches(images, labels, torch.arange(20), 6, shuffle_generator=None, drop_last=True))
    assert [len(y) for _, y in out] == [6, 6, 6] and num_batches(20, 6, drop_last=True) == 3


def test_batches_are_deterministic_per_seed():
    images, labels = indexed_data()

    def order(seed):
        return torch.cat([y for _, y in batches(images, labels, torch.arange(23), 5, shuffle_generator=gen(seed))])

    assert torch.equal(order(1), order(1)) and not torch.equal(order(1), order(2))


def test_start_batch_yields_the_exact_tail():
    images = torch.randint(0, 256, (50, 3, 8, 8), dtype=torch.uint8, generator=gen(0))
    labels, aug = torch.arange(50), Augment(crop_padding=2, flip=True, cutout=3)

    def run(start):
        indices = torch.arange(50)
        return list(
            batches(images, labels, indices, 8, shuffle_generator=gen(5), aug=aug, aug_seed=9, start_batch=start)
        )

    full, tail = run(0), run(4)
    assert len(tail) == len(full) - 4 == 3
    for (x_full, y_full), (x_tail, y_tail) in zip(full[4:], tail, strict=True):
        assert torch.equal(x_full, x_tail) and torch.equal(y_full, y_tail)
    assert not torch.equal(full[0][0], normalize(images[full[0][1]]))  # augmentation did act


def test_batches_land_on_the_device():
    images, labels = indexed_data()
    devices = ["cpu", "meta"] + (["cuda"] if torch.cuda.is_available() else [])
    aug = Augment(crop_padding=1, flip=True, cutout=2)
    for device in devices:
        x, y = next(
            batches(images, labels, torch.arange(23), 4, shuffle_generator=None, device=device, aug=aug, aug_seed=0)
        )
        assert x.device.type == device and y.device.type == device
        assert x.dtype == torch.float32 and y.dtype == torch.int64 and x.shape == (4, 1, 4, 4)
