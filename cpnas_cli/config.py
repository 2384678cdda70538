"""Configuration: dataclass defaults <- YAML preset <- command-line flags <- `--set key=value`.

The dataclass defaults are the paper's CIFAR-10 values (Sec. 3.1); presets change what differs.
Every key is checked: unknown keys and values of the wrong type are rejected with a UserError
naming the key, so a typo never silently falls back to a default. Torch-free.
"""

import dataclasses
import difflib
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .errors import UserError
from .runs import read_text
from .space.cells import OPS

STRATEGIES = ("cp", "bnas", "random", "abandit", "pc-darts", "dcp")  # engine/search/strategies/ implements each
STRATEGY_KEY, BETA_P_KEY = "search.strategy", "search.beta_p"  # the keys flags and ablations set
PRESET_DIRS = (Path(__file__).parent / "presets", Path(__file__).parent.parent / "presets")
# Keys added after runs were started, with the behaviour of the code before them: a run whose
# config.yaml lacks one resumes as it began, not with the newer default.
ADDED_LATER = {
    "data.streaming": False,
    "search.imagenet_stem": False,
    "search.amp": False,
    "train.amp": False,
    "train.val_images": 0,
}


@dataclass
class DataConfig:
    dataset: str = "cifar10"  # embedded | fashion-mnist | cifar10 | folder
    data_dir: str | None = None  # where the dataset lives (fashion-mnist: Debian's path if unset)
    image_size: int | None = None  # folder datasets: decoded side length (default 32)
    crop_fraction: float = (
        1.0  # folder datasets: the centre square of this share of the shorter side (0.875: 256 -> 224)
    )
    streaming: bool | str = "auto"  # folder datasets: true decodes per batch from disk, false into memory first,
    # auto streams when the decoded set would take more than half the available memory (docs/data.md)
    workers: int | None = None  # streamed folder datasets: decoding processes; null: one per usable core, at most 16
    train_fraction: float = 0.5  # search: share of the training set that trains weights (Sec. 3.1)
    val_fraction: float = 0.05  # search: share that scores architectures (A_C, A_P)


