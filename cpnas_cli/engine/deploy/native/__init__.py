"""The native XNOR-popcount engine: compiled 1-bit conv kernels (src/), their ctypes binding
(library.py) and their build (build.py). See docs/native.md."""
