"""A network's weights and its optimizer's state as flat named tensors (safetensors checkpoints) and back.

Keys are `<name>/<state_dict key>` for weights and buffers and `<name>.optimizer/<parameter
name>/<state key>` for the optimizer, so a state saved from one process loads into networks and
optimizers built afresh in another, which is what an exact resume needs.
"""

from collections.abc import Mapping

import torch
import torch.nn as nn


def module_tensors(name: str, module: nn.Module) -> dict[str, torch.Tensor]:
    return {f"{name}/{k}": v for k, v in module.state_dict().items()}


def load_module_tensors(name: str, module: nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    prefix = f"{name}/"
    module.load_state_dict({k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)})


def optimizer_tensors(name: str, module: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    tensors = {}
    for param_name, p in module.named_parameters():
        for key, value in optimizer.state.get(p, {}).items():
            tensors[f"{name}.optimizer/{param_name}/{key}"] = torch.as_tensor(value)
    return tensors


def load_optimizer_tensors(
    name: str, module: nn.Module, optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor]
) -> None:
    for param_name, p in module.named_parameters():
        start = f"{name}.optimizer/{param_name}/"
        state = {k[len(start) :]: v for k, v in tensors.items() if k.startswith(start)}
        if state:  # buffers take the parameter's device and layout; scalars (Adam's step) stay as saved
            optimizer.state[p] = {
                k: torch.empty_like(p).copy_(v) if v.shape == p.shape else v.clone() for k, v in state.items()
            }


def trained_tensors(
    nets: Mapping[str, nn.Module], optimizers: Mapping[str, torch.optim.Optimizer]
) -> dict[str, torch.Tensor]:
    """Weights and optimizer state of every network, by role (child, parent, ...)."""
    tensors = {}
    for role, net in nets.items():
        tensors.update(module_tensors(role, net))
        tensors.update(optimizer_tensors(role, net, optimizers[role]))
    return tensors


def load_trained_tensors(
    nets: Mapping[str, nn.Module], optimizers: Mapping[str, torch.optim.Optimizer], tensors: dict[str, torch.Tensor]
) -> None:
    for role, net in nets.items():
        load_module_tensors(role, net, tensors)
        load_optimizer_tensors(role, net, optimizers[role], tensors)
