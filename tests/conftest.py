"""Shared fixtures: tiny model, reference fixture, real CLI runs. No test touches the network."""

from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from vidtwin_cli.cache import default_media_dir  # noqa: E402 (imports nothing else)

# Before anything imports huggingface_hub (it reads these once): no network, a private empty cache.
# vidtwin's own cache (converted models, LPIPS) is private too; the fetched media stay where
# scripts/fetch_media.py put them.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HUB_CACHE"] = tempfile.mkdtemp(prefix="vidtwin-test-hub-")
os.environ["VIDTWIN_MEDIA"] = str(default_media_dir())
os.environ["VIDTWIN_CACHE"] = tempfile.mkdtemp(prefix="vidtwin-test-cache-")

from models import PRESETS, VidTwinAE  # noqa: E402
from vidtwin_cli.app import main  # noqa: E402
from vidtwin_cli.codec.weights import build_model  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).parent / "data"
REFERENCE = DATA / "reference"  # the official implementation's outputs; provenance in its README.md


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


def dead_pid() -> int:
    """The id of a process that has exited (what a SIGKILLed writer's temporary names)."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


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
        pytest.fail(f"reference fixture missing: {path}")
    return load_file(str(path))


# --------------------------------------------------------------------------- videos
# Real files only: generated with PyAV here, or the package-shipped clips fetched by
# scripts/fetch_media.py into $VIDTWIN_MEDIA (default <vidtwin cache>/media; CI fetches them first).

MEDIA_FILES = ("bikes.mp4", "carphone_pristine.mp4", "bigbuckbunny.mp4", "cityCC0.mpg")


def render_frame(index: int, width: int, height: int) -> np.ndarray:
    """A smooth, moving (H, W, 3) uint8 test picture, different for every frame index."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    r = 128 + 100 * np.sin(x / 7.0 + index / 3.0)
    g = 128 + 100 * np.cos(y / 5.0 - index / 4.0)
    b = 40 + 180 * (x + y) / (width + height)
    return np.clip(np.stack([r, g, b], -1), 0, 255).astype(np.uint8)


def write_test_video(path: Path, width: int = 48, height: int = 40, frames: int = 17, fps: Fraction = Fraction(25),
                     pts: list[int] | None = None, time_base: Fraction | None = None, codec: str = "libx264",
                     format: str | None = None, rotation: int | None = None,
                     sample_aspect: Fraction | None = None, pix_fmt: str | None = None) -> Path:
    """Write a small real video with PyAV (independently of vidtwin's writer).

    Odd sizes use yuv444p (4:2:0 needs even sides). `pts` (with `time_base`) gives variable frame
    rate; `frames=0` writes a valid container whose video stream has no frames. `rotation` stores a
    display rotation (counterclockwise degrees), as phones do for portrait video; `sample_aspect`
    makes the pixels non-square (anamorphic video).
    """
    formats = {f.name for f in av.Codec(codec, "w").video_formats}
    pix_fmt = pix_fmt or ("yuv420p" if width % 2 == 0 and height % 2 == 0 and "yuv420p" in formats else "yuv444p")
    time_base = time_base or 1 / fps
    with av.open(str(path), "w", format=format) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        stream.time_base = stream.codec_context.time_base = time_base
        if rotation is not None:
            stream.set_display_rotation(rotation)
        if sample_aspect is not None:
            stream.codec_context.sample_aspect_ratio = sample_aspect
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(render_frame(i, width, height), format="rgb24")
            frame.pts = pts[i] if pts is not None else i
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def cuts_inside_packets(path: Path, count: int) -> list[int]:
    """`count` byte offsets spread over the video, each one byte short of a whole video packet (the demuxer
    hands over a short final packet, and the decoder often decodes it without a word). Taken from the file's
    own layout: encoders do not give the same bytes on every machine, so a fixed offset may land between
    packets elsewhere."""
    with av.open(str(path)) as container:
        inside = [packet.pos + packet.size - 1 for packet in container.demux(container.streams.video[0])
                  if packet.size >= 2 and packet.pos >= 0]
    return [inside[round(i * (len(inside) - 1) / max(count - 1, 1))] for i in range(count)]


@pytest.fixture(scope="session")
def media_dir() -> Path:
    """The fetched real clips; missing media is a failure (run scripts/fetch_media.py), never a skip."""
    path = Path(os.environ["VIDTWIN_MEDIA"])  # set above
    missing = [name for name in MEDIA_FILES if not (path / name).is_file()]
    if missing:
        pytest.fail(f"test media missing in {path}: {', '.join(missing)}; run `python scripts/fetch_media.py`")
    return path


@pytest.fixture(scope="session")
def sample_video(tmp_path_factory) -> Path:
    """A real 48×40, 17-frame, 25 fps H.264 mp4 (2×2 tiles of 32 with padding; 17 is not a multiple of T)."""
    return write_test_video(tmp_path_factory.mktemp("video") / "sample.mp4")


@pytest.fixture
def make_video():
    """`write_test_video(path, width, height, frames, fps, pts, time_base, codec, format)`."""
    return write_test_video


def without_preset_warning(stderr: str) -> str:
    """stderr less the one warning every use of an untrained preset (`--model tiny`) prints, so tests
    that use `tiny` for speed can still ask for exactly the lines they are about."""
    return "".join(line for line in stderr.splitlines(keepends=True) if "is an untrained preset" not in line)
