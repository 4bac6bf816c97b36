"""FLOP counting: FlopCounterMode plus the formulas it lacks, analytic models, GPU peaks.

One multiply-add is 2 FLOPs everywhere in this package. Every count has a *nominal* total
(dense floating-point FLOPs of the shapes that ran) and an *executed* one (what the kernels
did); see :class:`FlopCount`.
"""

from greenai.flops.analytic import (
    transformer_forward_flops,
    transformer_inference_flops,
    transformer_training_flops,
)
from greenai.flops.cache import FlopCache, shape_key
from greenai.flops.counter import FakeModeError, count_flops
from greenai.flops.guard import uncounted_note
from greenai.flops.peaks import mfu_note, peak_flops_per_s
from greenai.flops.result import FlopCount

__all__ = [
    "FakeModeError",
    "FlopCache",
    "FlopCount",
    "count_flops",
    "mfu_note",
    "peak_flops_per_s",
    "shape_key",
    "transformer_forward_flops",
    "transformer_inference_flops",
    "transformer_training_flops",
    "uncounted_note",
]
