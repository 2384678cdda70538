"""Unpickling restricted to plain data and numpy arrays, for CIFAR-10's pickled batches.

pickle.load can call any importable function named in the file, so a doctored file in a
--data-dir could run code. CIFAR batches only hold dicts, lists, bytes and uint8 arrays; the
allow-list is exactly what numpy (1.x and 2.x, protocols 2-5) and Python 2's cPickle emit for those.

A damaged file can also make the C unpickler allocate what its bytes claim before reading them:
a byte flipped into a BYTEARRAY8 opcode reads the next 8 bytes as a length of terabytes, and when
that allocation fails, CPython (3.11) frees the half-built bytearray before setting its export
count, so it prints `SystemError: deallocated bytearray object has exported buffers` straight to
stderr beside our one-line error. A memo index is a size too (the memo list grows to it). So the
opcodes are walked first (pickletools, pure Python, reading from memory) and every counted
argument is checked against the bytes that remain, every memo index against the opcodes so far;
only then does the unpickler run.
"""

import io
import pickle
import pickletools

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
MEMO_WRITES = {"PUT", "BINPUT", "LONG_BINPUT"}


class DataOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: not plain data")
        return super().find_class(module, name)


def check_sizes(data: bytes) -> None:
    """Walk the opcodes up to STOP: a counted argument longer than what remains is pickletools'
    ValueError ("expected N bytes in a bytearray8, but only M remain"), a memo index beyond the
    opcodes seen so far an UnpicklingError; nothing is allocated from a length the file claims."""
    for count, (opcode, index, position) in enumerate(pickletools.genops(data)):
        if opcode.name in MEMO_WRITES and isinstance(index, int) and index > count:
            raise pickle.UnpicklingError(
                f"memo index {index} at byte {position} is beyond the {count} opcodes before it"
            )


def load_data_pickle(data: bytes) -> object:
    """Unpickle a whole file's bytes with bytes keys, as CIFAR's Python 2 pickles need (encoding='bytes')."""
    check_sizes(data)
    return DataOnlyUnpickler(io.BytesIO(data), encoding="bytes").load()
