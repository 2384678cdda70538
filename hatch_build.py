"""Hatchling build hook: compile the native 1-bit kernel library on every install.

`pip install .` and `pip install -e .` (hence `make install`) run it. It compiles
cpnas_cli/engine/deploy/native/src/*.c with $CC or gcc into the package folder; a wheel then
carries the .so (and a platform tag). If compilation fails the install still succeeds: one line
says so, and cpnas runs its 1-bit convs on the torch path.
"""

import importlib.util
import sys
from pathlib import Path

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

NATIVE = Path("cpnas_cli/engine/deploy/native")


def _native_build_module(root: Path):
    """build.py loaded by path: the package itself is not importable while it is being built."""
    spec = importlib.util.spec_from_file_location("cpnas_native_build", root / NATIVE / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class NativeKernelsHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict) -> None:
        native = _native_build_module(Path(self.root))
        try:
            library = native.build()
        except native.BuildError as error:
            print(f"cpnas: native kernels not built, the torch path will be used ({error})", file=sys.stderr)
            return
        if version != "editable":  # an editable install imports the source folder, .so included
            build_data["force_include"][str(library)] = str(NATIVE / library.name)
            build_data["pure_python"] = False
            build_data["infer_tag"] = True
