"""Building and running exported C models in the tests: a harness program (images on stdin, labels and
logits on stdout), compilers and emulators found or installed with apt-get, skipped with the reason
in the test report where neither works."""

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from cpnas_cli.engine.deploy.c_source import CModel

STRICT = ["-std=c99", "-O2", "-Wall", "-Wextra", "-Werror"]
CORTEX_M7 = ["-mcpu=cortex-m7", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv5-d16"]
# Reads n images (the model's input bytes each) on stdin; writes each one's class (int32) and logits.
HARNESS = r"""
#include <stdio.h>
#include <stdlib.h>
#include "m_model.h"

int main(int argc, char **argv)
{
    static uint8_t pixels[M_INPUT_BYTES];
    float logits[M_CLASSES];
    int n = argc > 1 ? atoi(argv[1]) : 0;
    for (int i = 0; i < n; i++) {
        if (fread(pixels, 1, M_INPUT_BYTES, stdin) != M_INPUT_BYTES)
            return 1;
        int32_t label = m_predict(pixels, logits);
        fwrite(&label, sizeof label, 1, stdout);
        fwrite(logits, sizeof *logits, M_CLASSES, stdout);
    }
    return 0;
}
"""


def require(tool: str, package: str) -> str:
    """The path of `tool`, installing Debian's `package` with apt-get where it is missing and this runs
    as root; otherwise the test is skipped with the reason (shown by pytest -rs, on in pyproject)."""
    if shutil.which(tool) is None and os.geteuid() == 0 and shutil.which("apt-get"):
        install = ["apt-get", "install", "-y", "-q", package]
        if subprocess.run(install, capture_output=True, timeout=600).returncode != 0:  # stale package lists?
            subprocess.run(["apt-get", "update", "-q"], capture_output=True, timeout=600)
            subprocess.run(install, capture_output=True, timeout=600)
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} not found and apt-get could not install {package} (not root, or no apt)")
    return path


def write_model(model: CModel, folder: Path) -> Path:
    """m_model.c and m_model.h (prefix m) in `folder`; returns the .c path."""
    (folder / "m_model.h").write_text(model.header)
    (folder / "m_model.c").write_text(model.source)
    return folder / "m_model.c"


def build_harness(model: CModel, folder: Path, compiler: str = "gcc", flags: tuple[str, ...] = ()) -> Path:
    """The harness linked with the model, compiled with STRICT flags plus `flags`."""
    source = write_model(model, folder)
    (folder / "harness.c").write_text(HARNESS)
    exe = folder / f"harness-{Path(compiler).name}"
    subprocess.run([compiler, *STRICT, *flags, "-o", str(exe), str(folder / "harness.c"), str(source), "-lm"],
                   check=True, capture_output=True, text=True)  # fmt: skip
    return exe


def run_harness(exe: Path, pixels: torch.Tensor, classes: int, emulator: tuple[str, ...] = ()):
    """(labels, logits) of the images `pixels` (N, H, W, C uint8) through the compiled model."""
    out = subprocess.run([*emulator, str(exe), str(len(pixels))], input=pixels.contiguous().numpy().tobytes(),
                         capture_output=True, check=True, timeout=600).stdout  # fmt: skip
    rows = np.frombuffer(out, dtype=np.int32).reshape(len(pixels), 1 + classes)
    return torch.from_numpy(rows[:, 0].astype(np.int64)), torch.from_numpy(rows[:, 1:].copy().view(np.float32))
