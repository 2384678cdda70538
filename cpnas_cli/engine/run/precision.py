"""Automatic mixed precision and cuDNN autotuning on CUDA; the CPU path exactly as it was.

`search.amp` / `train.amp`: auto (on for CUDA, off elsewhere), true (CUDA only), false. On, the
forward passes and losses run under torch.autocast in bfloat16 where the GPU has it, else in
float16 with a GradScaler per optimizer. What autocast lowers is the full-precision part: the
whole Parent, and the Child's stem, BatchNorms, poolings, shortcuts and classifier. The Child's
1-bit convolutions stay float32 (binary.BinaryConv2d leaves autocast): their ±1 sums must stay
exact integers, which bfloat16 (8 bits of mantissa) would round from 257 on. Weights, optimizer
state and checkpoints stay float32.

On CUDA, cudnn.benchmark is switched on: each conv shape is timed once and its fastest algorithm
kept. A sampled architecture meets a handful of shapes, all of them again in later samples. CUDA
runs are not bit-reproducible in any case (atomic adds in cuDNN's backward kernels); a float16
run resumes with a fresh loss scale (its first few steps may be skipped as overflowing).

Off (every CPU run), `autocast()` is a null context and `minimize` is the plain sequence
backward, clip, step: not one operation differs from a build without this module.
"""

from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext

import torch
import torch.nn as nn

from cpnas_cli.errors import UserError


class Precision:
    """How one run's networks compute: float32 (dtype None) or autocast to `dtype`."""

    def __init__(self, device: torch.device, dtype: torch.dtype | None):
        self.device, self.dtype = device, dtype
        self.scalers: dict[str, torch.amp.GradScaler] = {}  # float16 only: one per optimizer

    @property
    def enabled(self) -> bool:
        return self.dtype is not None

    def autocast(self) -> AbstractContextManager:
        if self.dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def minimize(
        self,
        key: str,
        loss: torch.Tensor,
        optimizer: torch.optim.Optimizer,
        parameters: Callable[[], Iterable[nn.Parameter]],
        grad_clip: float,
    ) -> None:
        """backward, clip the gradient norm of `parameters()` (called after backward), step; under
        float16 through the GradScaler of `key`, unscaled before the clip."""
        if self.dtype != torch.float16:
            loss.backward()
            nn.utils.clip_grad_norm_(parameters(), grad_clip)
            optimizer.step()
            return
        scaler = self.scalers.setdefault(key, torch.amp.GradScaler(self.device.type))
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_(parameters(), grad_clip)
        scaler.step(optimizer)
        scaler.update()


def precision(setting: bool | str, device: torch.device, key: str) -> Precision:
    """The Precision that `key` (search.amp or train.amp: true, false or auto) asks for on `device`."""
    if setting is True and device.type != "cuda":
        raise UserError(f"{key}=true needs a CUDA device, not {device}", f"use --device cuda, or {key}=auto")
    if device.type != "cuda":
        return Precision(device, None)
    torch.backends.cudnn.benchmark = True
    if setting is False:
        return Precision(device, None)
    return Precision(device, torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)
