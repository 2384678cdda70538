"""The packed 1-bit network as one dependency-free C99 source and header (`cpnas export --format c`).

From a `plan.Plan` (the packed network as layer steps), `generate` writes:
- every tensor as a `static const` array, so it stays in flash: 1-bit kernels as 32-bit words of their
  `packing.pack_signs` bits (one bit per weight, one spare zero word per array), beta, folded
  BatchNorm and the full-precision stem and classifier as float32 (written exactly, 9 digits);
- one static float arena for the activations, its size and every value's place in it found here by a
  liveness pass (a value's space is reused once the last step that reads it has run; element-wise
  steps write over an input that dies there), and two small
  word buffers for the binarized input patch of a 1-bit conv;
- the kernels of the steps it uses (c_kernels.c), and `<prefix>_predict(pixels, logits)`: one call
  per step, each under a comment with the step's note (stem, "cell 3 (reduction) edge 2->4 ...").
The code needs only <stdint.h>, <string.h> and <math.h> (fmaf, INFINITY): no malloc, no other libc.
"""

import math
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from cpnas_cli.engine.train.model_file import ModelInfo, load_model, read_model
from cpnas_cli.errors import UserError

from .packing import load_packed, read_packed, write_packed
from .plan import Plan, Step, lower

KERNELS = Path(__file__).with_name("c_kernels.c")
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Code size estimate, from Cortex-M7 builds (arm-none-eabi-gcc -O2 -mthumb, `nm -S`): GCC inlines the
# small kernels into predict, keeps bconv, conv and the pools as functions; a step costs about 44 bytes.
KERNEL_CODE_BYTES = {"bits": 0, "bconv": 800, "conv": 300, "affine": 40, "relu": 20, "pool": 240, "halve": 300,
                     "mix": 100, "pick": 80, "add": 20, "concat": 20, "gap": 60, "linear": 80}  # fmt: skip
CALL_CODE_BYTES = 44
# Steps whose output element i depends on their inputs' element i only: they may write over an input.
IN_PLACE = {"affine", "relu", "add"}


@dataclass
class CModel:
    source: str
    header: str
    weight_bytes: int  # the const arrays (flash)
    code_bytes: int  # an estimate of the kernels' and predict's machine code (flash)
    arena_bytes: int  # the activation arena (RAM)
    scratch_bytes: int  # the 1-bit conv's patch buffers (RAM)

    def figures(self) -> dict:
        return {
            "weight_bytes": self.weight_bytes,
            "code_bytes": self.code_bytes,
            "flash_bytes": self.weight_bytes + self.code_bytes,
            "arena_bytes": self.arena_bytes,
            "ram_bytes": self.arena_bytes + self.scratch_bytes,
        }


def check_prefix(prefix: str) -> bool:
    """Whether `prefix` can start C identifiers (`<prefix>_predict`)."""
    return IDENTIFIER.fullmatch(prefix) is not None


def generate(plan: Plan, prefix: str, class_names: list[str], header_name: str) -> CModel:
    """The C source (which includes `header_name`) and header of `plan`, with their flash and RAM figures."""
    offsets, arena = arena_layout(plan)
    arrays = _Arrays()
    calls = [line for step in plan.steps for line in _step_code(step, plan, offsets, arrays)]
    ops = {step.op for step in plan.steps}
    used = (["bits"] if "bconv" in ops else []) + sorted(ops)
    words = max((_patch_words(step) for step in plan.steps if step.op == "bconv"), default=1)
    code = sum(KERNEL_CODE_BYTES[k] for k in used) + CALL_CODE_BYTES * sum(not c.startswith("/*") for c in calls)
    model = CModel("", "", arrays.bytes, code, 4 * arena, 8 * words)
    model.header = _header(plan, prefix, class_names, model)
    model.source = "\n".join([
        f"/* {prefix}: a 1-bit network exported by cpnas (`cpnas export --format c`); see {header_name}. */",
        f'#include "{header_name}"', "#include <math.h>", "#include <string.h>", "",
        f"static float arena[{arena}]; /* activations, planar C x H x W per value, reused by liveness */",
        f"static uint32_t patch_sign[{words}], patch_valid[{words}]; /* a 1-bit conv's binarized input patch */",
        "", _kernels(used), "", *arrays.lines, "",
        _class_names(prefix, class_names), "", _predict(plan, prefix, offsets, calls),
    ])  # fmt: skip
    return model


