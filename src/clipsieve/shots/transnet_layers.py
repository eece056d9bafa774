"""Two of TransNetV2's layers swapped for equivalent ones that PyTorch runs faster on a CPU.

Profiled with ``torch.profiler`` on one thread (a 175-frame window, the hybrid detector's
largest), two layers of the package's model cost far more than their arithmetic:

* **Temporal convolutions** (the ``(3, 1, 1)`` half of each separable convolution). PyTorch's
  CPU convolution picks its slow im2col path over oneDNN for a kernel whose last two sizes are 1
  at batch 1 on one thread (a rule written for 1x1 image convolutions: ``use_mkldnn`` in
  ``aten/src/ATen/native/Convolution.cpp``). The undilated one of the four in every block took
  that path in float32: 30-80 ms each against 10-25 ms through oneDNN. The same weights applied
  as a 2-D convolution over (time, pixels) with a ``(3, 1)`` kernel always go to oneDNN.
* **Spatial average pooling** after each block. In bfloat16 the pooled tensor arrives in
  oneDNN's channels-last layout, and ``avg_pool3d`` first copies it to the standard layout: on
  the first block (64 x 175 x 27 x 48 values) that copy took 120 of the pool's 176 ms, 15 % of
  the window. Averaging the four strided 2x2 neighbours in float32 (the pool's own precision
  under autocast) needs no copy.

Measured on this machine's AVX-512 BF16 CPU, a 175-frame window: float32 1.96 -> 1.74 s,
bfloat16 0.96 -> 0.84 s. The weights are the package's own (shared, not copied). Float32
probabilities move by at most 6e-8 (another convolution algorithm's rounding); bfloat16's stay
within the error :data:`clipsieve.shots.hybrid.BF16_MARGIN` is sized for.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional


class TemporalConv(nn.Module):
    """A ``(k, 1, 1)`` :class:`~torch.nn.Conv3d` computed as a ``(k, 1)`` 2-D convolution over
    (time, height x width): the same sums, through oneDNN whatever the batch and thread count."""

    def __init__(self, conv: nn.Conv3d) -> None:
        super().__init__()
        if not _is_temporal_conv(conv):
            raise ValueError(f"not a (k, 1, 1) convolution, stride 1, zero time padding: {conv}")
        self.weight = conv.weight
        self.bias = conv.bias
        self.padding = (int(conv.padding[0]), 0)  # type: ignore[index]
        self.dilation = (conv.dilation[0], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, frames, height, width = x.shape
        y = functional.conv2d(
            x.reshape(batch, channels, frames, height * width),
            self.weight[..., 0],
            self.bias,
            padding=self.padding,
            dilation=self.dilation,
        )
        return y.reshape(batch, y.shape[1], y.shape[2], height, width)


class HalveSpatially(nn.Module):
    """``AvgPool3d((1, 2, 2))``: the mean of each 2x2 block of pixels (a last odd row or column
    dropped, as the pool does), summed in the pool's order, in float32 as autocast runs the pool."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2
        x = x[..., :height, :width]
        top_left = x[..., 0::2, 0::2].float()
        return (top_left + x[..., 0::2, 1::2] + x[..., 1::2, 0::2] + x[..., 1::2, 1::2]) * 0.25


def _is_halving_pool(module: nn.Module) -> bool:
    if not isinstance(module, nn.AvgPool3d):
        return False
    kernel, stride = module.kernel_size, module.stride
    return (
        tuple(kernel) == (1, 2, 2)  # type: ignore[arg-type]
        and tuple(stride) == (1, 2, 2)  # type: ignore[arg-type]
        and module.padding in (0, (0, 0, 0))
        and not module.ceil_mode
    )


def _is_temporal_conv(module: nn.Module) -> bool:
    return (
        isinstance(module, nn.Conv3d)
        and module.kernel_size[1:] == (1, 1)
        and module.stride == (1, 1, 1)
        and module.groups == 1
        and module.padding_mode == "zeros"
        and module.padding[1:] == (0, 0)  # type: ignore[index]
    )


def use_fast_cpu_layers(model: Any) -> int:
    """Swap, in place, every temporal convolution and 2x2 average pool of ``model`` for its
    faster equivalent; returns how many layers were swapped (0 for a model without them)."""
    swapped = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if _is_temporal_conv(child):
                setattr(parent, name, TemporalConv(child))
            elif _is_halving_pool(child):
                setattr(parent, name, HalveSpatially())
            else:
                continue
            swapped += 1
    return swapped


__all__ = ["HalveSpatially", "TemporalConv", "use_fast_cpu_layers"]
