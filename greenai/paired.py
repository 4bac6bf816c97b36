"""The A/B protocol: every comparison of variants greenai makes is measured this way.

The compression sweep, ``greenai bench`` (and ``compare`` of its result files) and the pytest
plugin's rounds all follow the rules below, stated once here so that a reader of any of their
reports knows what a ratio and its interval mean:

1. **Warm-up until stable.** Each variant is called until the median latency of its last
   :attr:`Protocol.warmup_window` calls is within :attr:`Protocol.warmup_tolerance` of the
   median of the window before (or :attr:`Protocol.warmup_max_s` has passed: then the
   variant is marked "not stable" and a note says so).
2. **Interleaved rounds.** A round measures every variant once (one window each); the order
   inside a round is a random permutation drawn from a generator seeded with
   :attr:`Protocol.seed` and the round's index (ABC, CAB, BCA...), so drift of the machine
   (another job starting, thermal throttling, frequency scaling) hits every variant alike.
3. **Enough rounds.** At least :attr:`Protocol.min_rounds`; then rounds go on until every
   variant's ratio to the baseline has a 95% interval no wider than ±
   :attr:`Protocol.precision`, or :attr:`Protocol.budget_s` seconds of rounds have passed,
   or :attr:`Protocol.max_rounds` rounds were run. Which rule stopped the rounds is kept.
4. **Outliers.** A round whose baseline lies more than :attr:`Protocol.outlier_mads` scaled
   median absolute deviations (MAD × 1.4826) from the baseline's median is re-measured (one
   more round, at most :attr:`Protocol.max_remeasure` times) and left out; the same rule on
   each variant's per-round log ratio leaves out rounds where only that variant was disturbed.
   Every round left out is counted in the result.
5. **Paired ratios.** Per round, variant / baseline; the ratio is the geometric mean of the
   kept rounds' ratios and its 95% interval is Student's t on their logs (the rounds are
   paired, so machine drift between rounds cancels).
6. **Verdicts.** "X% less/more" only when the interval excludes 1; otherwise "no measurable
   difference at this precision (±X%)", X being the interval's half-width.
7. **Plausibility.** A variant whose dense FLOPs and size are unchanged runs the same dense
   kernels as the baseline: a saving beyond the noise is then reported as no measurable
   difference with a note, unless the variant names a kernel that changes the work (sparse
   or low-bit).

Pure Python (no torch, no numpy): the numeric rules only; callers run the windows.
"""

from __future__ import annotations

import math
import random
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from greenai.errors import ConfigError
from greenai.windows import t_quantile_975

__all__ = [
    "Protocol",
    "Ratio",
    "Rounds",
    "RoundsInterrupted",
    "WarmUp",
    "implausible_saving",
    "outliers",
    "paired_ratio",
    "round_order",
    "run_rounds",
    "t_quantile_975",
    "unpaired_ratio",
    "verdict",
    "warm_up",
]

_MAD_SCALE = 1.4826
"""MAD × this estimates the standard deviation of normal data."""


