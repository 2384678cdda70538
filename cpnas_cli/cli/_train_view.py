"""What `cpnas train` and `cpnas evaluate` show: live training progress and the result tables."""

from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from ._progress_view import ProgressView, progress_bars

if TYPE_CHECKING:  # evaluation imports torch; `cpnas watch` and --help must not
    from cpnas_cli.engine.deploy.evaluation import Metrics


def _pct(value) -> str:
    return "-" if value is None else f"{value:.2f}%"


def _clock(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class TrainProgress(ProgressView):
    """Two bars (epochs of the run, batches of the current epoch) and one line per finished
    epoch: losses, train/test accuracy of Child and Parent, lr, images/s, ETA. Call it with each event."""

    def __init__(self, console: Console, epochs: int, done: int = 0):
        self.progress = progress_bars(console)
        self.epochs = self.progress.add_task("train ", total=epochs, completed=done, info="")
        self.batches = self.progress.add_task("  epoch", total=1, completed=0, info="")

    def __call__(self, event: dict) -> None:
        if event["kind"] == "progress":
            self.progress.update(
                self.batches, total=event["batches"], completed=event["batch"], description=f"  epoch {event['epoch']}"
            )
        elif event["kind"] == "epoch":
            eta = event["elapsed"] / event["epoch"] * (event["epochs"] - event["epoch"])
            self.progress.update(
                self.epochs, total=event["epochs"], completed=event["epoch"], info=f"ETA {_clock(eta)}"
            )
            self.progress.console.print(epoch_line(event, eta), highlight=False)


def epoch_line(e: dict, eta: float) -> str:
    terms = "".join(
        f" {name} {e[key]:.4g}"
        for name, key in (("kernel", "loss_kernel"), ("centre", "loss_center"))
        if e[key] is not None
    )
    parent = (
        f"  Parent train {_pct(e['train_acc_parent'])} test {_pct(e['test_acc_parent'])}"
        if e["test_acc_parent"] is not None
        else ""
    )
    star = " [bold green]*best[/]" if e["best"] else ""
    val = f" val {_pct(e['val_acc_child'])}" if e.get("val_acc_child") is not None else ""
    return (
        f"epoch {e['epoch']}/{e['epochs']}  loss {e['loss']:.4f} (CE {e['loss_ce']:.4f}{terms})  "
        f"Child train {_pct(e['train_acc_child'])}{val} test [bold]{_pct(e['test_acc_child'])}[/]{parent}  "
        f"lr {e['lr']:.3g}  {e['images_per_s']:.0f} img/s  {_clock(e['seconds'])}  ETA {_clock(eta)}{star}"
    )


def summary_table(events: list[dict]) -> Table:
    """Test top-1 of the two model files of a training run: best.safetensors (the epoch the
    validation images chose, or the test set with train.val_images 0) and last.safetensors."""
    epochs = [e for e in events if e["kind"] == "epoch"]
    by_validation = any(e.get("val_acc_child") is not None for e in epochs)
    chosen = (
        "the best Child validation top-1 (images held out of the training set)"
        if by_validation
        else "the best Child test top-1 (train.val_images 0: an optimistic figure)"
    )
    table = Table(title="Test top-1 accuracy", caption=f"best.safetensors: the epoch of {chosen}")
    for column in ("", "epoch", "Child (1-bit)", "Parent (full precision)", "Child validation"):
        table.add_column(column, justify="right" if column else "left")
    if epochs:
        flagged = [e for e in epochs if e["best"]]
        best = flagged[-1] if flagged else max(epochs, key=lambda e: e["test_acc_child"])
        for name, e in (("best", best), ("last", epochs[-1])):
            table.add_row(
                name,
                str(e["epoch"]),
                f"[bold]{_pct(e['test_acc_child'])}[/]",
                _pct(e["test_acc_parent"]),
                _pct(e.get("val_acc_child")),
            )
    return table


def accuracy_table(results: "dict[str, Metrics]", class_names: list[str]) -> Table:
    """Overall and per-class accuracy, one column per network."""
    table = Table(title=f"Test accuracy ({next(iter(results.values())).n_images} images)")
    table.add_column("")
    for role in results:
        table.add_column("Child (1-bit)" if role == "child" else "Parent (full precision)", justify="right")
    table.add_row("[bold]top-1[/]", *[f"[bold]{_pct(m.top1)}[/]" for m in results.values()])
    if all(m.top5 is not None for m in results.values()):
        table.add_row("top-5", *[_pct(m.top5) for m in results.values()])
    table.add_section()
    for name in class_names:
        table.add_row(name, *[_pct(m.per_class[name]) for m in results.values()])
    return table


def confusion_table(metrics: "Metrics", class_names: list[str], title: str) -> Table:
    """Rows: true class; columns: predicted class (index); the diagonal in bold."""
    table = Table(title=title)
    table.add_column("true \\ predicted")
    for i in range(len(class_names)):
        table.add_column(str(i), justify="right")
    for i, (name, row) in enumerate(zip(class_names, metrics.confusion, strict=True)):
        table.add_row(f"{i} {name}", *[f"[bold]{v}[/]" if j == i else str(v) for j, v in enumerate(row)])
    return table