@dataclass
class SearchConfig:
    strategy: str = (
        "cp"  # cp | bnas (beta_P = 0) | random | abandit (docs/strategies.md) | pc-darts | dcp (docs/differentiable.md)
    )
    ops: list[str] = field(default_factory=lambda: list(OPS))  # candidate ops; K starts at len(ops)
    rounds: int = 3  # T: rounds per K, every op scored once per round (Alg. 1)
    beta_p: float = 2.0  # beta_P of Eq. 1; 0 = BNAS† (Child accuracy alone)
    epochs_per_sample: float = 1.0  # passes over the search-train split per sampled architecture
    batch_size: int = 512
    eval_batch_size: int = 1000  # validation batches (BN uses batch statistics under weight sharing)
    optimizer: str = "sgd"  # sgd (the paper's) | adam (moves 1-bit latent weights far faster on short budgets)
    lr: float = 0.025  # cosine-annealed per sample to lr_min over the whole search
    lr_min: float = 0.0
    momentum: float = 0.9
    weight_decay: float = 5e-4
    grad_clip: float = 5.0  # not in the paper's search recipe; DARTS search uses 5
    amp: bool | str = (
        "auto"  # CUDA mixed precision for the full-precision parts (cp, bnas, random, abandit); auto: on for CUDA
    )
    kernel_weight: float = 0.0  # Eq. 3's kernel term on the Child during search (sampling strategies); 0 = CE only
    center_weight: float = 0.0  # lambda of Eq. 3's centre term during search; 0 = off (the paper leaves both open)
    crop_padding: int = 4  # random-crop augmentation (DARTS): zero padding in pixels; 0 = off
    flip: bool = True  # random horizontal flips (DARTS)
    channels: int = 16  # C of the first cells
    cells: int = 6
    nodes: int = 4  # intermediate nodes per cell (4 -> 14 edges)
    reductions: list[int] | None = field(default_factory=lambda: [1, 3])  # None: at 1/3 and 2/3
    stem_stride: int = 1  # 2 halves the input once in the stem: a CPU-budget knob
    imagenet_stem: bool | str = "auto"  # three stride-2 convs, 224 -> 28 (Sec. 3.1); auto: for images of 112 px or more
    quantizer: str = "ste"  # ste (clipped identity) | approx (Bi-Real ApproxSign)
    parent_activation: str = "relu"  # relu | identity where the Child binarizes
    shortcut: bool = False  # a real-valued shortcut around every conv of an op (Bi-Real; not in the paper)
    group_width: int = 1  # channels per group of the k x k convs of sep/dil ops; 1 = depth-wise (the paper)
    real_depthwise: bool = False  # CP-NAS*: real-valued activations into the k x k conv of every sep/dil op (Tab. 2)
    real_preprocess: bool = False  # CP-NAS**: real-valued activations into the cells' preprocessing convs too
    genotype: str = "darts"  # darts: two strongest edges per node | all: every non-zero edge
    bandit_lambda: float = 0.7  # abandit: weight of the newest reward in the moving average (book Eq. 4.11)
    bandit_reward: str = "child"  # abandit: child (A_C) | cp (Eq. 1 with beta_p)
    # pc-darts and dcp (differentiable; docs/differentiable.md). Defaults: PC-DARTS's CIFAR-10 search.
    diff_epochs: float = 50.0  # passes over the search-train split (fractions allowed); dcp: per network
    diff_warmup_epochs: float = 15.0  # architecture frozen before this point, weights train from the start
    diff_phase_epochs: float = 1.0  # epochs per step (one alpha event and checkpoint); dcp's Parent/Child turn
    diff_batch_size: int = 256  # one weight batch and one architecture batch per iteration
    diff_optimizer: str = "sgd"  # supernet weights (dcp: the Parent's): sgd | adam; momentum, grad_clip shared
    diff_lr: float = 0.1  # cosine-annealed per batch to diff_lr_min
    diff_lr_min: float = 0.0
    diff_weight_decay: float = 3e-4
    arch_lr: float = 6e-4  # Adam on the architecture logits (alpha, beta)
    arch_betas: list[float] = field(default_factory=lambda: [0.5, 0.999])
    arch_weight_decay: float = 1e-3
    pc_k: int = 4  # partial channels: 1/K of an edge's channels pass the mixed op (1 = DARTS); dcp too
    pc_edge_norm: bool = True  # pc-darts: edge normalisation, softmax(beta) over a node's inputs
    dcp_lambda: float = 5e-3  # weight of the tangent penalty D (Eq. 4.32); 0 drops it
    dcp_mu: float = 0.2  # weight of the reconstruction error L_R (Eqs. 4.23, 4.32); 0 drops it
    dcp_hessian: str = "ggn"  # Hessian in Eq. 4.33: ggn (rank-1 Gauss-Newton/Fisher) | exact (double backprop)
    dcp_child_lr: float = 1e-3  # Adam on the Child's latent weights and scales (no weight decay)
    dcp_child_ce: float = 0.0  # weight of a label cross-entropy added to the Child's weight loss (not in Eq. 4.32)
    dcp_scales: str = "learned"  # beta of Eq. 4.22: learned (init mean |W|) | mean (mean |W| each step)
    dcp_decouple: bool = True  # back-tracking correction of the architecture (Eqs. 4.50-4.53)
    dcp_tau: int = 4  # back-track the ops ranked below tau by ||w_m||^2 (Eq. 4.53)
    dcp_psi_lr: float = 1.0  # eta_psi: step size of the learned coupling psi (Eq. 4.51)
    dcp_psi_init: float = 0.0  # psi at the start; 0 starts as plain DARTS updates


