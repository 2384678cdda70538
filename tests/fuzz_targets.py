"""Every parser of cpnas as a fuzz target: a valid input to start from, hypothesis strategies that
damage it (bytes flipped, cut, inserted; JSON and YAML values replaced or dropped; safetensors
headers and metadata rewritten), and the parse itself. The property, for every target: the input
loads, or the parse raises UserError (the CLI's one line and exit 2); nothing else escapes, nothing
is written, and nothing is printed on stderr (by Python or by C code) but a Notice.
tests/test_fuzz.py checks it with a few hundred inputs per target, benchmarks/fuzz.py with many more."""

import contextlib
import io
import json
import os
import pickle
import struct
import sys
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import torch
from hypothesis import strategies as st

from cpnas_cli import config as configs
from cpnas_cli.data.cifar import _read_batch
from cpnas_cli.data.idx import read_idx, write_idx
from cpnas_cli.data.image_files import decode_centre
from cpnas_cli.engine.ablation.correlation import Correlation
from cpnas_cli.engine.ablation.correlation_plan import make_plan as make_correlation_plan
from cpnas_cli.engine.ablation.correlation_results import read_architectures, read_scores
from cpnas_cli.engine.ablation.plan import make_plan
from cpnas_cli.engine.ablation.results import read_results
from cpnas_cli.engine.ablation.runner import Ablation
from cpnas_cli.engine.deploy.packing import load_packed, write_packed
from cpnas_cli.engine.nn.network import NetworkSpec
from cpnas_cli.engine.run.checkpoint import load_checkpoint, save_checkpoint
from cpnas_cli.engine.train.model_file import ModelInfo, load_model, save_model
from cpnas_cli.errors import Notice, UserError
from cpnas_cli.events import EventReader, SchemaError
from cpnas_cli.runs import LOCK, release_writer
from cpnas_cli.space import genotype as genotypes
from cpnas_cli.tui.state import RunState, Unreadable
from tests.genotypes import DARTS_V2

JSON_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=True)
    | st.text(max_size=12)
    | st.sampled_from(["", "zero", "skip", "sep_conv_3x3", "float32", "F32", "U8", "header"])
)
JSON_VALUES = st.recursive(
    JSON_LEAVES, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
)


@st.composite
def damaged_bytes(draw, valid: bytes) -> bytes:
    """`valid` with 1-4 damages: a byte changed, the tail cut, bytes inserted or deleted."""
    data = bytearray(valid)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["set", "cut", "insert", "delete"]))
        if action == "set" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        elif action == "cut":
            del data[at:]
        elif action == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        else:
            del data[at : at + draw(st.integers(1, 64))]
    return bytes(data)


def _paths(value, here=()):
    """Every path (a tuple of keys and indexes) into a JSON value, the root included."""
    yield here
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        yield from _paths(child, (*here, key))


@st.composite
def damaged_json(draw, valid):
    """A deep copy of the JSON value `valid` with one value replaced, or one key or item dropped."""
    value = json.loads(json.dumps(valid))
    path = draw(st.sampled_from(list(_paths(value))))
    if not path:
        return draw(JSON_VALUES)
    parent = value
    for key in path[:-1]:
        parent = parent[key]
    if draw(st.booleans()):
        parent[path[-1]] = draw(JSON_VALUES)
    else:
        del parent[path[-1]]
    return value


def json_bytes(value) -> bytes:
    return json.dumps(value).encode()


def damaged_json_bytes(valid) -> st.SearchStrategy[bytes]:
    return damaged_json(valid).map(json_bytes) | damaged_bytes(json_bytes(valid)) | st.binary(max_size=64)


