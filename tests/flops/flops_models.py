"""Reference models for the FLOP tests, in plain torch (torchvision is not a dependency)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# --- ResNet-18 and ResNet-50 (He et al. 2016), torchvision's layouts ----------------------
# torchvision itself is not used: the PyPI wheel made for torch 2.13.0 (torchvision 0.28.0)
# links libtorch_cuda, and `import torchvision` fails beside the CPU build of torch. These
# follow torchvision/models/resnet.py: BasicBlock and Bottleneck (stride on the 3x3 conv,
# "ResNet v1.5"), a 1x1 projection where the shape changes, zero-init options left out.
# Checked once (2026-11-29) against torchvision 0.28.0's own resnet.py, loaded without
# torchvision/__init__.py: the same 3,628,146,688 and 8,178,368,512 FLOPs at 224x224.


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, width: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, width, 3, stride, 1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.Conv2d(width, width, 3, 1, 1, bias=False),
            nn.BatchNorm2d(width),
        )
        self.down: nn.Module = nn.Identity()
        if stride != 1 or c_in != width:
            self.down = nn.Sequential(
                nn.Conv2d(c_in, width, 1, stride, bias=False), nn.BatchNorm2d(width)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.down(x))


class Bottleneck(nn.Module):
    def __init__(self, c_in: int, width: int, stride: int) -> None:
        super().__init__()
        c_out = 4 * width
        self.body = nn.Sequential(
            nn.Conv2d(c_in, width, 1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.Conv2d(width, width, 3, stride, 1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.Conv2d(width, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out),
        )
        self.down: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.down = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.down(x))


def resnet18(n_classes: int = 1000) -> nn.Sequential:
    return _resnet(BasicBlock, [2, 2, 2, 2], 1, n_classes)


def resnet50(n_classes: int = 1000) -> nn.Sequential:
    return _resnet(Bottleneck, [3, 4, 6, 3], 4, n_classes)


def _resnet(
    block: type[nn.Module], depths: list[int], expansion: int, n_classes: int
) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(3, 64, 7, 2, 3, bias=False),
        nn.BatchNorm2d(64),
        nn.ReLU(),
        nn.MaxPool2d(3, 2, 1),
    ]
    c_in = 64
    for width, blocks, stride in zip([64, 128, 256, 512], depths, [1, 2, 2, 2], strict=True):
        for i in range(blocks):
            layers.append(block(c_in, width, stride if i == 0 else 1))
            c_in = expansion * width
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, n_classes)]
    return nn.Sequential(*layers)


# --- GPT-2 small (Radford et al. 2019), nanoGPT layout, tied lm head ---------------------


class Block(nn.Module):
    def __init__(self, d_model: int, n_heads: int, is_causal: bool) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.is_causal = is_causal
        self.ln1 = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.ln2 = nn.LayerNorm(d_model)
        self.fc = nn.Linear(d_model, 4 * d_model)
        self.fc_out = nn.Linear(4 * d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(c, dim=2)
        q, k, v = (z.view(b, t, self.n_heads, c // self.n_heads).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=self.is_causal)
        x = x + self.proj(y.transpose(1, 2).reshape(b, t, c))
        return x + self.fc_out(F.gelu(self.fc(self.ln2(x))))


class GPT(nn.Module):
    def __init__(
        self,
        vocab: int = 50257,
        n_layers: int = 12,
        d_model: int = 768,
        n_heads: int = 12,
        context: int = 1024,
        is_causal: bool = True,
    ) -> None:
        super().__init__()
        self.wte = nn.Embedding(vocab, d_model)
        self.wpe = nn.Embedding(context, d_model)
        self.blocks = nn.ModuleList(Block(d_model, n_heads, is_causal) for _ in range(n_layers))
        self.ln_f = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab, bias=False)
        self.head.weight = self.wte.weight

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1], device=idx.device))
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))
