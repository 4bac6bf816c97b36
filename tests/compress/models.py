"""Small real architectures for the compression tests: residual MLP, residual CNN, attention."""

from __future__ import annotations

import torch
from torch import nn


class Block(nn.Module):
    def __init__(self, width: int, hidden: int) -> None:
        super().__init__()
        self.a = nn.Linear(width, hidden)
        self.b = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.b(torch.relu(self.a(x)))


class ResidualMLP(nn.Module):
    """The issue's model: four blocks ``x + b(relu(a(x)))`` between a stem and a head."""

    def __init__(self, width: int = 32, hidden: int = 64, blocks: int = 4) -> None:
        super().__init__()
        self.stem = nn.Linear(16, width)
        self.blocks = nn.Sequential(*(Block(width, hidden) for _ in range(blocks)))
        self.head = nn.Linear(width, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))


class ResidualCNN(nn.Module):
    """Conv-BN stem, two residual conv blocks, global pooling, a linear head."""

    def __init__(self, channels: int = 16) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.ReLU()
        )
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(channels, 2 * channels, 3, padding=1),
                nn.BatchNorm2d(2 * channels),
                nn.ReLU(),
                nn.Conv2d(2 * channels, channels, 3, padding=1),
                nn.BatchNorm2d(channels),
            )
            for _ in range(2)
        )
        self.head = nn.Linear(channels, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for block in self.blocks:
            x = torch.relu(x + block(x))
        return self.head(x.mean(dim=(2, 3)))


class Attention(nn.Module):
    """Hand-written multi-head self-attention with a fused ``qkv`` (the timm layout)."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        q, k, v = self.qkv(x).reshape(b, t, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        y = nn.functional.scaled_dot_product_attention(q, k, v)
        return self.proj(y.transpose(1, 2).reshape(b, t, -1))


class TinyTransformer(nn.Module):
    """Pre-norm transformer blocks (attention + MLP, residual) and a mean-pooled head."""

    def __init__(self, dim: int = 32, heads: int = 4, depth: int = 2) -> None:
        super().__init__()
        self.embed = nn.Linear(8, dim)
        self.layers = nn.ModuleList()
        for _ in range(depth):
            self.layers.append(
                nn.ModuleDict(
                    {
                        "norm1": nn.LayerNorm(dim),
                        "attn": Attention(dim, heads),
                        "norm2": nn.LayerNorm(dim),
                        "mlp": nn.Sequential(
                            nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim)
                        ),
                    }
                )
            )
        self.head = nn.Linear(dim, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embed(x)
        for layer in self.layers:
            x = x + layer["attn"](layer["norm1"](x))
            x = x + layer["mlp"](layer["norm2"](x))
        return self.head(x.mean(dim=1))


def torch_transformer() -> nn.Module:
    """``nn.TransformerEncoder`` (``nn.MultiheadAttention`` inside) with a linear head."""
    encoder = nn.TransformerEncoder(
        nn.TransformerEncoderLayer(64, 4, 128, dropout=0.0, batch_first=True), 2
    )
    return nn.Sequential(nn.Linear(8, 64), encoder, _MeanTokens(), nn.Linear(64, 3))


class _MeanTokens(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=1)