@st.composite
def damaged_safetensors(draw, valid: bytes) -> bytes:
    """A safetensors file with its header JSON damaged (dtypes, shapes, offsets, the metadata
    strings and the JSON inside them), its header length wrong, or its bytes damaged."""
    (length,) = struct.unpack_from("<Q", valid)
    header, body = json.loads(valid[8 : 8 + length]), valid[8 + length :]
    kind = draw(st.sampled_from(["header", "metadata", "length", "bytes"]))
    if kind == "header":
        header = draw(damaged_json(header))
    elif kind == "metadata":
        key = draw(st.sampled_from(sorted(header.get("__metadata__") or {"format": ""})))
        header.setdefault("__metadata__", {})
        inner = header["__metadata__"].get(key, "")
        try:
            header["__metadata__"][key] = json.dumps(draw(damaged_json(json.loads(inner))))
        except json.JSONDecodeError:  # a plain string field (format, version, dataset)
            header["__metadata__"][key] = draw(st.text(max_size=12))
    elif kind == "bytes":
        return draw(damaged_bytes(valid))
    raw = json.dumps(header).encode()
    size = draw(st.integers(0, 2**64 - 1)) if kind == "length" else len(raw)
    return struct.pack("<Q", size) + raw + body


@dataclass(frozen=True)
class Target:
    """`parse(path)` reads the file at `path` as cpnas does; `inputs` makes that file's bytes."""

    name: str
    file_name: str
    inputs: Callable[[], st.SearchStrategy[bytes]]
    parse: Callable[[Path], object]
    beside: Callable[[Path], None] = lambda folder: None  # writes the files the parse also reads


def _files(folder: Path) -> list:
    """The files and their times; the writer lock aside: a writer that accepted its input takes it."""
    return sorted((p.name, p.stat().st_mtime_ns) for p in folder.iterdir() if p.name != LOCK)


@contextlib.contextmanager
def _stderr_caught(printed: list[str]):
    """Append to `printed` what is written to stderr meanwhile, through sys.stderr or straight to
    file descriptor 2 (C code: CPython's PyErr_Print), and every warning the CLI would show other
    than a Notice (it prints those as their one yellow line)."""
    python_stderr, saved = sys.stderr, os.dup(2)
    with tempfile.TemporaryFile() as c_stderr, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", Notice)
        sys.stderr = io.StringIO()
        os.dup2(c_stderr.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            text, sys.stderr = sys.stderr.getvalue(), python_stderr
            c_stderr.seek(0)
            text += c_stderr.read().decode("utf-8", "replace")
            hidden = (Notice, DeprecationWarning, PendingDeprecationWarning)  # the CLI hides the last two
            text += "".join(
                f"{w.category.__name__}: {w.message}\n" for w in caught if not issubclass(w.category, hidden)
            )
            if text:
                printed.append(text)


def outcome(target: Target, data: bytes, folder: Path) -> str:
    """ "loaded" or "refused" (a UserError); anything else escapes. Fails if the parse wrote a file
    or printed on stderr."""
    path = folder / target.file_name
    path.write_bytes(data)
    target.beside(folder)
    before, printed = _files(folder), []
    with _stderr_caught(printed):
        try:
            target.parse(path)
            result = "loaded"
        except UserError:
            result = "refused"
    after = _files(folder)
    assert after == before, f"the parse wrote: {before} -> {after}"
    assert not printed, f"the parse printed on stderr: {printed[0][:300]!r}"
    return result


# --- valid inputs to start from ----------------------------------------------------------------

TINY_SPEC = NetworkSpec(in_channels=1, classes=3, channels=4, cells=2, image_size=8, reductions=[1])


@cache
def _model_info() -> ModelInfo:
    return ModelInfo(genotypes.from_darts(DARTS_V2), TINY_SPEC, ["a", "b", "c"], "embedded", {"epochs": 1})


@cache
def file_bytes(kind: str) -> bytes:
    """A valid model checkpoint, packed model or checkpoint weights file, made once."""
    import tempfile

    torch.manual_seed(0)
    info = _model_info()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "file"
        if kind == "model":
            save_model(path, info, TINY_SPEC.build(info.genotype, True), TINY_SPEC.build(info.genotype, False))
        elif kind == "packed":
            write_packed(path, info, TINY_SPEC.build(info.genotype, True).eval())
        else:
            save_checkpoint(Path(folder), {"net/w": torch.ones(2, 3)}, {"step": 1, "events_offset": 0}, tag="1")
            path = Path(folder) / "weights-1.safetensors"
        return path.read_bytes()


def _genotype_dict() -> dict:
    return genotypes.to_dict(genotypes.from_darts(DARTS_V2))


def _idx_bytes() -> bytes:
    import gzip
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "x.idx.gz"
        write_idx(path, torch.arange(2 * 3 * 3, dtype=torch.uint8).view(2, 3, 3))
        return gzip.decompress(path.read_bytes())


def _cifar_batch() -> dict:
    return {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1], b"batch_label": b"x"}


