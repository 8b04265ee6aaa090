"""The run directory: resolved config, metrics log, step checkpoints and the final model.

Layout (docs/training.md):
    RUN/config.json                        the resolved TrainConfig
    RUN/metrics.jsonl                      one JSON object per line (train and val)
    RUN/checkpoints/step-00001000.safetensors   the model (vidtwin model file, loadable by --model)
    RUN/checkpoints/step-00001000.state.pt      optimisers, log-variance, discriminator, step
    RUN/checkpoints/latest                 name of the newest complete checkpoint (written last)
    RUN/model.safetensors                  the model at the end of training
Every file is written atomically; a checkpoint counts only once `latest` names it.
"""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path
from typing import Any

import torch

from vidtwin_cli.atomic import atomic_path
from vidtwin_cli.errors import InputError

STATE_FORMAT = "vidtwin-train-state"
STATE_VERSION = 1
_STEP_NAME = re.compile(r"^step-(\d{8})$")


class RunDir:
    """Paths and atomic file operations of one training run."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.checkpoints = self.root / "checkpoints"

    @property
    def config_path(self) -> Path:
        return self.root / "config.json"

    @property
    def metrics_path(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def final_model(self) -> Path:
        return self.root / "model.safetensors"

    def create(self) -> None:
        try:
            self.checkpoints.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise InputError(f"{self.root}: cannot create the run directory ({e.strerror or e})") from e

    def write_config(self, config: dict[str, Any]) -> None:
        with atomic_path(self.config_path) as tmp:
            tmp.write_text(json.dumps(config, indent=2) + "\n")

    def read_config(self) -> dict[str, Any]:
        try:
            return json.loads(self.config_path.read_text())
        except FileNotFoundError as e:
            raise InputError(f"{self.root}: no config.json, not a training run directory") from e
        except (OSError, json.JSONDecodeError) as e:
            raise InputError(f"{self.config_path}: unreadable ({e})") from e

    @staticmethod
    def name(step: int) -> str:
        return f"step-{step:08d}"

    def model_path(self, step: int) -> Path:
        return self.checkpoints / f"{self.name(step)}.safetensors"

    def state_path(self, step: int) -> Path:
        return self.checkpoints / f"{self.name(step)}.state.pt"

    def latest_step(self) -> int | None:
        """The step of the newest complete checkpoint, or None."""
        try:
            text = (self.checkpoints / "latest").read_text().strip()
        except FileNotFoundError:
            return None
        except OSError as e:
            raise InputError(f"{self.checkpoints / 'latest'}: unreadable ({e.strerror or e})") from e
        m = _STEP_NAME.match(text)
        if not m or not self.model_path(int(m.group(1))).is_file() or not self.state_path(int(m.group(1))).is_file():
            raise InputError(f"{self.checkpoints / 'latest'}: names a missing or bad checkpoint {text!r}")
        return int(m.group(1))

    def save_state(self, step: int, state: dict[str, Any]) -> None:
        """Training state beside the model file of the same step."""
        payload = {"format": STATE_FORMAT, "version": STATE_VERSION, "step": step, **state}
        with atomic_path(self.state_path(step)) as tmp:
            torch.save(payload, tmp)

    def load_state(self, step: int) -> dict[str, Any]:
        path = self.state_path(step)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as e:
            raise InputError(f"{path}: not a readable training state ({str(e).splitlines()[0]})") from e
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT or state.get("step") != step:
            raise InputError(f"{path}: not a vidtwin training state for step {step}")
        if state.get("version") != STATE_VERSION:
            raise InputError(f"{path}: training state version {state.get('version')} is not supported")
        return state

    def commit(self, step: int, keep: int) -> None:
        """Point `latest` at `step`, then delete all but the newest `keep` checkpoints."""
        with atomic_path(self.checkpoints / "latest", suffix="") as tmp:
            tmp.write_text(self.name(step) + "\n")
        steps = sorted(int(m.group(1)) for p in self.checkpoints.glob("step-*.state.pt")
                       if (m := _STEP_NAME.match(p.name.removesuffix(".state.pt"))))  # fmt: skip
        for old in steps[:-keep]:
            self.model_path(old).unlink(missing_ok=True)
            self.state_path(old).unlink(missing_ok=True)


class MetricsLog:
    """Appends JSON lines; on resume drops lines beyond the resumed step (they will be redone)."""

    def __init__(self, path: Path, resume_step: int | None) -> None:
        self.path = Path(path)
        if resume_step is None:
            self.path.write_text("")
        elif self.path.exists():
            kept = [line for line in self.path.read_text().splitlines() if line.strip() and _line_step(line) <= resume_step]
            with atomic_path(self.path) as tmp:
                tmp.write_text("".join(line + "\n" for line in kept))

    def write(self, record: dict[str, Any]) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")


def _line_step(line: str) -> int:
    try:
        return int(json.loads(line).get("step", 0))
    except (json.JSONDecodeError, AttributeError, TypeError, ValueError):
        return 0
