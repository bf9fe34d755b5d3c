"""Multiply-accumulate count of a MiT-fusion forward pass.

Counted: every Conv2d and Linear (weights x output positions, as the paper's "0.425 B FLOPs" and
most vision papers count, 0.421 G for MiT-b0 at 224x224, benchmarks/results/bench_cpu.json), and
separately the two attention products (Q K^T and attn V). Not counted: norms, activations, softmax,
pooling, additions.
"""

from __future__ import annotations

import torch
from torch import nn

from fer_ros.model.mit import Attention


def count_macs(model: nn.Module, input_size: int = 224, in_chans: int = 3) -> dict[str, int]:
    """{"conv_linear": ..., "attention": ..., "total": ...} for one image of input_size x
    input_size."""
    counts = {"conv_linear": 0, "attention": 0}

    def conv_hook(m: nn.Conv2d, inputs, out):
        kh, kw = m.kernel_size
        counts["conv_linear"] += out.numel() * (m.in_channels // m.groups) * kh * kw

    def linear_hook(m: nn.Linear, inputs, out):
        counts["conv_linear"] += out.numel() * m.in_features

    def attention_hook(m: Attention, inputs, out):
        x, H, W = inputs
        B, N, C = x.shape
        M = N // (m.sr_ratio**2)  # key/value tokens after spatial reduction
        counts["attention"] += 2 * B * N * M * C  # Q K^T and attn V, all heads together

    hooks = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(linear_hook))
        elif isinstance(m, Attention):
            hooks.append(m.register_forward_hook(attention_hook))
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(
                torch.zeros(
                    1, in_chans, input_size, input_size, device=next(model.parameters()).device
                )
            )
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    counts["total"] = counts["conv_linear"] + counts["attention"]
    return counts