def _png_bytes() -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (5, 3), (10, 20, 30)).save(out, format="PNG")
    return out.getvalue()


def _events() -> list[dict]:
    return [
        {"kind": "header", "schema": 1, "run": "r", "config": configs.to_dict(configs.Config())},
        {"kind": "status", "state": "started", "t": 1.0},
        {"kind": "sample", "n": 1, "arch": {"normal": [["zero"]]}, "acc_child": 40, "acc_parent": 50, "z": 0.1},
        {"kind": "epoch", "epoch": 1, "loss": 1.0, "test_acc_child": 30.0},
    ]


def _ablation_plan() -> dict:
    return make_plan(["cp", "random"], [0.5], seeds=1).to_dict()


def _correlation_plan() -> dict:
    return make_correlation_plan(4, [0.0, 2.0], seeds=2).to_dict()


def _correlation_rows() -> dict:
    row = {"seed": 0, "index": 0, "acc_child": 40.5, "acc_parent": 51.0, "test_acc_child": 70.0}
    return {
        "architectures": [{**row, "test_acc_parent": 80.0, "train_run": "seed0/arch0", "genotype": _genotype_dict()}]
    }


def _correlation_scores() -> dict:
    arch = {"normal": ["skip_connect", "max_pool_3x3"], "reduce": ["zero", "sep_conv_3x3"]}
    return {"architectures": [arch, arch], "acc_child": [40.0, 41.5], "acc_parent": [50, 52.25]}


# --- the parses ----------------------------------------------------------------------------------


def _read_events(path: Path) -> RunState:
    """As the dashboard reads a log: an Unreadable event is skipped with a notice (tui/app.py),
    a too new schema is the CLI's one line (cli/watch.py); then what the panels ask."""
    state = RunState()
    try:
        events = EventReader(path).read()[0]
    except SchemaError as err:
        raise UserError(str(err)) from None
    for event in events:
        with contextlib.suppress(Unreadable):
            state.apply(event)
    for cell in state.cells:
        for edge in range(len(state.edges)):
            state.edge_rows(cell, edge)
            state.margin(cell, edge)
    (state.ranking_source(), state.eta(0.0), *(state.genotype_nodes(cell) for cell in state.cells))
    return state


def _set_value(path: Path) -> configs.Config:
    return configs.load_config("quick", sets=[path.read_bytes().decode("utf-8", "surrogateescape")])


def _checkpoint_state(folder: Path) -> None:
    state = {"step": 1, "version": 1, "weights": "weights-1.safetensors"}
    (folder / "state.json").write_text(json.dumps(state))


def _checkpoint_weights(folder: Path) -> None:
    (folder / "weights-1.safetensors").write_bytes(file_bytes("checkpoint"))


def _open_ablation(path: Path) -> None:
    Ablation.open(path.parent)
    release_writer(path.parent)  # opened to run, it holds the writer lock; a campaign opens thousands


def _ablation_base(folder: Path) -> None:
    (folder / "base.yaml").write_text(configs.dump_yaml(configs.Config()))


