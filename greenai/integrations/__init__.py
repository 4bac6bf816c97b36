"""Energy where ML engineers already look: trainers, experiment trackers, notebooks.

Each module needs its own extra and imports its package only when used:

* :mod:`greenai.integrations.transformers`: ``GreenAICallback`` for the Hugging Face
  ``Trainer`` (``pip install 'greenai[transformers]'``).
* :mod:`greenai.integrations.lightning`: ``GreenAICallback`` for a Lightning ``Trainer``
  (``greenai[lightning]``).
* :mod:`greenai.integrations.mlflow`, :mod:`~greenai.integrations.wandb`,
  :mod:`~greenai.integrations.tensorboard`: sinks (:class:`greenai.sinks.Sink`) that write
  a running job's figures to MLflow, Weights & Biases or TensorBoard.
* :mod:`greenai.integrations.notebook`: the ``%%greenai`` cell magic (``%load_ext greenai``).

:mod:`greenai.integrations.figures` names the figures they all write.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from greenai.errors import ConfigError

__all__ = ["require"]


def require(module: str, extra: str, package: str | None = None) -> ModuleType:
    """Import ``module``, or raise a ConfigError that says which extra to install.

    Raises:
        ConfigError: The package is not installed.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError(
            f"this integration needs {package or module}: pip install 'greenai[{extra}]'"
            f" (or: pip install {package or module}); importing it failed: {exc}"
        ) from exc
