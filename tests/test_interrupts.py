"""Ctrl-C, SIGTERM and SIGHUP through the real CLI process: one line, exit 128 + n, nothing left behind."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import pytest

from .conftest import REPO, render_frame


def _nut_header_and_frames(path, frames: int) -> bytes:
    """The bytes of a NUT stream of `frames` frames (a pipe that has sent them and stays open)."""
    with av.open(str(path), "w", format="nut") as container:
        stream = container.add_stream("ffv1", rate=25)
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv444p"
        for i in range(frames):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(render_frame(i, 32, 32), format="rgb24")))
        container.mux(stream.encode())
    return path.read_bytes()


@pytest.mark.parametrize(
    "signum, code, line",
    [(signal.SIGINT, 130, "interrupted; nothing written"),
     (signal.SIGTERM, 143, "terminated (SIGTERM); nothing written"),
     (signal.SIGHUP, 129, "terminated (SIGHUP); nothing written")],
    ids=["ctrl-c", "sigterm", "sighup"],
)  # fmt: skip
def test_stopped_encode_says_so_in_one_line_and_leaves_nothing(tmp_path, signum, code, line):
    out = tmp_path / "out"
    out.mkdir()
    stream = _nut_header_and_frames(tmp_path / "in.nut", 40)
    proc = subprocess.Popen([sys.executable, "-m", "vidtwin_cli", "encode", "-", "--format", "nut", "--model", "tiny",
                             "-o", str(out / "clip.vtw")], cwd=REPO, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=False)  # fmt: skip
    proc.stdin.write(stream[: len(stream) // 2])  # half the stream, and the pipe stays open: encode waits for more
    proc.stdin.flush()
    # torch is imported inside main()'s signal handling: once it is mapped, any moment is a fair test;
    # a second later the model is loaded and encode is blocked on the pipe, or close to it.
    maps, deadline = Path(f"/proc/{proc.pid}/maps"), time.monotonic() + 120
    while "libtorch" not in maps.read_text():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    time.sleep(1)
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=60)
    lines = stderr.decode().strip().splitlines()
    assert proc.returncode == code, lines
    assert lines[-1] == line and "Traceback" not in stderr.decode(), lines
    assert list(out.iterdir()) == []
