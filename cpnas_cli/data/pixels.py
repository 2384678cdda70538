"""The one mapping from stored uint8 pixels to network inputs: [0, 255] -> [-1, 1].

A symmetric range suits 1-bit networks: the first sign() splits pixels at mid-gray, and 0.0
(the fill used by padding and cutout) is the neutral value.
"""

import torch


def normalize(images_uint8: torch.Tensor) -> torch.Tensor:
    """float32 x / 127.5 - 1, on the input's device (0 -> -1.0, 255 -> 1.0 exactly)."""
    return images_uint8.to(torch.float32).div_(127.5).sub_(1.0)