# --- the arena ------------------------------------------------------------------------------


def arena_layout(plan: Plan) -> tuple[dict[str, int], int]:
    """Every value's offset in the arena (in floats) and the arena's size. A value lives from the step
    that writes it to the last step that reads it (the output to the end; an unread value only during
    its own step). An element-wise step (IN_PLACE) writes over an input that dies there; any other
    new value takes the lowest gap among the values live at its step, never over its own inputs."""
    size = {plan.input: math.prod(plan.input_shape)} | {s.output: math.prod(s.shape) for s in plan.steps}
    last = {s.output: i for i, s in enumerate(plan.steps)} | {v: i for i, s in enumerate(plan.steps) for v in s.inputs}
    last[plan.output] = len(plan.steps)
    offsets = {plan.input: 0}
    live = [plan.input]
    for i, step in enumerate(plan.steps):
        live = sorted((v for v in live if last[v] >= i), key=offsets.__getitem__)
        dying = [v for v in step.inputs if last[v] == i and size[v] == size[step.output]]
        if step.op in IN_PLACE and dying:
            offsets[step.output] = offsets[dying[0]]
        else:
            offsets[step.output] = _first_fit([(offsets[v], size[v]) for v in live], size[step.output])
        live.append(step.output)
    return offsets, max(offsets[v] + size[v] for v in offsets)


def _first_fit(taken: list[tuple[int, int]], size: int) -> int:
    """The lowest offset where `size` floats fit between the (offset, size) blocks, sorted by offset."""
    at = 0
    for offset, length in taken:
        if offset - at >= size:
            return at
        at = max(at, offset + length)
    return at


# --- the code of each step ------------------------------------------------------------------


class _Arrays:
    """The const arrays, each named t<n> under a comment with its tensor's module path."""

    def __init__(self):
        self.lines: list[str] = []
        self.bytes = 0
        self.names: dict[str, str] = {}

    def __call__(self, plan: Plan, tensor: str | None) -> str:
        if tensor is None:
            return "0"
        if tensor not in self.names:
            self.names[tensor] = name = f"t{len(self.names)}"
            value = plan.tensors[tensor]
            if value.dtype == torch.uint8:
                ctype, items = "uint32_t", [f"0x{w:08x}u" for w in _words(value)]
            else:
                ctype, items = "float", [_float(v) for v in value.flatten().tolist()]
            rows = [", ".join(items[i : i + 8]) for i in range(0, len(items), 8)]
            self.lines += [
                f"/* {tensor} */",
                f"static const {ctype} {name}[{len(items)}] = {{",
                *(f"    {r}," for r in rows),
                "};",
            ]
            self.bytes += 4 * len(items)
        return self.names[tensor]


def _words(bits: torch.Tensor) -> list[int]:
    """pack_signs bytes as little-endian 32-bit words (bit order unchanged), and one spare zero word
    that `bits_at` may read past a kernel's last bit."""
    data = bits.tolist() + [0] * (-bits.numel() % 4 + 4)
    return [int.from_bytes(bytes(data[i : i + 4]), "little") for i in range(0, len(data), 4)]


def _float(value: float) -> str:
    if not math.isfinite(value):
        raise ValueError(f"a tensor holds {value}: the C export needs finite weights")
    return f"{value:.8e}f"  # 9 significant digits: the float32 back exactly