@dataclass(frozen=True)
class Protocol:
    """The stated rules of an A/B measurement (see the module's docstring).

    Attributes:
        warmup_window: Calls per warm-up window (the criterion compares two windows).
        warmup_tolerance: Warm-up ends when two consecutive windows' median latencies
            differ by at most this fraction.
        warmup_max_s: Longest warm-up per variant, in seconds (then "not stable").
        min_rounds: Rounds always run (>= 2: an interval needs a spread).
        max_rounds: Rounds that count at most (re-measured ones come on top).
        precision: Target half-width of every ratio's 95% interval (0.05 = ±5%).
        budget_s: Seconds of rounds at most (None: no limit but ``max_rounds``).
        outlier_mads: Distance from the median, in scaled MADs, beyond which a round is
            an outlier.
        max_remeasure: Rounds re-measured at most because of an outlying baseline.
        seed: Seeds the order of the variants in each round.

    Raises:
        ConfigError: A rule that cannot hold (fewer than 3 rounds, a negative time...).
    """

    warmup_window: int = 10
    warmup_tolerance: float = 0.05
    warmup_max_s: float = 10.0
    min_rounds: int = 5
    max_rounds: int = 30
    precision: float = 0.05
    budget_s: float | None = None
    outlier_mads: float = 5.0
    max_remeasure: int = 3
    seed: int = 0

    def __post_init__(self) -> None:
        checks = (
            ("warmup_window", self.warmup_window >= 2),
            ("warmup_tolerance", self.warmup_tolerance > 0),
            ("warmup_max_s", self.warmup_max_s >= 0),
            ("min_rounds", self.min_rounds >= 2),
            ("max_rounds", self.max_rounds >= self.min_rounds),
            ("precision", self.precision > 0),
            ("budget_s", self.budget_s is None or self.budget_s >= 0),
            ("outlier_mads", self.outlier_mads > 0),
            ("max_remeasure", self.max_remeasure >= 0),
        )
        for name, ok in checks:
            if not ok:
                raise ConfigError(
                    f"Protocol.{name}={getattr(self, name)!r} is out of range: rounds need "
                    "2 <= min_rounds <= max_rounds, positive tolerances and times"
                )

    def describe(self) -> str:
        """The protocol as one paragraph, for reports and result files."""
        budget = f", or {self.budget_s:g} s of rounds" if self.budget_s is not None else ""
        return (
            f"warm-up until the median latency of {self.warmup_window} calls moves less than "
            f"{self.warmup_tolerance:.0%} (at most {self.warmup_max_s:g} s); variants "
            f"interleaved, a new random order each round (seed {self.seed}); "
            f"{self.min_rounds} to {self.max_rounds} rounds, until every ratio is known "
            f"within ±{self.precision:.0%}{budget}; a round whose baseline lies over "
            f"{self.outlier_mads:g} MADs from its median is re-measured; ratios are geometric "
            "means of paired per-round ratios with 95% t intervals"
        )


@dataclass(frozen=True)
class WarmUp:
    """How a warm-up went.

    Attributes:
        calls: Calls made.
        duration_s: Seconds it took.
        stable: Whether the stability criterion was met (False: stopped at the time limit).
        latency_s: Median latency of the last window, in seconds.
    """

    calls: int
    duration_s: float
    stable: bool
    latency_s: float


def warm_up(
    call: Callable[[], object],
    protocol: Protocol,
    clock: Callable[[], float] = time.perf_counter,
) -> WarmUp:
    """Call ``call`` until its latency is stable by ``protocol``'s criterion.

    Args:
        call: One complete call (synchronised, on an accelerator).
        protocol: Gives the window, tolerance and time limit.
        clock: Seconds (injected in tests).

    Returns:
        The warm-up's figures.
    """
    k = protocol.warmup_window
    times: list[float] = []
    start = clock()
    while True:
        t0 = clock()
        call()
        times.append(clock() - t0)
        if len(times) >= 2 * k:
            last = statistics.median(times[-k:])
            before = statistics.median(times[-2 * k : -k])
            if abs(last - before) <= protocol.warmup_tolerance * max(before, 1e-12):
                return WarmUp(len(times), clock() - start, True, last)
        if len(times) >= 3 and clock() - start >= protocol.warmup_max_s:
            return WarmUp(len(times), clock() - start, False, statistics.median(times[-k:]))


def round_order(round_index: int, variants: int, seed: int = 0) -> list[int]:
    """The order of ``variants`` in round ``round_index``: a seeded random permutation."""
    rng = random.Random(f"greenai-rounds:{seed}:{round_index}")
    return rng.sample(range(variants), variants)