@dataclass
class TrainConfig:
    """Training the evaluation network of a genotype (Sec. 3.1) with the kernel-level CP loss (Eqs. 3-4)."""

    size: str = "small"  # small | medium | large: which of `sizes` is the initial channel count C
    sizes: list[int] = field(default_factory=lambda: [56, 72, 112])  # C per size (paper, CIFAR-10)
    channels: int | None = None  # C, overriding size (paper ImageNet: 102)
    cells: int = 10  # 8 normal + 2 reduction cells
    reductions: list[int] | None = None  # None: at 1/3 and 2/3 of the depth
    stem_stride: int = 1  # 2 halves the input once in the stem: a CPU-budget knob
    imagenet_stem: bool | str = "auto"  # three stride-2 convs, 224 -> 28 (Sec. 3.1); auto: for images of 112 px or more
    auxiliary_weight: float = 0.4  # CE weight of the auxiliary tower (paper: a tower, no weight; DARTS 0.4); 0 = none
    drop_path: float = 0.0  # not in the paper; DARTS 0.2, ramped linearly over the epochs
    epochs: int = 600  # with minutes set: the most epochs
    minutes: float | None = None  # training-time budget: as many epochs as fit (at most `epochs`); None: all epochs
    batch_size: int = 96
    eval_batch_size: int = 500
    train_images: int | None = None  # train on the first N training images only (smoke tests); None: all
    val_images: int | None = None  # held out to choose best.safetensors; null: 5%, at most 2500; 0: by test
    optimizer: str = "sgd"  # sgd (the paper's) | adam
    lr: float = 0.025  # cosine-annealed per epoch to lr_min, no restart
    lr_min: float = 0.0
    momentum: float = 0.9
    weight_decay: float = 3e-4  # full-precision parameters (stem, BN, classifier, tower, Parent)
    binary_weight_decay: float | None = None  # latent weights of the 1-bit convs; None: weight_decay
    grad_clip: float = 5.0
    amp: bool | str = (
        "auto"  # CUDA mixed precision for the Parent and the Child's full-precision parts; auto: on for CUDA
    )
    label_smoothing: float = 0.0  # paper: on ImageNet only
    crop_padding: int = 4  # random-crop augmentation (DARTS): zero padding in pixels; 0 = off
    flip: bool = True  # random horizontal flips (DARTS)
    cutout: int = 16  # cutout side in pixels (DeVries & Taylor, as in DARTS); 0 = off
    quantizer: str = "ste"  # ste (clipped identity) | approx (Bi-Real ApproxSign)
    parent_activation: str = "relu"  # relu | identity where the Child binarizes
    shortcut: bool = False  # a real-valued shortcut around every conv of an op (Bi-Real; not in the paper)
    group_width: int = 1  # channels per group of the k x k convs of sep/dil ops; 1 = depth-wise (the paper)
    real_depthwise: bool = False  # CP-NAS*: real-valued activations into the k x k conv of every sep/dil op (Tab. 2)
    real_preprocess: bool = False  # CP-NAS**: real-valued activations into the cells' preprocessing convs too
    parent: str = "joint"  # joint: trained alongside the Child | none | path to a cpnas model file (frozen Parent)
    kernel_source: str = "parent"  # H of Eq. 3: the Parent's kernel | self: the Child's own latent kernel (PCNN)
    kernel_weight: float = 1.0  # weight of sum_{c,l} MSE(H, Ĥ) (Eq. 3: 1); 0 = off
    center_weight: float = 1.0  # lambda of Eq. 3's centre term; 0 = off


