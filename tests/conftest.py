"""Shared fixtures: tiny model, reference fixture, real CLI runs. No test touches the network."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

# Before anything imports huggingface_hub (it reads these once): no network, a private empty cache.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HUB_CACHE"] = tempfile.mkdtemp(prefix="vidtwin-test-hub-")

from models import PRESETS, VidTwinAE  # noqa: E402
from vidtwin_cli.app import main  # noqa: E402
from vidtwin_cli.weights import build_model  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO.parent / "shared" / "reference"
DATA = Path(__file__).parent / "data"


@dataclass
class CliResult:
    exit_code: int
    stdout: bytes
    stderr: str

    @property
    def text(self) -> str:
        return self.stdout.decode()


def run_cli(args: list[str], input: bytes | None = None) -> CliResult:
    """Run `vidtwin ARGS` in-process through the real entry point (exit-code mapping included)."""
    runner = CliRunner()
    with runner.isolation(input=input) as (out, err, *_):
        code = main([str(a) for a in args])
        return CliResult(code, out.getvalue(), err.getvalue().decode())


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture(scope="session")
def tiny_config():
    return PRESETS["tiny"]


@pytest.fixture(scope="session")
def tiny_model(tiny_config) -> VidTwinAE:
    return build_model(tiny_config)


@pytest.fixture(scope="session")
def official_fixture() -> dict[str, torch.Tensor]:
    path = REFERENCE / "tiny_official.safetensors"
    if not path.is_file():
        pytest.fail(f"reference fixture missing: {path} (shared/ must sit beside the repo)")
    return load_file(str(path))