def outliers(values: Sequence[float], mads: float) -> list[bool]:
    """Which ``values`` lie over ``mads`` scaled MADs from their median (never with < 4)."""
    if len(values) < 4:
        return [False] * len(values)
    med = statistics.median(values)
    mad = statistics.median(abs(v - med) for v in values) * _MAD_SCALE
    if mad <= 0:
        return [False] * len(values)
    return [abs(v - med) > mads * mad for v in values]


@dataclass(frozen=True)
class Ratio:
    """A variant relative to the baseline, from paired rounds.

    Attributes:
        value: Geometric mean of the per-round ratios (variant / baseline).
        low: Lower end of its 95% interval.
        high: Upper end of its 95% interval.
        rounds: Rounds used.
        dropped: Rounds left out as outliers.
    """

    value: float
    low: float
    high: float
    rounds: int
    dropped: int = 0

    @property
    def halfwidth(self) -> float:
        """Half the interval's width, as a fraction of 1 (0.04 = ±4%)."""
        return (self.high - self.low) / 2

    @property
    def measurable(self) -> bool:
        """Whether the interval excludes 1 (no change)."""
        return self.high < 1 or self.low > 1


def paired_ratio(
    baseline: Sequence[float], variant: Sequence[float], outlier_mads: float = 5.0
) -> Ratio:
    """``variant / baseline`` over paired rounds, with its 95% interval.

    Args:
        baseline: The baseline's figure in each round (> 0).
        variant: The variant's figure in the same rounds (> 0).
        outlier_mads: Rounds whose log ratio lies further than this from the median (in
            scaled MADs) are left out.

    Returns:
        The ratio (NaN when no round has both figures; an infinite interval with one).

    Raises:
        ConfigError: The two sequences differ in length.
    """
    if len(baseline) != len(variant):
        raise ConfigError(
            f"paired rounds need one figure per round on both sides, got "
            f"{len(baseline)} and {len(variant)}"
        )
    logs = [
        math.log(v / b)
        for b, v in zip(baseline, variant, strict=True)
        if b > 0 and v > 0 and math.isfinite(b) and math.isfinite(v)
    ]
    if not logs:
        return Ratio(math.nan, math.nan, math.nan, 0)
    out = outliers(logs, outlier_mads)
    kept = [x for x, o in zip(logs, out, strict=True) if not o]
    return _interval(kept, dropped=len(logs) - len(kept))


def _interval(logs: Sequence[float], dropped: int = 0) -> Ratio:
    mean = statistics.fmean(logs)
    if len(logs) < 2:
        return Ratio(math.exp(mean), 0.0, math.inf, len(logs), dropped)
    half = t_quantile_975(len(logs) - 1) * statistics.stdev(logs) / math.sqrt(len(logs))
    return Ratio(math.exp(mean), math.exp(mean - half), math.exp(mean + half), len(logs), dropped)


def unpaired_ratio(a: Sequence[float], b: Sequence[float]) -> Ratio:
    """``b / a`` from two independent sets of rounds (two machines, two result files).

    The ratio of geometric means, with a Welch interval on the logs. Rounds could not be
    interleaved across the two, so the interval holds only if neither drifted.

    Returns:
        The ratio (NaN without figures; an infinite interval with fewer than 2 a side).
    """
    la = [math.log(x) for x in a if x > 0 and math.isfinite(x)]
    lb = [math.log(x) for x in b if x > 0 and math.isfinite(x)]
    if not la or not lb:
        return Ratio(math.nan, math.nan, math.nan, 0)
    diff = statistics.fmean(lb) - statistics.fmean(la)
    n = min(len(la), len(lb))
    if len(la) < 2 or len(lb) < 2:
        return Ratio(math.exp(diff), 0.0, math.inf, n)
    va, vb = statistics.variance(la) / len(la), statistics.variance(lb) / len(lb)
    se = math.sqrt(va + vb)
    if se == 0:
        return Ratio(math.exp(diff), math.exp(diff), math.exp(diff), n)
    df = (va + vb) ** 2 / (va**2 / (len(la) - 1) + vb**2 / (len(lb) - 1))
    half = t_quantile_975(max(1, int(df))) * se
    return Ratio(math.exp(diff), math.exp(diff - half), math.exp(diff + half), n)


