"""What a GPU read through its vendor's management library (NVML, AMD SMI) does alike.

:class:`LibraryGPU` holds the life cycle: :meth:`~LibraryGPU.open` loads and initialises the
library, probes the GPU once (the vendor's ``_probe``) and shuts the library down again if
probing fails; :meth:`~LibraryGPU.close` shuts it down once for the init ``open()`` made;
:meth:`~LibraryGPU.listing` does the same around a discovery pass. A vendor's module gives
the library's names (its init and shutdown functions, its exception class), how to load it and
how to turn its errors into greenai's, and its probe and reads.
"""

from __future__ import annotations

import abc
import contextlib
import warnings
from collections.abc import Callable
from types import ModuleType
from typing import Any, ClassVar, TypeVar

from greenai.devices.base import Device
from greenai.errors import DeviceError, DeviceFailureWarning, DeviceUnavailableError

__all__ = ["LibraryGPU"]

T = TypeVar("T")


class LibraryGPU(Device):
    """A GPU read through a vendor library that must be initialised and shut down.

    Args:
        index: Position among the vendor's GPUs visible to this process.
        module: The library's Python module, or a stand-in for tests; loaded by
            :meth:`open` when None.
        name: The device's name.
        physical_index: The library's own index of the GPU (None: found another way).
        uuid: The GPU's UUID, when known.
    """

    kind = "gpu"
    update_period_s = 0.1
    library: ClassVar[str] = "the GPU library"
    """The library's name, for messages (``"NVML"``, ``"AMD SMI"``)."""
    init_function: ClassVar[str]
    """The module's function that initialises the library (``"nvmlInit"``)."""
    shutdown_function: ClassVar[str]
    """The module's function that undoes one init (``"nvmlShutdown"``)."""
    error_class: ClassVar[str]
    """The module's exception class (``"NVMLError"``)."""

    def __init__(
        self,
        index: int,
        *,
        module: ModuleType | None,
        name: str,
        physical_index: int | None,
        uuid: str | None,
    ) -> None:
        self.index = index
        self.name = name
        self.physical_index = physical_index
        self.uuid = uuid
        self.model: str | None = None
        self._module = module
        self._handle: Any = None
        self._has_counter = False
        self._power: str | None = None
        self._open = False

    # --- the vendor's hooks -----------------------------------------------------------------
    @staticmethod
    @abc.abstractmethod
    def _load() -> ModuleType:
        """Import the library's module; DeviceUnavailableError where it is missing."""

    @classmethod
    def _errors(cls, module: ModuleType) -> type[Exception]:
        """The exception type the library raises."""
        errors: type[Exception] = getattr(module, cls.error_class)
        return errors

    @staticmethod
    @abc.abstractmethod
    def _convert(
        module: ModuleType, err: Exception, context: str, *, read: bool = False
    ) -> DeviceError:
        """The greenai error (with what to do) for one of the library's errors."""

    @classmethod
    def _init(cls, module: ModuleType) -> None:
        """Initialise the library (counted: each init needs a shutdown)."""
        getattr(module, cls.init_function)()

    @classmethod
    def _shutdown(cls, module: ModuleType) -> None:
        """Undo one init."""
        getattr(module, cls.shutdown_function)()

    @abc.abstractmethod
    def _probe(self, module: ModuleType) -> None:
        """Find the GPU, set ``_handle``, ``model``, ``method``, ``_has_counter``, ``_power``."""

    def _closed_handle(self) -> Any:
        """The handle to keep once closed (None, or one the caller gave)."""
        return None

    # --- the life cycle ---------------------------------------------------------------------
    @property
    def has_counter(self) -> bool:
        """Whether :meth:`open` found the GPU's energy counter."""
        return self._has_counter

    def open(self) -> None:
        """Initialise the library, find the GPU and probe once what it can report.

        Raises:
            DeviceUnavailableError: The library or the driver is missing, the GPU is not
                listed, or it reports neither energy nor power.
            DeviceError: Any other failure of the library (for example missing permissions).
        """
        if self._open:
            return
        module = self._module if self._module is not None else self._load()
        self._module = module
        errors = self._errors(module)
        try:
            self._init(module)
        except errors as err:
            raise self._convert(
                module, err, f"{self.name}: cannot initialise {self.library}"
            ) from err
        try:
            self._probe(module)
        except errors as err:
            self._shutdown_quietly(module)
            raise self._convert(module, err, f"{self.name}: cannot open") from err
        except BaseException:
            self._shutdown_quietly(module)
            raise
        self._open = True

    def close(self) -> None:
        """Shut the library down once for the init :meth:`open` made. Never raises."""
        if not self._open:
            return
        self._open = False
        self._handle = self._closed_handle()
        if self._module is not None:
            self._shutdown_quietly(self._module)

    @classmethod
    def _shutdown_quietly(cls, module: ModuleType) -> None:
        # close() never raises; a failed shutdown leaves nothing we could reclaim.
        with contextlib.suppress(Exception):
            cls._shutdown(module)

    @classmethod
    def listing(
        cls, module: ModuleType | None, what: str, listed: Callable[[ModuleType], T]
    ) -> tuple[ModuleType, T] | None:
        """Run ``listed(module)`` between an init and a shutdown of the library.

        For discovery: None where the library or the driver is missing (quietly), or where
        the library fails otherwise (with one :class:`~greenai.errors.DeviceFailureWarning`
        naming ``what``).
        """
        try:
            module = module if module is not None else cls._load()
        except DeviceUnavailableError:
            return None
        errors = cls._errors(module)
        try:
            cls._init(module)
        except errors as err:
            error = cls._convert(module, err, f"{what}: cannot initialise {cls.library}")
            if type(error) is not DeviceUnavailableError:  # not merely absent: say so
                warnings.warn(str(error), DeviceFailureWarning, stacklevel=3)
            return None
        try:
            return module, listed(module)
        except errors as err:
            error = cls._convert(module, err, f"{what}: cannot list the GPUs")
            warnings.warn(str(error), DeviceFailureWarning, stacklevel=3)
            return None
        finally:
            cls._shutdown_quietly(module)
