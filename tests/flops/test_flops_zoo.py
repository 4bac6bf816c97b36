"""Model zoo: whole models counted by count_flops, each against a hand formula.

Every count must be exact and name no uncounted op: a gap in the formulas shows up here as
a wrong total or as an entry in ``FlopCount.uncounted``.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from flops_models import resnet18, resnet50
from torch import nn
from transformers import BertConfig, BertModel, GPT2Config, GPT2LMHeadModel

from greenai.flops import FlopCount, count_flops

# --- torchvision ResNets (built from torchvision's definition, see flops_models) ----------


def conv(s: int, c_out: int, c_in: int, k: int) -> int:
    """A k×k convolution with an s×s output: 2 FLOPs per multiply-add."""
    return 2 * s * s * c_out * c_in * k * k


def resnet_flops(bottleneck: bool, depths: list[int], n_classes: int = 1000) -> int:
    """Convolutions and the classifier of a ResNet at 224×224 (stem 112², stages 56²…7²)."""
    flops, c_in, size = conv(112, 64, 3, 7), 64, 56
    for stage, (width, blocks) in enumerate(zip([64, 128, 256, 512], depths, strict=True)):
        s = size >> stage
        for i in range(blocks):
            s_in = s * 2 if stage > 0 and i == 0 else s
            c_out = 4 * width if bottleneck else width
            if bottleneck:
                flops += conv(s_in, width, c_in, 1) + conv(s, width, width, 3)
                flops += conv(s, c_out, width, 1)
            else:
                flops += conv(s, width, c_in, 3) + conv(s, width, width, 3)
            if c_in != c_out or (stage > 0 and i == 0):
                flops += conv(s, c_out, c_in, 1)  # the projection shortcut
            c_in = c_out
    return flops + 2 * c_in * n_classes


@pytest.mark.parametrize(
    ("build", "bottleneck", "depths", "published_gmac"),
    [(resnet18, False, [2, 2, 2, 2], 1.81), (resnet50, True, [3, 4, 6, 3], 4.09)],
    ids=["resnet18", "resnet50"],
)
def test_resnet(
    build: Callable[[], nn.Module], bottleneck: bool, depths: list[int], published_gmac: float
) -> None:
    with torch.device("meta"):
        model = build()
    flops = count_flops(model, torch.empty(1, 3, 224, 224, device="meta"))
    assert flops.total == resnet_flops(bottleneck, depths)
    # torchvision's model table prints GMACs under "GFLOPS": 1 MAC = 2 FLOPs.
    assert flops.total / 2e9 == pytest.approx(published_gmac, abs=0.005)
    assert not flops.uncounted


# --- transformers GPT-2 small and BERT-base, built from their configs --------------------


def from_config(cls: type[nn.Module], config: object) -> nn.Module:
    """Uninitialised CPU weights (no download, no init time); counted on fake tensors."""
    with torch.device("meta"):
        model = cls(config)
    return model.to_empty(device="cpu").eval()


def layer_flops(tokens: int, seq: int, d: int, ff: int, batch: int = 1) -> int:
    """One transformer layer: q, k, v, output projections, feed-forward, QKᵀ and AV."""
    return 2 * tokens * (4 * d * d + 2 * d * ff) + batch * 4 * seq * seq * d


def test_gpt2_small_from_transformers() -> None:
    config = GPT2Config()  # 12 layers, d 768, vocab 50257: GPT-2 small
    t = 512
    flops = count_flops(
        from_config(GPT2LMHeadModel, config), torch.zeros(1, t, dtype=torch.long), fake=True
    )
    lm_head = 2 * t * 768 * 50257
    assert flops.total == 12 * layer_flops(t, t, 768, 3072) + lm_head == 136_160_477_184
    assert not flops.uncounted


def test_bert_base_from_transformers() -> None:
    config = BertConfig()  # 12 layers, d 768, 3072 feed-forward
    b, t = 2, 128
    flops = count_flops(
        from_config(BertModel, config), torch.zeros(b, t, dtype=torch.long), fake=True
    )
    pooler = 2 * b * 768 * 768  # dense on each sequence's first token
    assert flops.total == 12 * layer_flops(b * t, t, 768, 3072, batch=b) + pooler
    assert not flops.uncounted


# --- an LSTM language model ---------------------------------------------------------------


class LSTMLanguageModel(nn.Module):
    """Embedding, two-layer LSTM, linear decoder (the PyTorch word_language_model example)."""

    def __init__(self, vocab: int, d_embed: int, hidden: int, layers: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, d_embed)
        self.lstm = nn.LSTM(d_embed, hidden, layers)
        self.decoder = nn.Linear(hidden, vocab)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(self.embed(tokens))
        return self.decoder(out)


def test_lstm_language_model_training_step() -> None:
    vocab, d, h, t, b = 10_000, 256, 512, 35, 20
    model = LSTMLanguageModel(vocab, d, h, 2)
    flops = count_flops(model, torch.randint(0, vocab, (t, b)), backward=True, fake=True)
    lstm = 2 * t * b * 4 * h * ((d + h) + (h + h))
    decoder = 2 * t * b * h * vocab
    assert flops.forward == lstm + decoder
    # The fused LSTM backward computes the data and the weight gradients (2× its forward);
    # the decoder's, its input's and its weight's (2× its forward); the embedding none.
    assert flops.backward == 2 * (lstm + decoder)
    assert not flops.uncounted


# --- an eval-mode nn.TransformerEncoder -----------------------------------------------


def test_eval_mode_transformer_encoder() -> None:
    d, heads, ff, layers, b, t = 512, 8, 2048, 6, 4, 128
    layer = nn.TransformerEncoderLayer(d, heads, ff, batch_first=True)
    encoder = nn.TransformerEncoder(layer, layers).eval()
    with torch.no_grad():
        flops: FlopCount = count_flops(encoder, torch.randn(b, t, d), fake=True)
    assert flops.total == layers * layer_flops(b * t, t, d, ff, batch=b)
    assert set(flops.by_operator) == {"aten._transformer_encoder_layer_fwd"}
    assert not flops.uncounted
