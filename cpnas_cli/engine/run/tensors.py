"""An optimizer's state as flat named tensors (for safetensors checkpoints) and back.

Keys are `<prefix>/<parameter name>/<state key>`, so a state saved from one process loads into an
optimizer built afresh over the same module in another, which is what an exact resume needs.
"""

import torch
import torch.nn as nn


def optimizer_tensors(prefix: str, module: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    tensors = {}
    for name, p in module.named_parameters():
        for key, value in optimizer.state.get(p, {}).items():
            tensors[f"{prefix}/{name}/{key}"] = torch.as_tensor(value)
    return tensors


def load_optimizer_tensors(
    prefix: str, module: nn.Module, optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor]
) -> None:
    for name, p in module.named_parameters():
        start = f"{prefix}/{name}/"
        state = {k[len(start) :]: v for k, v in tensors.items() if k.startswith(start)}
        if state:  # buffers take the parameter's memory layout; scalars (Adam's step) stay as saved
            optimizer.state[p] = {
                k: torch.empty_like(p).copy_(v) if v.shape == p.shape else v.clone() for k, v in state.items()
            }