def _ablation_results(path: Path):
    return read_results(path.parent)


def _open_correlation(path: Path) -> None:
    Correlation.open(path.parent)


def _cifar(path: Path):
    return _read_batch(path, 10, "fix")


def _targets() -> list[Target]:
    default_yaml = configs.dump_yaml(configs.Config()).encode()
    yaml_inputs = lambda: damaged_bytes(default_yaml) | st.text(max_size=80).map(str.encode)  # noqa: E731
    events = _events()
    log = b"".join(json_bytes(e) + b"\n" for e in events)
    return [
        Target("genotype JSON", "genotype.json", lambda: damaged_json_bytes(_genotype_dict()), genotypes.load),
        Target(
            "genotype DARTS string",
            "genotype.txt",
            lambda: damaged_bytes(DARTS_V2.encode()) | st.text(max_size=60).map(lambda t: f"Genotype({t}".encode()),
            genotypes.load,
        ),
        Target("preset YAML", "preset.yaml", yaml_inputs, configs.load_config),
        Target(
            "--set value",
            "set",
            lambda: (
                st.sampled_from(configs.known_keys()).flatmap(
                    lambda k: st.text(max_size=20).map(lambda v: f"{k}={v}".encode())
                )
                | st.text(max_size=30).map(str.encode)
            ),
            _set_value,
        ),
        Target("run config.yaml", "config.yaml", yaml_inputs, configs.load_run_config),
        Target(
            "checkpoint state.json",
            "state.json",
            lambda: damaged_json_bytes({"step": 1, "version": 1, "weights": "weights-1.safetensors"}),
            lambda p: load_checkpoint(p.parent),
            _checkpoint_weights,
        ),
        Target(
            "checkpoint safetensors",
            "weights-1.safetensors",
            lambda: damaged_safetensors(file_bytes("checkpoint")),
            lambda p: load_checkpoint(p.parent),
            _checkpoint_state,
        ),
        Target("model safetensors", "best.safetensors", lambda: damaged_safetensors(file_bytes("model")), load_model),
        Target("model.cpnas", "model.cpnas", lambda: damaged_safetensors(file_bytes("packed")), load_packed),
        Target(
            "events.jsonl",
            "events.jsonl",
            lambda: (
                damaged_bytes(log)
                | st.lists(st.sampled_from(events).flatmap(damaged_json), max_size=5).map(
                    lambda lines: b"".join(json_bytes(e) + b"\n" for e in lines)
                )
            ),
            _read_events,
        ),
        Target("IDX", "images.idx", lambda: damaged_bytes(_idx_bytes()), lambda p: read_idx(p, 3, "fix")),
        Target("CIFAR batch", "data_batch_1", lambda: damaged_bytes(pickle.dumps(_cifar_batch())), _cifar),
        Target("image-folder image", "image.png", lambda: damaged_bytes(_png_bytes()), lambda p: decode_centre(p, 4)),
        Target(
            "ablation.json",
            "ablation.json",
            lambda: damaged_json_bytes(_ablation_plan()),
            _open_ablation,
            _ablation_base,
        ),
        Target(
            "ablation results.json",
            "results.json",
            lambda: damaged_json_bytes({"units": [{"setting": "cp", "seed": 0, "strategy": "cp"}]}),
            _ablation_results,
        ),
        Target(
            "correlate.json",
            "correlate.json",
            lambda: damaged_json_bytes(_correlation_plan()),
            _open_correlation,
            _ablation_base,
        ),
        Target(
            "correlate results.json",
            "results.json",
            lambda: damaged_json_bytes(_correlation_rows()),
            lambda path: read_architectures(path.parent),
        ),
        Target(
            "correlate scores.json",
            "scores.json",
            lambda: damaged_json_bytes(_correlation_scores()),
            lambda path: read_scores(path, 2),
        ),
    ]


TARGETS = {t.name: t for t in _targets()}
