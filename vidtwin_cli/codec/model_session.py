"""One model, loaded once, on one device in one precision, for every file a command touches."""

from __future__ import annotations

import logging

from vidtwin_cli.callbacks import Warn
from vidtwin_cli.codec.hub import StageProgress
from vidtwin_cli.codec.model_info import ModelInfo
from vidtwin_cli.codec.runtime import AUTO, ModelRunner, precision_name, resolve_device, resolve_precision
from vidtwin_cli.codec.weights import LoadedModel, resolve_model, resolve_recorded_model, untrained_note
from vidtwin_cli.vtw.header import ModelRef

log = logging.getLogger(__name__)


class ModelSession:
    """Resolves `--model` lazily: the user's spec when given, else the model the data records (local only).

    Device and precision ("auto" by default: `runtime.precision_name`) are resolved and validated on
    construction, so bad flags fail before any work.
    `progress` shows a hub model's download and one-time conversion.
    """

    def __init__(
        self,
        spec: str | None,
        device: str = AUTO,
        precision: str = AUTO,
        batch_size: int = 1,
        warn: Warn = log.warning,
        compile: bool = False,
        progress: StageProgress | None = None,
    ) -> None:
        self.spec, self.progress = spec, progress
        self.device = resolve_device(device)
        self.precision = precision_name(precision, self.device)  # "auto" resolved: what results report
        self.dtype = resolve_precision(self.precision, self.device)
        self.batch_size, self.warn, self.compile = batch_size, warn, compile
        self._loaded: tuple[LoadedModel, ModelRunner] | None = None

    @property
    def info(self) -> ModelInfo:
        """What `vidtwin info` says of the model: parameters, latent shapes, compression rate, fingerprint."""
        return ModelInfo.of(self.load()[0])

    def load(self, recorded: ModelRef | None = None, *, recorded_in: str = "this .vtw",
             flag: str = "--model") -> tuple[LoadedModel, ModelRunner]:  # fmt: skip
        """The model (`--model`, else the one `recorded` in a file if local, else the default) and its runner.

        `recorded_in` and `flag` name the file that records the model and the option that overrides it, for
        the error when the recorded model is not local."""
        if self._loaded is None:
            if self.spec is None and recorded is not None:
                loaded = resolve_recorded_model(recorded.spec, recorded.commit, recorded_in=recorded_in, flag=flag)
            else:
                loaded = resolve_model(self.spec, progress=self.progress)
            if loaded.source == "preset":
                self.warn(untrained_note(loaded.spec))
            runner = ModelRunner(loaded.model, self.device, self.dtype, self.batch_size, self.warn, self.compile)
            self._loaded = (loaded, runner)
        return self._loaded
