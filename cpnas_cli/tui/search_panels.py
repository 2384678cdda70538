"""The panels of a search run besides the ranking: K over the samples, the Child/Parent gap,
the latest sample, and the final genotype."""

import time

from rich.text import Text

from .charts import Series, bounds, line_chart
from .panel import Panel, duration, short

CHILD, PARENT, GAP = "cyan", "magenta", "yellow"


class KPanel(Panel):
    """K over the samples of the whole plan as a staircase: done part bright, the rest dim."""

    def title(self) -> str:
        return f"K {self.state.k0} → 1"

    def lines(self, width: int, height: int) -> list[Text]:
        s = self.state
        plan, done = s.plan(), len(s.samples)
        if not plan:
            return [Text("no K schedule in this log", style="dim")]
        ks = [*plan, 1]  # after the last pruning one op is left
        past = [k if i <= done else None for i, k in enumerate(ks)]
        future = [k if i >= done else None for i, k in enumerate(ks)]
        chart = line_chart([Series(future, "grey42"), Series(past, "bold yellow")], width, max(1, height - 2), 1, s.k0)
        return [*chart, self._where(), self._progress()]

    def _where(self) -> Text:
        s, last = self.state, self.state.latest
        if s.state == "finished" or s.k == 1:
            return Text("K=1 · one op left on every edge")
        if last is None or last.get("K") != s.k:
            return Text(f"K={s.k} · waiting for its first sample")
        return Text(f"K={last['K']} · round {last['round']}/{s.rounds} · sample {last['index']}/{last['K']}")

    def _progress(self) -> Text:
        s = self.state
        done, total = len(s.samples), s.total_steps()
        text = Text(f"{done}/{total} samples · {total - done} left")
        if s.state == "finished":
            text.append(f" · took {duration(s.status.get('elapsed'))}")
        elif s.eta(time.time()) is not None:
            text.append(f" · ETA {duration(s.eta(time.time()))}", style="bold")
        return text


class GapPanel(Panel):
    """A_C, A_P and A_P - A_C (percent) of every sample on one scale, and the latest values."""

    def title(self) -> str:
        return "Child / Parent accuracy"

    def lines(self, width: int, height: int) -> list[Text]:
        s = self.state
        if not s.samples:
            return [Text("no sample yet", style="dim")]
        pad = [None] * max(0, s.total_steps() - len(s.samples))
        child = [x["acc_child"] for x in s.samples]
        parent = [x["acc_parent"] for x in s.samples]
        series = [
            Series([p - c for c, p in zip(child, parent, strict=True)] + pad, GAP),
            Series(child + pad, CHILD),
            Series(parent + pad, PARENT),
        ]
        lo, hi = bounds(series)
        return [*line_chart(series, width, max(1, height - 1), lo, hi), values_line(s.samples[-1])]


def values_line(sample: dict) -> Text:
    gap = sample["acc_parent"] - sample["acc_child"]
    return Text.assemble(
        ("A_C ", CHILD),
        f"{sample['acc_child']:.1f}  ",
        ("A_P ", PARENT),
        f"{sample['acc_parent']:.1f}  ",
        ("gap ", GAP),
        f"{gap:+.1f}  ",
        ("z ", "bold"),
        f"{sample['z']:.1f}",
    )


class SamplePanel(Panel):
    """The latest sample: where it is in the plan, its numbers, its architecture, its speed."""

    def title(self) -> str:
        last = self.state.latest
        return f"sample {last['n']}/{last['total']}" if last else "sample"

    def lines(self, width: int, height: int) -> list[Text]:
        x = self.state.latest
        if x is None:
            return [Text("no sample yet", style="dim")]
        lines = [
            Text(
                f"K={x['K']} · round {x['round']}/{self.state.rounds} · {x['index']}/{x['K']} of the round"
                f" · lr {x['lr']:.4f}"
            ),
            values_line(x),
            Text(
                f"train loss C {x['loss_child']:.3f} P {x['loss_parent']:.3f} · "
                f"train acc C {x['train_acc_child']:.1f} P {x['train_acc_parent']:.1f}"
            ),
            Text(
                f"{x['images_per_s']:.0f} img/s · {x['images']} images · {x['seconds']:.1f} s "
                f"(Child {x['child_seconds']:.1f}, Parent {x['parent_seconds']:.1f}, eval {x['eval_seconds']:.1f})"
            ),
        ]
        for cell, ops in x.get("arch", {}).items():
            lines.append(Text.assemble((f"{cell[:6]:<7}", "dim"), " ".join(short(op) for op in ops)))
        return lines


class GenotypePanel(Panel):
    """The final genotype (a differentiable search's current argmax one until then): per cell,
    the inputs of every intermediate node (op←input node)."""

    def title(self) -> str:
        s = self.state
        if s.genotype is None and s.latest_alpha:
            return f"genotype now (argmax after phase {s.latest_alpha['step']}/{s.latest_alpha['total']})"
        return "genotype"

    def lines(self, width: int, height: int) -> list[Text]:
        s = self.state
        if not s.current_genotype():
            return [Text("appears when the search finishes", style="dim")]
        lines = []
        for cell in ("normal", "reduce"):
            nodes = [
                f"{n + 2}:" + " ".join(f"{short(op)}←{src}" for op, src in node)
                for n, node in enumerate(s.genotype_nodes(cell))
            ]
            lines += pack(cell[:6].ljust(7), nodes, width)
        if s.genotype_path and len(lines) < height:
            lines.append(Text(s.genotype_path, style="dim"))
        return lines


def pack(label: str, words: list[str], width: int) -> list[Text]:
    """Words on as few lines as fit `width`, the label on the first, later lines indented."""
    lines, line = [], label
    for word in words:
        if len(line) + 1 + len(word) > width and line.strip() not in ("", label.strip()):
            lines.append(line)
            line = " " * len(label)
        line += ("" if line.endswith(" ") else " ") + word
    lines.append(line)
    return [Text(line) for line in lines]
