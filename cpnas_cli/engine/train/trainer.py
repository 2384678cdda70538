"""Training a genotype's evaluation network (Sec. 3.1) with the CP loss, with events and exact resume.

Every epoch: one pass over the training set in a fresh order (Child and Parent on the same
batches), then the accuracy of both on the validation images (`train.val_images` held out of the
training set, never trained on) and on the test set; the epoch goes to the event log, the model
files `last.safetensors` (and `best.safetensors` when the Child's validation accuracy is the best
so far) are written, then the resume checkpoint. The test set only reports: the summary gives the
test accuracy of the best checkpoint and of the last one. With `train.val_images: 0` nothing is
held out and the best checkpoint is the best on the test set, as before the split existed (an
optimistic figure: it was chosen on the images it is reported on).

As in the search, everything random is a pure function of (seed, epoch, batch): the order of an
epoch, the augmentation of a batch and the drop-path masks (the global generator is reseeded
per batch). A checkpoint therefore holds no generator state: weights, optimizer state, the
position and the sums of a part-done epoch are enough to continue exactly where an uninterrupted
run would be, after Ctrl-C between batches or a kill at any moment. With a time budget
(`train.minutes`) the number of epochs is planned from measured epoch times (bookkeeping/budget.py): the plan
is in the checkpoint, but a resumed run measures its own epochs, so it is not bit-identical.
Under torchrun (`world`) every rank trains on its share of each batch (DDP, pair.py) and tests
whole batches in turn; rank 0 writes the run, and its epoch plan is every rank's.
"""

import time
from dataclasses import asdict, dataclass, field

import torch

from cpnas_cli import data as datasets
from cpnas_cli.bookkeeping.budget import epochs_that_fit
from cpnas_cli.bookkeeping.learning_rate import cosine_annealing
from cpnas_cli.config import Config, TrainConfig, to_dict
from cpnas_cli.engine.nn.backbone import uses_imagenet_stem
from cpnas_cli.engine.nn.network import NetworkSpec
from cpnas_cli.engine.run.device import resolve_device
from cpnas_cli.engine.run.distributed import SOLO, World
from cpnas_cli.engine.run.interrupt import Interrupted
from cpnas_cli.engine.run.loop import Report, RunLoop
from cpnas_cli.errors import UserError
from cpnas_cli.events import event, header
from cpnas_cli.runs import RunDir
from cpnas_cli.space import genotype as genotypes

from .model_file import ModelInfo, save_model
from .pair import TrainingPair

SIZES = ("small", "medium", "large")
SUMS = ("loss", "loss_ce", "loss_kernel", "loss_center", "loss_parent", "correct_child", "correct_parent")


def network_spec(cfg: TrainConfig, data: datasets.Dataset) -> NetworkSpec:
    """The evaluation network for this config and dataset: C from the size unless channels is set."""
    return NetworkSpec(
        in_channels=data.in_channels,
        classes=data.num_classes,
        channels=cfg.channels or cfg.sizes[SIZES.index(cfg.size)],
        cells=cfg.cells,
        image_size=data.image_size,
        auxiliary=cfg.auxiliary_weight > 0,
        imagenet_stem=uses_imagenet_stem(cfg.imagenet_stem, data.image_size),
        reductions=cfg.reductions,
        quantizer=cfg.quantizer,
        parent_activation=cfg.parent_activation,
        stem_stride=cfg.stem_stride,
        shortcut=cfg.shortcut,
        group_width=cfg.group_width,
        real_depthwise=cfg.real_depthwise,
        real_preprocess=cfg.real_preprocess,
    )


