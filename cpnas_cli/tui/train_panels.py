"""The panels of a training run: accuracy and loss curves per epoch, and where the run is."""

import time

from rich.text import Text

from .charts import Series, bounds, line_chart
from .panel import Panel, duration
from .search_panels import CHILD, PARENT


def _curve(state, key: str) -> list[float | None]:
    """One field over the epochs, padded with gaps to the planned epochs so the x axis is fixed."""
    values = [e.get(key) for e in state.epochs]
    return values + [None] * max(0, state.total_steps() - len(values))


def _value(epoch: dict, key: str, suffix: str = "") -> str:
    v = epoch.get(key)
    return "-" if v is None else f"{v:.2f}{suffix}" if isinstance(v, float) else f"{v}{suffix}"


class AccuracyPanel(Panel):
    """Test accuracy of the Child and the Parent per epoch (train accuracy dim)."""

    def title(self) -> str:
        return "accuracy per epoch (%)"

    def lines(self, width: int, height: int) -> list[Text]:
        s = self.state
        if not s.epochs:
            return [Text("no epoch yet", style="dim")]
        series = [
            Series(_curve(s, "train_acc_child"), "dim " + CHILD),
            Series(_curve(s, "train_acc_parent"), "dim " + PARENT),
            Series(_curve(s, "test_acc_child"), "bold " + CHILD),
            Series(_curve(s, "test_acc_parent"), "bold " + PARENT),
        ]
        last = s.epochs[-1]
        text = Text.assemble(
            ("test Child ", CHILD),
            _value(last, "test_acc_child"),
            ("  test Parent ", PARENT),
            _value(last, "test_acc_parent"),
            ("  (train dim)", "dim"),
        )
        return [*line_chart(series, width, max(1, height - 1), *bounds(series)), text]


class LossPanel(Panel):
    """The training loss per epoch and its parts."""

    def title(self) -> str:
        return "loss per epoch"

    def lines(self, width: int, height: int) -> list[Text]:
        s = self.state
        if not s.epochs:
            return [Text("no epoch yet", style="dim")]
        series = [Series(_curve(s, "loss_ce"), "dim yellow"), Series(_curve(s, "loss"), "bold yellow")]
        last = s.epochs[-1]
        text = Text.assemble(
            ("loss ", "bold yellow"),
            _value(last, "loss"),
            ("  ce ", "yellow"),
            _value(last, "loss_ce"),
            "  kernel ",
            _value(last, "loss_kernel"),
            "  center ",
            _value(last, "loss_center"),
        )
        return [*line_chart(series, width, max(1, height - 1), *bounds(series), axis="{:.2f}"), text]


class EpochPanel(Panel):
    """Epoch n of N, time per epoch, speed, ETA, and the epoch best.safetensors holds (chosen by validation)."""

    def title(self) -> str:
        return "training"

    def lines(self, width: int, height: int) -> list[Text]:
        s = self.state
        total = s.total_steps()
        if not s.epochs:
            return [Text(f"0/{total} epochs · waiting for the first epoch", style="dim")]
        last = s.epochs[-1]
        flagged = [e for e in s.epochs if e.get("best")]  # by validation (by test with train.val_images 0)
        best = flagged[-1] if flagged else max(s.epochs, key=lambda e: e.get("test_acc_child") or 0)
        chosen = f" (validation {_value(best, 'val_acc_child', '%')})" if best.get("val_acc_child") is not None else ""
        eta = s.eta(time.time())
        return [
            Text(
                f"epoch {last['epoch']}/{total} · {total - len(s.epochs)} left"
                + (f" · ETA {duration(eta)}" if eta is not None else "")
            ),
            Text(
                f"{last.get('seconds', 0):.1f} s/epoch · {last.get('images_per_s', 0):.0f} img/s"
                f" · lr {last.get('lr', 0):.4g}"
            ),
            Text(f"best: epoch {best['epoch']}, Child test {_value(best, 'test_acc_child', '%')}{chosen}"),
        ]