def _patch_words(step: Step) -> int:
    p = step.params
    return -(-(p["in_channels"] // p["groups"] * p["kernel"] ** 2) // 32)


def _step_code(step: Step, plan: Plan, offsets: dict[str, int], arrays: _Arrays) -> list[str]:
    """The C lines of one step: its note as a comment, then the kernel call(s)."""
    p, (c, h, w) = step.params, step.shape
    ins = [f"arena + {offsets[v]}" for v in step.inputs]
    x, y = (ins or [""])[0], f"arena + {offsets[step.output]}"
    cin, hin, win = plan.shape_of(step.inputs[0])
    if step.op == "concat":
        parts, at = [], offsets[step.output]
        for v in step.inputs:
            parts.append(f"concat(arena + {offsets[v]}, arena + {at}, {math.prod(plan.shape_of(v))});")
            at += math.prod(plan.shape_of(v))
        return [f"/* {step.note}: concat */", *parts]
    call = {
        "conv": lambda: (
            f"conv({x}, {y}, {cin}, {hin}, {win}, {c}, {h}, {w}, {p['kernel']}, {p['stride']}, "
            f"{p['padding']}, {arrays(plan, p['weight'])}, {arrays(plan, p['bias'])});"
        ),
        "bconv": lambda: (
            f"bconv({x}, {y}, {cin}, {hin}, {win}, {c}, {h}, {w}, {p['kernel']}, {p['stride']}, "
            f"{p['padding']}, {p['dilation']}, {p['groups']}, {arrays(plan, p['bits'])}, {arrays(plan, p['beta'])});"
        ),
        "affine": lambda: f"affine({x}, {y}, {c}, {h * w}, {arrays(plan, p['scale'])}, {arrays(plan, p['shift'])});",
        "relu": lambda: f"relu({x}, {y}, {c * h * w});",
        "pool": lambda: f"pool({x}, {y}, {c}, {hin}, {win}, {h}, {w}, {p['stride']}, {int(p['kind'] == 'max')});",
        "halve": lambda: f"halve({x}, {y}, {c}, {hin}, {win}, {h}, {w});",
        "mix": lambda: f"mix({x}, {y}, {cin}, {c}, {h * w});",
        "pick": lambda: f"pick({x}, {y}, {c}, {hin}, {win}, {h}, {w}, {p['offset']});",
        "add": lambda: f"add({', '.join(ins)}, {y}, {c * h * w});",
        "gap": lambda: f"gap({x}, {y}, {c}, {hin * win});",
        "linear": lambda: f"linear({x}, {y}, {cin}, {c}, {arrays(plan, p['weight'])}, {arrays(plan, p['bias'])});",
    }[step.op]()
    what = f"{p['kind']} pool" if step.op == "pool" else step.op
    return [f"/* {step.note}: {what} */", call]


# --- the files ------------------------------------------------------------------------------


def _kernels(used: list[str]) -> str:
    """The sections of c_kernels.c the model uses, in that order."""
    sections = dict(re.findall(r"/\*@ (\w+) \*/\n(.*?)(?=/\*@ |\Z)", KERNELS.read_text(), re.S))
    return "\n".join(sections[name].rstrip() + "\n" for name in used)


def _class_names(prefix: str, names: list[str]) -> str:
    quoted = ", ".join('"' + n.replace("\\", "\\\\").replace('"', '\\"') + '"' for n in names)
    return f"const char *const {prefix}_class_names[{len(names)}] = {{{quoted}}};"


def _predict(plan: Plan, prefix: str, offsets: dict[str, int], calls: list[str]) -> str:
    c, h, w = plan.input_shape
    out, classes = offsets[plan.output], plan.shape_of(plan.output)[0]
    body = "\n".join(f"    {line}" for line in calls)
    return f"""int {prefix}_predict(const uint8_t *pixels, float *logits)
{{
    int best = 0;
    /* input: uint8 H x W x C (interleaved) -> planar float, x = p / 127.5 - 1 */
    for (int ch = 0; ch < {c}; ch++)
        for (int i = 0; i < {h * w}; i++)
            arena[{offsets[plan.input]} + ch * {h * w} + i] = (float)pixels[i * {c} + ch] / 127.5f - 1.0f;
{body}
    for (int o = 0; o < {classes}; o++) {{
        if (logits)
            logits[o] = arena[{out} + o];
        if (arena[{out} + o] > arena[{out} + best])
            best = o;
    }}
    return best;
}}
"""


def _header(plan: Plan, prefix: str, class_names: list[str], model: CModel) -> str:
    c, h, w = plan.input_shape
    up, fig = prefix.upper(), model.figures()
    classes = "\n".join(f" *   {i}: {name}" for i, name in enumerate(class_names))
    return f"""/* {prefix}: a 1-bit network exported by cpnas (`cpnas export --format c`), C99, no malloc.
 *
 * Input: {h} x {w} pixels x {c} channel(s), uint8, interleaved (H x W x C: row by row, the channels of a
 * pixel together; one channel is a plain row-major image), {h * w * c} bytes; the network sees
 * x = pixel / 127.5 - 1 on every channel.
 * Output: {len(class_names)} logits, and the index of the largest (the first on a tie):
{classes}
 *
 * Flash: {fig["weight_bytes"]} bytes of weights (const arrays) + about {fig["code_bytes"]} bytes of code.
 * RAM: {fig["arena_bytes"]} bytes of activation arena + {model.scratch_bytes} bytes of patch buffers, all
 * static (.bss): {prefix}_predict is not reentrant. Stack: a few dozen bytes.
 * Link with the math library where fmaf lives there (-lm); on x86 -mfma makes fmaf one instruction.
 */
#ifndef {up}_MODEL_H
#define {up}_MODEL_H
#include <stdint.h>

#define {up}_INPUT_HEIGHT {h}
#define {up}_INPUT_WIDTH {w}
#define {up}_INPUT_CHANNELS {c}
#define {up}_INPUT_BYTES {h * w * c}
#define {up}_CLASSES {len(class_names)}
#define {up}_WEIGHT_BYTES {fig["weight_bytes"]}
#define {up}_ARENA_BYTES {fig["arena_bytes"]}

#ifdef __cplusplus
extern "C" {{
#endif

extern const char *const {prefix}_class_names[{up}_CLASSES];

/* The class of one image (pixels: {up}_INPUT_BYTES bytes as above); writes the {up}_CLASSES logits to
 * `logits` unless it is NULL. */
int {prefix}_predict(const uint8_t *pixels, float *logits);

#ifdef __cplusplus
}}
#endif
#endif
"""


# --- from a model file ----------------------------------------------------------------------


def load_plan(source: Path) -> tuple[ModelInfo, Plan]:
    """The model's info and plan, from a packed model (.cpnas) or a trained checkpoint's Child
    (.safetensors, packed on the way as `cpnas export` packs it). A version-1 file has no exact
    1-bit semantics to write as C: one UserError, before any loading notice."""
    source = Path(source)
    if source.suffix not in (".cpnas", ".safetensors"):
        raise UserError(
            f"a C model is exported from trained weights, and {source} holds none",
            "pass best.safetensors or last.safetensors written by `cpnas train`, or a model.cpnas",
        )
    info = (read_packed(source) if source.suffix == ".cpnas" else read_model(source))[0]
    if not info.spec.exact:
        raise UserError(
            f"{source} predates exact 1-bit semantics (format version 1): it has no C form",
            "train again with this cpnas, then export",
        )
    if info.spec.real_inputs:
        raise UserError(
            f"{source} feeds real-valued activations into 1-bit convs (CP-NAS*/**: train.real_depthwise, "
            "train.real_preprocess): the C kernels take 1-bit inputs only",
            "export it as model.cpnas and run it on torch, or train without those keys",
        )
    if source.suffix == ".cpnas":
        info, net = load_packed(source)
    else:
        with tempfile.TemporaryDirectory() as folder:
            _, child, _ = load_model(source)
            write_packed(Path(folder) / "model.cpnas", info, child, source=str(source))
            info, net = load_packed(Path(folder) / "model.cpnas")
    return info, lower(net, info.genotype, (info.spec.in_channels, info.spec.image_size, info.spec.image_size))
