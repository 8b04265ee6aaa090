"""One model, loaded once, on one device in one precision, for every file a command touches."""

from __future__ import annotations

import logging
from collections.abc import Callable

from vidtwin_cli.codec.hub import StageProgress
from vidtwin_cli.codec.runtime import ModelRunner, resolve_device, resolve_precision
from vidtwin_cli.codec.weights import LoadedModel, resolve_model, resolve_recorded_model, untrained_note
from vidtwin_cli.vtw.header import ModelRef

log = logging.getLogger(__name__)


class ModelSession:
    """Resolves `--model` lazily: the user's spec when given, else the model the data records (local only).

    Device and precision are validated on construction, so bad flags fail before any work.
    `progress` shows a hub model's download and one-time conversion.
    """

    def __init__(
        self,
        spec: str | None,
        device: str = "cpu",
        precision: str = "fp32",
        batch_size: int = 1,
        warn: Callable[[str], None] = log.warning,
        compile: bool = False,
        progress: StageProgress | None = None,
    ) -> None:
        self.spec, self.progress = spec, progress
        self.device = resolve_device(device)
        self.dtype = resolve_precision(precision, self.device)
        self.batch_size, self.warn, self.compile = batch_size, warn, compile
        self._loaded: tuple[LoadedModel, ModelRunner] | None = None

    def load(self, recorded: ModelRef | None = None) -> tuple[LoadedModel, ModelRunner]:
        """The model (`--model`, else the one `recorded` in a file if local, else the default) and its runner."""
        if self._loaded is None:
            if self.spec is None and recorded is not None:
                loaded = resolve_recorded_model(recorded.spec, recorded.commit)
            else:
                loaded = resolve_model(self.spec, progress=self.progress)
            if loaded.source == "preset":
                self.warn(untrained_note(loaded.spec))
            runner = ModelRunner(loaded.model, self.device, self.dtype, self.batch_size, self.warn, self.compile)
            self._loaded = (loaded, runner)
        return self._loaded