def verdict(ratio: Ratio, noun: str = "energy") -> str:
    """The sentence for a ratio: a change only when its 95% interval excludes no change.

    Examples: ``"38% less energy (95% CI 31% to 44% less)"``, ``"2.1× the energy"``,
    ``"no measurable difference at this precision (±6.2%)"``.
    """
    if math.isnan(ratio.value):
        return f"no {noun} figure to compare"
    if math.isinf(ratio.high):
        return f"no measurable difference: too few rounds to size the noise of {noun}"
    if not ratio.measurable:
        return f"no measurable difference at this precision (±{ratio.halfwidth * 100:.2g}%)"
    if ratio.value >= 2:
        return f"{ratio.value:.3g}× the {noun} (95% CI {ratio.low:.3g}× to {ratio.high:.3g}×)"
    if ratio.value < 1:
        lo, hi = (1 - ratio.high) * 100, (1 - ratio.low) * 100
        return f"{(1 - ratio.value) * 100:.2g}% less {noun} (95% CI {lo:.2g}% to {hi:.2g}% less)"
    lo, hi = (ratio.low - 1) * 100, (ratio.high - 1) * 100
    return f"{(ratio.value - 1) * 100:.2g}% more {noun} (95% CI {lo:.2g}% to {hi:.2g}% more)"


def implausible_saving(
    ratio: Ratio,
    *,
    dense_flops_lower: bool,
    size_lower: bool,
    kernel: str | None,
    noun: str = "energy",
) -> str | None:
    """A note when a saving cannot be real; None when it can.

    A variant that keeps the baseline's dense FLOPs and is no smaller (pruning masks
    attached make it bigger) runs the same dense kernels, so it cannot take less beyond
    the noise, unless it names a kernel that does less work (sparse or low-bit).

    Args:
        ratio: The variant's ratio to the baseline.
        dense_flops_lower: Its dense FLOPs are below the baseline's.
        size_lower: Its size is below the baseline's.
        kernel: The sparse or low-bit kernel the variant runs, or None.
        noun: What the ratio measures.

    Returns:
        The note, or None.
    """
    if kernel or dense_flops_lower or size_lower or not ratio.high < 1:
        return None
    return (
        f"{(1 - ratio.value) * 100:.2g}% less {noun} measured, but dense FLOPs and size are "
        "unchanged and no sparse or low-bit kernel runs: not a real saving (machine noise "
        "beyond the rounds' spread); reported as no measurable difference"
    )


@dataclass
class Rounds:
    """What :func:`run_rounds` measured.

    Attributes:
        values: ``values[v][r]``: variant ``v``'s figure in round ``r`` (variant 0 is the
            baseline); a re-measured round stays in the list, marked in ``kept``.
        orders: The order the variants ran in, per round.
        kept: Per round, whether it counts (False: re-measured because of its baseline).
        stopped_by: ``"precision"``, ``"budget"`` or ``"max_rounds"``.
    """

    values: list[list[float]]
    orders: list[list[int]] = field(default_factory=list)
    kept: list[bool] = field(default_factory=list)
    stopped_by: str = ""

    def kept_values(self, variant: int) -> list[float]:
        """The figures of ``variant`` in the rounds that count."""
        return [x for x, k in zip(self.values[variant], self.kept, strict=True) if k]

    def ratios(self, protocol: Protocol) -> list[Ratio]:
        """Every variant's paired ratio to variant 0 (whose own ratio is 1 exactly)."""
        base = self.kept_values(0)
        n = len(base)
        out = [Ratio(1.0, 1.0, 1.0, n)]
        for v in range(1, len(self.values)):
            out.append(paired_ratio(base, self.kept_values(v), protocol.outlier_mads))
        return out

    @property
    def remeasured(self) -> int:
        """Rounds re-measured because their baseline was an outlier."""
        return self.kept.count(False)


class RoundsInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM) during :func:`run_rounds`: the rounds completed before it.

    Attributes:
        rounds: The complete rounds (a round cut short is left out), ``stopped_by``
            ``"interrupted"``.
        signum: The signal's number (SIGINT for a plain ``KeyboardInterrupt``).
        exit_code: 128 + ``signum``, what a command line exits with.
    """

    def __init__(self, rounds: Rounds, cause: KeyboardInterrupt) -> None:
        import signal

        super().__init__(*cause.args)
        self.rounds = rounds
        self.signum = int(getattr(cause, "signum", signal.SIGINT))
        self.exit_code = int(getattr(cause, "exit_code", 128 + self.signum))


def run_rounds(
    measure: Callable[[int, int], float],
    variants: int,
    protocol: Protocol,
    clock: Callable[[], float] = time.perf_counter,
    on_round: Callable[[int], None] | None = None,
) -> Rounds:
    """Run interleaved rounds of ``variants`` until ``protocol`` says stop.

    Args:
        measure: ``measure(variant, round) -> figure`` runs one window of one variant and
            returns its figure (seconds per call, say; > 0). Variant 0 is the baseline.
        variants: Number of variants, baseline included (>= 1).
        protocol: The rules.
        clock: Seconds (injected in tests).
        on_round: Called with the number of rounds done after each one (progress).

    Returns:
        Every round's figures and which rounds count.

    Raises:
        ConfigError: ``variants < 1``.
        RoundsInterrupted: A ``KeyboardInterrupt`` (Ctrl-C) while the rounds ran; it
            holds the rounds done before the one it cut short.
    """
    if variants < 1:
        raise ConfigError(f"rounds need at least one variant, got {variants}")
    rounds = Rounds([[] for _ in range(variants)])
    try:
        _rounds(measure, variants, protocol, clock, on_round, rounds)
    except KeyboardInterrupt as exc:
        done = len(rounds.orders)  # rounds complete: a round cut short is left out
        rounds.values = [v[:done] for v in rounds.values]
        rounds.kept = rounds.kept[:done]
        rounds.stopped_by = "interrupted"
        raise RoundsInterrupted(rounds, exc) from exc
    return rounds


def _rounds(
    measure: Callable[[int, int], float],
    variants: int,
    protocol: Protocol,
    clock: Callable[[], float],
    on_round: Callable[[int], None] | None,
    rounds: Rounds,
) -> None:
    """The loop of :func:`run_rounds`, filling ``rounds`` (``orders`` last in a round)."""
    start = clock()
    r = 0
    while True:
        order = round_order(r, variants, protocol.seed)
        got = [math.nan] * variants
        for v in order:
            got[v] = measure(v, r)
        for v in range(variants):
            rounds.values[v].append(got[v])
        rounds.kept.append(True)
        rounds.orders.append(order)
        # judged against all rounds so far: a cold first round is caught at the fourth
        for i, out in enumerate(outliers(rounds.values[0], protocol.outlier_mads)):
            if out and rounds.kept[i] and rounds.remeasured < protocol.max_remeasure:
                rounds.kept[i] = False
        r += 1
        if on_round is not None:
            on_round(r)
        if rounds.kept.count(True) >= protocol.max_rounds:
            rounds.stopped_by = "max_rounds"
            return
        if rounds.kept.count(True) < protocol.min_rounds:
            continue
        known = [x for x in rounds.ratios(protocol) if not math.isnan(x.value)]
        if all(x.halfwidth <= protocol.precision for x in known):
            rounds.stopped_by = "precision"
            return
        if protocol.budget_s is not None and clock() - start >= protocol.budget_s:
            rounds.stopped_by = "budget"
            return
