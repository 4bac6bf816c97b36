"""Type stub of the C sampling loop (kernels/native.c); twin: greenai/sampling/native_py.py."""

import os

RECORD_SIZE: int
MIN_PERIOD_NS: int
MAX_PERIOD_NS: int

class Loop:
    """Reads RAPL and NVML sources every ``period_ns`` on a thread that never takes the GIL.

    start/stop/tick/add_*/close may be called from several threads: they run one at a time
    (a second caller waits, with the GIL released), so the thread is started and joined
    once; the loser of two concurrent start() calls gets TrackerStateError.

    Args:
        period_ns: Sampling period in nanoseconds, ``MIN_PERIOD_NS`` (1 ms) to
            ``MAX_PERIOD_NS`` (1 hour).
        capacity: Ring buffer size in records (rounded up to a power of two); records that
            do not fit are dropped and counted in :attr:`overflow`.

    Raises:
        ConfigError: The period or capacity is out of range.
    """

    def __init__(self, period_ns: int = 10_000_000, *, capacity: int = 65536) -> None: ...
    @property
    def running(self) -> bool:
        """Whether the thread runs."""
    @property
    def period_ns(self) -> int:
        """The period in nanoseconds."""
    @property
    def overflow(self) -> int:
        """Records dropped because the buffer was full."""
    @property
    def capacity(self) -> int:
        """Ring buffer size in records."""
    @property
    def abandoned(self) -> bool:
        """Whether stop() left behind a thread stuck in a read (two periods, at least 1 s).

        Such a loop takes no last reading and stays closed; its memory is never freed.
        """
    def add_rapl(self, path: str | os.PathLike[str], max_energy_range_uj: int) -> int:
        """Open a RAPL ``energy_uj`` file once; return its source index.

        Records carry the energy read since this call, in joules, with counter wraparound
        (``max_energy_range_uj + 1``) undone.

        Raises:
            DeviceUnavailableError: The file does not exist.
            DeviceError: It cannot be read or holds no counter value.
            TrackerStateError: The loop runs, is closed, or was inherited through fork().
        """
    def add_nvml(
        self,
        device: int | str,
        *,
        power: str = "instant",
        energy_period_ns: int = 100_000_000,
        lib: str | None = None,
    ) -> int:
        """Add an NVIDIA GPU by NVML index (int) or UUID (str); return its source index.

        Args:
            device: NVML index (0..4294967295) or ``GPU-...`` UUID.
            power: ``"instant"`` (NVML_FI_DEV_POWER_INSTANT), ``"average"``
                (nvmlDeviceGetPowerUsage) or ``"none"``; read on every tick, in watts.
            energy_period_ns: How often to read the total-energy counter (joules since the
                driver loaded); rounded to whole ticks; 0 never reads it.
            lib: NVML library to dlopen; default ``$GREENAI_NVML_LIB`` or
                ``libnvidia-ml.so.1``. Loaded once per process and never unloaded; one loop
                reads through one library.

        Raises:
            DeviceUnavailableError: The library cannot be loaded.
            DriverMismatchError: It lacks a function the reading needs.
            DeviceError: NVML cannot initialise or find the GPU.
            ConfigError: ``power``, ``energy_period_ns`` or the index is invalid, or the
                loop already reads another NVML library.
        """
    def start(self) -> None:
        """Read every source once, now, then start the thread."""
    def stop(self) -> None:
        """Stop the thread, then read every source once more. Idempotent.

        The last reading includes every NVML energy counter, whatever its own period, so
        the window ends on a counter value taken at stop time.
        """
    def tick(self) -> None:
        """Read every source once, now (not while the thread runs)."""
    def drain(self) -> bytes:
        """Take every buffered record, oldest first (``RECORD_SIZE`` bytes each); never blocks."""
    def close(self) -> None:
        """Stop the thread and release the files and NVML. Idempotent."""
    def stats(self) -> dict[str, int]:
        """Counters: ticks, missed, overflow, late_max_ns, late_sum_ns, cpu_ns, sources."""

def _stop_all() -> None:
    """Stop every loop's thread (registered with atexit)."""
