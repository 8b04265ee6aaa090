"""One model, loaded once, on one device in one precision, for every file a command touches."""

from __future__ import annotations

import logging

from vidtwin_cli.callbacks import Warn
from vidtwin_cli.codec.runtime import ModelRunner, resolve_device, resolve_precision
from vidtwin_cli.codec.weights import LoadedModel, resolve_model

log = logging.getLogger(__name__)


class ModelSession:
    """Resolves `--model` lazily: the user's spec when given, else the default the data asks for.

    Device and precision are validated on construction, so bad flags fail before any work.
    """

    def __init__(
        self,
        spec: str | None,
        device: str = "cpu",
        precision: str = "fp32",
        batch_size: int = 1,
        warn: Warn = log.warning,
        compile: bool = False,
    ) -> None:
        self.spec = spec
        self.device = resolve_device(device)
        self.dtype = resolve_precision(precision, self.device)
        self.batch_size, self.warn, self.compile = batch_size, warn, compile
        self._loaded: tuple[LoadedModel, ModelRunner] | None = None

    def load(self, default: str | None = None) -> tuple[LoadedModel, ModelRunner]:
        """The model (`--model`, else `default`, else the built-in default) and its runner."""
        if self._loaded is None:
            loaded = resolve_model(self.spec or default)
            runner = ModelRunner(loaded.model, self.device, self.dtype, self.batch_size, self.warn, self.compile)
            self._loaded = (loaded, runner)
        return self._loaded
