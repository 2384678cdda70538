"""Every parser fuzzed (tests/fuzz_targets.py): any input loads or is a UserError, writes nothing,
prints nothing on stderr; and the damaged inputs that once crashed a parser, kept as regressions."""

import json
import pickle
import pickletools
import struct
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from tests.fuzz_targets import TARGETS, file_bytes, outcome
from tests.genotypes import DARTS_V2

EXAMPLES = 200  # per target, a few seconds each; benchmarks/fuzz.py runs many more


@pytest.mark.parametrize("name", TARGETS)
def test_any_input_loads_or_is_a_user_error(name):
    target = TARGETS[name]

    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(target.inputs())
    def loads_or_refuses(data):
        with tempfile.TemporaryDirectory() as folder:
            outcome(target, data, Path(folder))

    loads_or_refuses()


def _with_network(kind: str, **changes) -> bytes:
    """A valid model file (`kind`: model or packed) whose stored network spec has `changes`."""
    valid = file_bytes(kind)
    (length,) = struct.unpack_from("<Q", valid)
    header = json.loads(valid[8 : 8 + length])
    meta = header["__metadata__"]
    if kind == "model":
        meta["network"] = json.dumps({**json.loads(meta["network"]), **changes})
    else:
        manifest = json.loads(meta["manifest"])
        meta["manifest"] = json.dumps({**manifest, "network": {**manifest["network"], **changes}})
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + valid[8 + length :]


def _tuple_made_bytearray8() -> bytes:
    """A CIFAR batch whose first TUPLE opcode became BYTEARRAY8: the next 8 bytes read as a length
    of terabytes (CPython printed `SystemError: deallocated bytearray object has exported buffers`
    as the failed allocation was freed)."""
    valid = pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1], b"batch_label": b"x"})
    at = next(position for op, _, position in pickletools.genops(valid) if op.name == "TUPLE")
    return valid[:at] + pickle.BYTEARRAY8 + valid[at + 1 :]


CRASHED = [  # (target, input): each once escaped its parser as a traceback, or printed on stderr
    ("--set value", b"name=\x1f"),  # yaml's ReaderError
    ("events.jsonl", b'{"kind": "header", "schema": null, "run": "r"}\n'),  # None > SCHEMA
    ("events.jsonl", b'{"kind": "header", "run": "r"}\n{"kind": "status", "state": [0]}\n'),  # unhashable
    ("events.jsonl", b'{"kind": "header", "run": "r", "edges": 3}\n'),  # len(3)
    ("events.jsonl", b'{"kind": "header", "run": "r", "config": {"search": null}}\n'),  # None.get (campaign 2)
    ("ablation.json", b""),  # JSONDecodeError
    ("ablation.json", b"\x80"),  # UnicodeDecodeError
    ("ablation.json", b'{"settings": [{"label": "cp", "strategy": "cp"}], "seeds": [0]}'),  # KeyError: axis
    ("ablation.json", b'{"axis": "strategy", "settings": [{"strategy": "cp"}], "seeds": [0]}'),  # Setting(**)
    ("ablation.json", b'{"axis": "strategy", "settings": [{"label": "cp", "strategy": "cp"}], "seeds": []}'),
    ("ablation results.json", b'{"units": "0"}'),  # AttributeError
    ("ablation results.json", b"{}"),  # KeyError: units
    ("ablation results.json", b'""'),  # TypeError
    ("ablation results.json", b"\x80"),  # UnicodeDecodeError
    ("correlate.json", b"[]"),  # CorrelationPlan(**[]): TypeError (found by auditing issue 19's list)
    ("correlate.json", b'{"architectures": 4, "beta_ps": [2], "top_k": 1, "resamples": 9}'),  # KeyError: seeds
    ("correlate results.json", b'{"architectures": [{"seed": 0}]}'),  # KeyError: index, on resume
    ("correlate results.json", b"\xff"),  # UnicodeDecodeError
    ("correlate scores.json", b'{"architectures": []}'),  # KeyError: acc_child
    ("checkpoint state.json", b"\x80"),  # UnicodeDecodeError
    ("checkpoint state.json", b"[]"),  # TypeError
    ("checkpoint state.json", b'{"weights": "../../../etc/passwd"}'),  # read outside the checkpoint
    ("IDX", b"\x00\x00\x08\x03" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x03" * 2),  # a zero dim: frombuffer
    ("genotype JSON", bytes(range(256))),  # UnicodeDecodeError (issue 19's `cpnas profile <binary>`)
    ("CIFAR batch", _tuple_made_bytearray8()),  # a stray SystemError line on stderr
    ("genotype DARTS string", DARTS_V2.replace("normal_concat=[2, 3, 4, 5]", "normal_concat=5").encode()),  # TypeError
]


@pytest.mark.parametrize("name, data", CRASHED, ids=[f"{n}:{d[:24]!r}" for n, d in CRASHED])
def test_inputs_that_once_crashed_are_refused(name, data, tmp_path):
    # the dashboard skips a bad event with a notice and shows the rest: the log still "loads"
    assert outcome(TARGETS[name], data, tmp_path) == ("loaded" if name == "events.jsonl" else "refused")


@pytest.mark.parametrize("kind, target", [("model", "model safetensors"), ("packed", "model.cpnas")])
@pytest.mark.parametrize(
    "changes", [{"channels": None}, {"image_size": None}, {"channels": 10**9}, {"quantizer": "nope"}, {"cells": -1}]
)
def test_a_model_file_with_a_damaged_network_spec_is_refused(kind, target, changes, tmp_path):
    assert outcome(TARGETS[target], _with_network(kind, **changes), tmp_path) == "refused"
