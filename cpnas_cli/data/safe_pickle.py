"""Unpickling restricted to plain data and numpy arrays, for CIFAR-10's pickled batches.

pickle.load can call any importable function named in the file, so a doctored file in a
--data-dir could run code. CIFAR batches only hold dicts, lists, bytes and uint8 arrays; the
allow-list is exactly what numpy (1.x and 2.x, protocols 2-5) and Python 2's cPickle emit for those.
"""

import pickle
from typing import BinaryIO

ALLOWED_GLOBALS = {
    ("_codecs", "encode"),  # bytes pickled by Python 3 at protocol 2
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),  # protocol 5 out-of-band-capable arrays
    ("numpy._core.numeric", "_frombuffer"),
}


class DataOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: not plain data")
        return super().find_class(module, name)


def load_data_pickle(file: BinaryIO) -> object:
    """Unpickle with bytes keys, as CIFAR's Python 2 pickles need (encoding='bytes')."""
    return DataOnlyUnpickler(file, encoding="bytes").load()