@dataclass
class Config:
    name: str = "cifar10"
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    data: DataConfig = field(default_factory=DataConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


def preset_path(name_or_path: str) -> Path:
    """A preset by name (presets/<name>.yaml) or by file path."""
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml") and candidate.is_file():
        return candidate
    for folder in PRESET_DIRS:
        if (folder / f"{name_or_path}.yaml").is_file():
            return folder / f"{name_or_path}.yaml"
    raise UserError(
        f"unknown preset {name_or_path!r}", f"use one of {', '.join(preset_names())} or a path to a .yaml file"
    )


def preset_names() -> list[str]:
    names = {p.stem for folder in PRESET_DIRS if folder.is_dir() for p in folder.glob("*.yaml")}
    return sorted(names)


def load_config(preset: str = "quick", overrides: dict | None = None, sets: Sequence[str] = ()) -> Config:
    """Defaults <- preset file <- `overrides` ({"search.beta_p": 2, ...}) <- `--set key=value` strings."""
    path = preset_path(preset)
    config = Config()
    _apply_tree(config, _read_mapping(path, f"preset {path}"), source=f"preset {path.name}")
    for key, value in (overrides or {}).items():
        if value is not None:
            set_value(config, key, value, source="flag")
    for item in sets:
        key, sep, raw = item.partition("=")
        if not sep:
            raise UserError(f"--set {item!r} is not key=value", "write e.g. --set search.lr=0.05")
        set_value(config, key.strip(), _set_value_yaml(item, raw), source="--set")
    validate(config)
    return config


def _set_value_yaml(item: str, raw: str):
    """The value of `--set key=value`, read as YAML (a number, a list, a string)."""
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError:  # also control characters, which YAML's reader refuses
        raise UserError(f"--set {item!r}: the value is not valid YAML", "quote it, e.g. --set name='my run'") from None


def _apply_tree(config: Config, data: dict, source: str) -> None:
    for key, value in _flatten(data):
        set_value(config, key, value, source)


def _flatten(data: dict, prefix: str = ""):
    """Nested mappings to dotted keys: {"search": {"lr": 1}} -> ("search.lr", 1)."""
    for key, value in data.items():
        if isinstance(value, dict):
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def set_value(obj, key: str, value, source: str) -> None:
    """Set a dotted key on a config tree, checking the key exists and the value's type."""
    *parents, leaf = key.split(".")
    for part in parents:
        obj = getattr(obj, part, None) if part in _field_names(obj) else None
        if not dataclasses.is_dataclass(obj):
            raise _unknown_key(key, source)
    if leaf not in _field_names(obj) or dataclasses.is_dataclass(getattr(obj, leaf)):
        raise _unknown_key(key, source)
    kind = typing.get_type_hints(type(obj))[leaf]
    setattr(obj, leaf, _coerce(value, kind, key, source))


def typed_record(cls, data, where: str, fix: str):
    """A dataclass built from a JSON object (ablation.json, results.json), each field checked
    against its annotation as config keys are; keys the dataclass lacks are ignored."""
    if not isinstance(data, dict):
        raise UserError(f"{where} is not an object", fix)
    missing = [f.name for f in dataclasses.fields(cls) if f.name not in data and f.default is dataclasses.MISSING]
    if missing:
        raise UserError(f"{where} lacks {', '.join(missing)}", fix)
    kinds = typing.get_type_hints(cls)
    values = {
        f.name: _coerce(data[f.name], kinds[f.name], f.name, where) for f in dataclasses.fields(cls) if f.name in data
    }
    return cls(**values)


def _unknown_key(key: str, source: str) -> UserError:
    close = difflib.get_close_matches(key, known_keys(), n=1)
    hint = f"did you mean {close[0]}?" if close else "the known keys are those of `cpnas config` / presets/quick.yaml"
    return UserError(f"unknown config key {key!r} ({source})", hint)


def _field_names(obj) -> set[str]:
    return {f.name for f in dataclasses.fields(obj)} if dataclasses.is_dataclass(obj) else set()


def _coerce(value, kind, key: str, source: str):
    """Check `value` against the field's annotation; ints are accepted where floats are expected."""
    options = typing.get_args(kind) if isinstance(kind, types.UnionType) else (kind,)
    for option in options:
        if option is type(None) and value is None:
            return None
        origin = typing.get_origin(option)
        if origin is list and isinstance(value, list):
            (item,) = typing.get_args(option)
            if all(type(v) is item for v in value):
                return list(value)
        elif option is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        elif option in (int, str, bool) and type(value) is option:
            return value
    wanted = " or ".join(_type_name(o) for o in options)
    raise UserError(f"config key {key!r} ({source}) must be {wanted}, got {value!r}", f"give {key} a {wanted} value")


def _type_name(kind) -> str:
    if kind is type(None):
        return "null"
    if typing.get_origin(kind) is list:
        return f"a list of {typing.get_args(kind)[0].__name__}"
    return kind.__name__


def known_keys(obj=None, prefix: str = "") -> list[str]:
    obj = obj if obj is not None else Config()
    keys = []
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        keys += known_keys(value, f"{prefix}{f.name}.") if dataclasses.is_dataclass(value) else [prefix + f.name]
    return keys


def validate(config: Config) -> None:
    """Values that parse but cannot work: one UserError naming the key and the fix."""
    s, d = config.search, config.data
    checks = [
        (s.rounds >= 1, "search.rounds (T)", "must be at least 1", "use --rounds 1 or more"),
        (s.beta_p >= 0, BETA_P_KEY, "must not be negative", "use --beta-p 0 (Child accuracy only) or more"),
        (s.epochs_per_sample > 0, "search.epochs_per_sample", "must be positive", "use e.g. --epochs-per-sample 1"),
        (
            s.batch_size >= 1 and s.eval_batch_size >= 1,
            "search.batch_size",
            "must be at least 1",
            "use e.g. --batch-size 64",
        ),
        (
            s.channels >= 1 and s.cells >= 1 and s.nodes >= 1,
            "search.channels/cells/nodes",
            "must be at least 1",
            "use positive sizes",
        ),
        (s.lr > 0 and s.lr_min >= 0, "search.lr", "must be positive", "use e.g. --set search.lr=0.025"),
        (
            len(s.ops) >= 2 and len(set(s.ops)) == len(s.ops),
            "search.ops",
            "needs at least 2 distinct ops",
            f"choose from {', '.join(OPS)}",
        ),
        (
            set(s.ops) <= set(OPS),
            "search.ops",
            f"has unknown ops {sorted(set(s.ops) - set(OPS))}",
            f"choose from {', '.join(OPS)}",
        ),
        (s.ops != ["zero"] * len(s.ops), "search.ops", "needs a non-zero op", "add e.g. skip"),
        (s.optimizer in ("sgd", "adam"), "search.optimizer", f"is {s.optimizer!r}", "use sgd or adam"),
        (s.quantizer in ("ste", "approx"), "search.quantizer", f"is {s.quantizer!r}", "use ste or approx"),
        (
            s.parent_activation in ("relu", "identity"),
            "search.parent_activation",
            f"is {s.parent_activation!r}",
            "use relu or identity",
        ),
        (
            s.kernel_weight >= 0 and s.center_weight >= 0,
            "search.kernel_weight/center_weight",
            "must not be negative",
            "use 0 (cross-entropy only) or e.g. 0.001 / 0.1 as the train recipe",
        ),
        (s.genotype in ("darts", "all"), "search.genotype", f"is {s.genotype!r}", "use darts or all"),
        (s.strategy in STRATEGIES, STRATEGY_KEY, f"is {s.strategy!r}", f"use one of {', '.join(STRATEGIES)}"),
        (0 < s.bandit_lambda <= 1, "search.bandit_lambda", "must be in (0, 1]", "use e.g. 0.7 (the book's value)"),
        (s.bandit_reward in ("child", "cp"), "search.bandit_reward", f"is {s.bandit_reward!r}", "use child or cp"),
        (s.stem_stride in (1, 2), "search.stem_stride", f"is {s.stem_stride}", "use 1 or 2"),
        _auto_check(s.imagenet_stem, "search.imagenet_stem"),
        _auto_check(s.amp, "search.amp"),
        (
            s.group_width >= 1,
            "search.group_width",
            "must be at least 1",
            "use 1 (depth-wise, the paper) or e.g. 16",
        ),
        (s.crop_padding >= 0, "search.crop_padding", "must not be negative", "use 0 to switch the random crop off"),
        *_differentiable_checks(s),
        _auto_check(d.streaming, "data.streaming"),
        (d.workers is None or d.workers >= 0, "data.workers", "must not be negative", "use 0 (no workers) or more"),
        (0 < d.crop_fraction <= 1, "data.crop_fraction", "must be in (0, 1]", "use 1 (all) or e.g. 0.875"),
        (
            d.train_fraction > 0 and d.val_fraction > 0 and d.train_fraction + d.val_fraction <= 1,
            "data.train_fraction/val_fraction",
            "must be positive and sum to at most 1",
            "e.g. 0.5 and 0.05",
        ),
        *_train_checks(config.train),
    ]
    for ok, key, problem, fix in checks:
        if not ok:
            raise UserError(f"{key} {problem}", fix)


def _auto_check(value: bool | str, key: str) -> tuple:
    """A key that takes true, false or auto."""
    return (value in (True, False, "auto"), key, f"is {value!r}", "use true, false or auto")


def _differentiable_checks(s: SearchConfig) -> list[tuple]:
    return [
        (
            s.diff_epochs > 0 and s.diff_phase_epochs > 0 and s.diff_warmup_epochs >= 0,
            "search.diff_epochs",
            "and diff_phase_epochs must be positive, diff_warmup_epochs not negative",
            "e.g. 50, 1 and 15",
        ),
        (s.diff_batch_size >= 1, "search.diff_batch_size", "must be at least 1", "use e.g. 256"),
        (s.diff_optimizer in ("sgd", "adam"), "search.diff_optimizer", f"is {s.diff_optimizer!r}", "use sgd or adam"),
        (
            s.diff_lr > 0 and s.diff_lr_min >= 0 and s.arch_lr > 0 and s.dcp_child_lr > 0,
            "search.diff_lr",
            "and arch_lr, dcp_child_lr must be positive (diff_lr_min not negative)",
            "e.g. 0.1, 6e-4, 1e-3",
        ),
        (
            len(s.arch_betas) == 2 and all(0 <= b < 1 for b in s.arch_betas),
            "search.arch_betas",
            "must be two numbers in [0, 1)",
            "use e.g. [0.5, 0.999]",
        ),
        (
            s.pc_k >= 1 and (s.strategy not in ("pc-darts", "dcp") or s.channels % s.pc_k == 0),
            "search.pc_k",
            f"({s.pc_k}) must divide search.channels ({s.channels})",
            "use e.g. pc_k 4 with 16 channels, or 1",
        ),
        (
            min(s.dcp_lambda, s.dcp_mu, s.dcp_child_ce, s.dcp_psi_lr, s.dcp_psi_init) >= 0,
            "search.dcp_lambda",
            "and dcp_mu, dcp_child_ce, dcp_psi_lr, dcp_psi_init must not be negative",
            "use 0 to switch a term off",
        ),
        (s.dcp_hessian in ("ggn", "exact"), "search.dcp_hessian", f"is {s.dcp_hessian!r}", "use ggn or exact"),
        (s.dcp_scales in ("learned", "mean"), "search.dcp_scales", f"is {s.dcp_scales!r}", "use learned or mean"),
        (s.dcp_tau >= 0, "search.dcp_tau", "must not be negative", "use e.g. 4 (0 back-tracks every op)"),
    ]


def _train_checks(t: TrainConfig) -> list[tuple]:
    sizes = ("small", "medium", "large")
    return [
        (t.size in sizes, "train.size", f"is {t.size!r}", "use small, medium or large"),
        (
            len(t.sizes) == 3 and min(t.sizes) >= 1,
            "train.sizes",
            "must be three positive channel counts",
            "e.g. [56, 72, 112]",
        ),
        (
            t.channels is None or t.channels >= 1,
            "train.channels",
            "must be at least 1",
            "use e.g. --set train.channels=16",
        ),
        (t.cells >= 1, "train.cells", "must be at least 1", "use e.g. --set train.cells=10"),
        (t.stem_stride in (1, 2), "train.stem_stride", f"is {t.stem_stride}", "use 1 or 2"),
        _auto_check(t.imagenet_stem, "train.imagenet_stem"),
        _auto_check(t.amp, "train.amp"),
        (t.group_width >= 1, "train.group_width", "must be at least 1", "use 1 (depth-wise, the paper) or e.g. 16"),
        (t.epochs >= 1, "train.epochs", "must be at least 1", "use --epochs 1 or more"),
        (
            t.minutes is None or t.minutes > 0,
            "train.minutes",
            "must be positive",
            "use e.g. --minutes 55, or null for no budget",
        ),
        (t.train_images is None or t.train_images >= 1, "train.train_images", "must be at least 1", "or null for all"),
        (
            t.val_images is None or t.val_images >= 0,
            "train.val_images",
            "must not be negative",
            "use 0 (best by test accuracy), a count, or null (5%, at most 2500)",
        ),
        (
            t.batch_size >= 1 and t.eval_batch_size >= 1,
            "train.batch_size",
            "must be at least 1",
            "use e.g. --batch-size 96",
        ),
        (t.lr > 0 and t.lr_min >= 0, "train.lr", "must be positive", "use e.g. --lr 0.025"),
        (t.optimizer in ("sgd", "adam"), "train.optimizer", f"is {t.optimizer!r}", "use sgd or adam"),
        (
            min(t.weight_decay, t.binary_weight_decay or 0.0) >= 0,
            "train.weight_decay",
            "must not be negative",
            "use 0 or more",
        ),
        (t.grad_clip > 0, "train.grad_clip", "must be positive", "use e.g. 5"),
        (0 <= t.label_smoothing < 1, "train.label_smoothing", "must be in [0, 1)", "use e.g. 0.1"),
        (0 <= t.drop_path < 1, "train.drop_path", "must be in [0, 1)", "use e.g. 0.2"),
        (
            t.cutout >= 0 and t.auxiliary_weight >= 0 and t.crop_padding >= 0,
            "train.cutout/auxiliary_weight/crop_padding",
            "must not be negative",
            "use 0 to switch off",
        ),
        (t.quantizer in ("ste", "approx"), "train.quantizer", f"is {t.quantizer!r}", "use ste or approx"),
        (
            t.parent_activation in ("relu", "identity"),
            "train.parent_activation",
            f"is {t.parent_activation!r}",
            "use relu or identity",
        ),
        (t.kernel_source in ("parent", "self"), "train.kernel_source", f"is {t.kernel_source!r}", "use parent or self"),
        (
            t.kernel_weight >= 0 and t.center_weight >= 0,
            "train.kernel_weight/center_weight",
            "must not be negative",
            "use 0 to switch a term off",
        ),
        (
            t.parent != "none" or t.kernel_source == "self" or t.kernel_weight == 0,
            "train.parent",
            "is none but the kernel term needs the Parent's kernels",
            "set train.kernel_weight=0 or train.kernel_source=self",
        ),
        (
            t.parent != "none" or t.center_weight == 0,
            "train.parent",
            "is none but the centre term needs the Parent's features",
            "set train.center_weight=0",
        ),
    ]


def to_dict(config: Config) -> dict:
    return dataclasses.asdict(config)


def load_run_config(path: Path) -> Config:
    """A run's resolved config.yaml, with the same checks as a preset. The file is a complete dump
    written at the run's start, so an empty one is damage: resuming it with the defaults would run
    another experiment."""
    data = _read_mapping(Path(path), f"run config {path}")
    if not data:
        raise UserError(
            f"run config {path} is empty (damaged)",
            "restore it from a copy, or start the run again: the defaults would run another experiment",
        )
    config = Config()
    present = {key for key, _ in _flatten(data)}
    for key, before in ADDED_LATER.items():
        if key not in present:
            set_value(config, key, before, source=f"{path}, written before {key} existed")
    _apply_tree(config, data, source=str(path))
    validate(config)
    return config


def _read_mapping(path: Path, what: str) -> dict:
    text = read_text(path, what, "check the path, its permissions, and that it is a YAML file")
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise UserError(f"{what} is not valid YAML{where}", "fix the file's syntax") from None
    if not isinstance(data, dict):
        raise UserError(f"{what} must be a mapping of keys", "see presets/quick.yaml for the layout")
    return data


def dump_yaml(config: Config) -> str:
    return yaml.safe_dump(to_dict(config), sort_keys=False)