@dataclass
class EpochSums:
    """Sums over the batches of the current epoch done so far (kept across an interrupt)."""

    batch: int = 0
    seen: int = 0
    seconds: float = 0.0  # in training steps (for images/s)
    wall: float = 0.0  # wall time of the epoch before an interrupt
    sums: dict = field(default_factory=lambda: dict.fromkeys(SUMS))

    def add(self, n_images: int, result: dict) -> None:
        self.batch += 1
        self.seen += n_images
        self.seconds += result["seconds"]
        for key in SUMS:
            if result[key] is not None:
                self.sums[key] = (self.sums[key] or 0) + result[key]

    def mean(self, key: str, scale: float = 1.0, digits: int = 4) -> float | None:
        value = self.sums[key]
        return None if value is None else round(scale * value / max(self.seen, 1), digits)


class Trainer(RunLoop):
    """One training run: construct (loads the data, builds the networks: bad input fails here,
    before anything is written), then `begin(run)` or `restore(run)`, then `run()`."""

    command = "train"

    def __init__(
        self,
        config: Config,
        genotype: genotypes.Genotype,
        report: Report = lambda e: None,
        stop=None,
        world: World = SOLO,
    ):
        super().__init__(report, stop, world)
        self.config, self.cfg, self.genotype = config, config.train, genotype
        self.device = world.device or resolve_device(config.device)
        d = config.data
        self.data = datasets.load_configured(d)
        self.spec = network_spec(self.cfg, self.data)
        try:
            self.pair = TrainingPair(self.cfg, self.spec, genotype, self.device, config.seed, world)
        except ValueError as err:  # e.g. reduction indices outside the network
            raise UserError(f"cannot build the network: {err}", "check train.cells and train.reductions") from None
        self.augment = datasets.Augment(crop_padding=self.cfg.crop_padding, flip=self.cfg.flip, cutout=self.cfg.cutout)
        n_all = len(self.data.train_labels)
        pool, self.val_idx = datasets.holdout_split(
            n_all, datasets.validation_size(n_all, self.cfg.val_images), datasets.derive_seed(config.seed, "validation")
        )
        self.train_idx = pool[: self.cfg.train_images or len(pool)]  # the first N not held out
        self.n_train = len(self.train_idx)
        self.batches_per_epoch = datasets.num_batches(self.n_train, self.cfg.batch_size, drop_last=True)
        if self.batches_per_epoch == 0:
            raise UserError(
                f"train.batch_size {self.cfg.batch_size} exceeds the {self.n_train} training images",
                "use a smaller --batch-size",
            )
        self.epoch, self.partial, self.elapsed = 0, EpochSums(), 0.0
        self.best: float | None = None  # the best Child accuracy so far: validation (test with val_images 0)
        self.best_record: dict = {}  # the best epoch's accuracies
        self.epochs = self.cfg.epochs  # the plan: lowered by a time budget (bookkeeping/budget.py)
        self.last: dict = {}

    def begin(self, run: RunDir) -> None:
        self.world.on_main(lambda: genotypes.save(self.genotype, run.genotype))
        line = header(
            "train",
            to_dict(self.config),
            genotype=genotypes.to_dict(self.genotype),
            epochs=self.cfg.epochs,
            network=asdict(self.spec),
            classes=self.data.classes,
            world_size=self.world.size,
        )
        self.start(run, line, total=self.cfg.epochs, device=str(self.device))

    def restore(self, run: RunDir) -> None:
        """Continue from the run's checkpoint; a run killed before its first one starts over."""
        if not self.resume(run, self._restore_state):
            return self.begin(run)
        self.emit(
            "status",
            state="resumed",
            epoch=self.epoch,
            batch=self.partial.batch,
            device=str(self.device),
            world_size=self.world.size,
        )

    def _restore_state(self, tensors, state: dict) -> None:
        try:
            self.pair.load_state_tensors(tensors)
        except RuntimeError:
            raise UserError(
                f"the checkpoint in {self.run_dir.checkpoint} does not fit this run's genotype and network",
                "start the run again",
            ) from None
        self.epoch, self.elapsed, self.best = state["epoch"], state["elapsed"], state["best"]
        self.best_record = state.get("best_record", {})  # checkpoints before the validation split: none
        self.epochs = state["epochs"]
        self.last = state["last"]
        self.partial = EpochSums(**state["partial"])

    @property
    def finished(self) -> bool:
        return self.epoch >= self.epochs

    # --- the loop ------------------------------------------------------------------------

    def run(self) -> dict:
        """Train to the last epoch; returns the final summary (also the `finished` event)."""

        def epochs():
            while not self.finished:
                self._epoch()

        with self.writing():
            self.guarded(epochs, lambda: {"epoch": self.epoch, "batch": 0})
            return self.emit(
                "status",
                state="finished",
                elapsed=round(self.elapsed, 1),
                best_by=self.selection,
                **{f"best_{k}": v for k, v in self.best_record.items()},
                **{k: self.last.get(k) for k in ("test_acc_child", "test_acc_parent")},
            )

    @property
    def selection(self) -> str:
        """What picks best.safetensors: the held-out validation images, or the test set (val_images 0)."""
        return "validation" if len(self.val_idx) else "test"

    def _epoch(self) -> None:
        self.started = time.perf_counter()
        lr = self._train()
        eval_start = time.perf_counter()
        acc = self.pair.evaluate(self.world.deal(self._fixed_batches(self.data.test_images, self.data.test_labels)))
        val = (
            self.pair.evaluate(
                self.world.deal(self._fixed_batches(self.data.train_images, self.data.train_labels, self.val_idx))
            )
            if len(self.val_idx)
            else None
        )
        p = self.partial
        seconds = p.wall + time.perf_counter() - self.started
        self.elapsed += time.perf_counter() - self.started
        child_acc, val_child = acc["child"], None if val is None else val["child"]
        assert child_acc is not None  # evaluate() always measures the Child
        chosen_by = child_acc if val_child is None else val_child
        is_best = self.best is None or chosen_by > self.best
        self.best = max(chosen_by, self.best or 0.0)
        self.epoch += 1
        # rank 0's clock plans for every rank (their plans must agree)
        self.epochs = self.world.broadcast(epochs_that_fit(self.epoch, self.elapsed, self.cfg.minutes, self.epochs))
        line = event(
            "epoch",
            epoch=self.epoch,
            epochs=self.epochs,
            loss=p.mean("loss"),
            loss_ce=p.mean("loss_ce"),
            loss_kernel=p.mean("loss_kernel", digits=6),
            loss_center=p.mean("loss_center", digits=6),
            loss_parent=p.mean("loss_parent"),
            train_acc_child=p.mean("correct_child", 100, 2),
            train_acc_parent=p.mean("correct_parent", 100, 2),
            test_acc_child=round(child_acc, 2),
            test_acc_parent=None if acc["parent"] is None else round(acc["parent"], 2),
            val_acc_child=None if val_child is None else round(val_child, 2),
            val_acc_parent=None if val is None or val["parent"] is None else round(val["parent"], 2),
            lr=lr,
            images=p.seen,
            images_per_s=round(p.seen / max(p.seconds, 1e-9), 1),
            seconds=round(seconds, 3),
            eval_seconds=round(time.perf_counter() - eval_start, 3),
            elapsed=round(self.elapsed, 1),
            best=is_best,
        )
        self.check_finite([line])  # a diverged epoch writes no model file: last.safetensors stays the good one
        self.last = {
            k: line[k] for k in ("epoch", "test_acc_child", "test_acc_parent", "val_acc_child", "val_acc_parent")
        }
        if is_best:
            self.best_record = {
                k: self.last[k] for k in ("epoch", "val_acc_child", "test_acc_child", "test_acc_parent")
            }
        self.world.on_main(lambda: self._write_models(is_best))
        self.partial = EpochSums()
        self._commit([line])

    def _fixed_batches(self, images, labels, indices: torch.Tensor | None = None):
        """Evaluation batches in a fixed order, no augmentation (all the images without indices)."""
        chosen = torch.arange(len(labels)) if indices is None else indices
        return datasets.batches(
            images, labels, chosen, self.cfg.eval_batch_size, shuffle_generator=None, device=self.device
        )

    def _train(self) -> float:
        """The rest of the current epoch's batches; returns the epoch's first learning rate."""
        e, nb = self.epoch, self.batches_per_epoch
        self.pair.set_drop_path(self.cfg.drop_path * e / self.epochs)  # DARTS: ramped linearly
        order = self.train_idx[
            torch.randperm(
                self.n_train,
                generator=torch.Generator().manual_seed(datasets.derive_seed(self.config.seed, "order", e)),
            )
        ]
        batches = self.world.share(
            datasets.batches(
                self.data.train_images,
                self.data.train_labels,
                order,
                self.cfg.batch_size,
                shuffle_generator=None,
                device=self.device,
                aug=self.augment,
                aug_seed=datasets.derive_seed(self.config.seed, "augment", e),
                start_batch=self.partial.batch,
                drop_last=True,
            )
        )
        for x, y in batches:
            if self.world.agree(self.stop is not None and self.stop.is_set()):
                self._interrupt()
            b = self.partial.batch
            # drop-path masks per rank: rank r > 0 draws its own (the same keys would repeat rank 0's)
            torch.manual_seed(datasets.derive_seed(self.config.seed, "drop-path", e, b, *self._rank_key()))
            x = x.contiguous(memory_format=torch.channels_last)
            result = self.pair.train_batch(x, y, self._lr(e * nb + b, self.epochs * nb))
            totals = self.world.sum({"images": len(y), "sums": result})
            self.partial.add(totals["images"], totals["sums"])
            self.report({"kind": "progress", "epoch": e + 1, "batch": self.partial.batch, "batches": nb})
        return self._lr(e * nb, self.epochs * nb)

    def _rank_key(self) -> tuple[str, int] | tuple[()]:
        return ("rank", self.world.rank) if self.world.rank else ()

    def _lr(self, step: int, steps: int) -> float:
        """Cosine annealing from lr to lr_min over the planned batches, per batch."""
        return cosine_annealing(self.cfg.lr, self.cfg.lr_min, step, steps)

    # --- files, checkpoints and events ----------------------------------------------------

    def _write_models(self, is_best: bool) -> None:
        """last.safetensors every epoch, best.safetensors when the Child's accuracy that chooses is the best."""
        info = ModelInfo(
            self.genotype,
            self.spec,
            self.data.classes,
            self.config.data.dataset,
            extras={
                **self.last,
                "epochs": self.epochs,
                "data_dir": self.config.data.data_dir,
                "crop_fraction": self.config.data.crop_fraction,  # how `cpnas evaluate` decodes a folder dataset
                "run": str(self.run_dir.path),
                "seed": self.config.seed,
            },
        )
        parent = self.pair.parent if self.pair.joint else None
        save_model(self.run_dir.path / "last.safetensors", info, self.pair.child, parent)
        if is_best:
            save_model(self.run_dir.path / "best.safetensors", info, self.pair.child, parent)

    def _commit(self, events: list[dict]) -> None:
        state = {
            "epoch": self.epoch,
            "epochs": self.epochs,
            "partial": asdict(self.partial),
            "elapsed": self.elapsed,
            "best": self.best,
            "best_record": self.best_record,
            "last": self.last,
        }
        self.commit(self.pair.state_tensors(), state, events, tag=f"{self.epoch:05d}-{self.partial.batch:06d}")

    def _interrupt(self):
        now = time.perf_counter()
        self.partial.wall += now - self.started
        self.elapsed += now - self.started
        self.pair.world.sync_buffers(self.pair.nets.values())  # rank 0's running statistics are the run's
        self._commit([event("status", state="interrupted", epoch=self.epoch, batch=self.partial.batch)])
        raise Interrupted(str(self.run_dir.path))
