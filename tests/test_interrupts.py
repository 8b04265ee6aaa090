"""Ctrl-C, SIGTERM and SIGHUP through the real CLI process: one line, exit 128 + n, nothing left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import pytest

from .conftest import REPO, render_frame, run_cli, write_test_video


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


READ, WRITE = 0, 1  # x86-64 syscall numbers


def _blocked_in(pid: int, syscall: int, fd: int) -> bool:
    """The process waits in `syscall` on `fd` (/proc/PID/syscall: the number, then the first argument)."""
    fields = Path(f"/proc/{pid}/syscall").read_text().split()
    return fields[:2] == [str(syscall), hex(fd)]


@pytest.mark.skipif(not Path("/proc/self/syscall").exists() or os.uname().machine != "x86_64",
                    reason="reads /proc/PID/syscall with x86-64 syscall numbers")  # fmt: skip
@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["ctrl-c", "sigterm"])
def test_a_stop_while_the_pipe_is_read_is_the_same_one_line(tmp_path, signum, code):
    """The signal lands inside PyAV's read callback, which drops exceptions that are not `Exception`s: it
    once gave a traceback and 'not a video file PyAV can read' (exit 2) instead of the stop."""
    stream = _nut_header_and_frames(tmp_path / "in.nut", 40)
    proc = subprocess.Popen([sys.executable, "-m", "vidtwin_cli", "encode", "-", "--format", "nut", "--model", "tiny",
                             "-o", str(tmp_path / "clip.vtw")], cwd=REPO, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    proc.stdin.write(stream[: len(stream) // 2])
    proc.stdin.flush()
    deadline = time.monotonic() + 120
    while not ("libav" in Path(f"/proc/{proc.pid}/maps").read_text() and _blocked_in(proc.pid, READ, 0)):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=60)
    how = "interrupted" if signum == signal.SIGINT else "terminated (SIGTERM)"
    assert (proc.returncode, stderr.decode()) == (code, f"{how}; nothing written\n")
    assert not (tmp_path / "clip.vtw").exists()


@pytest.mark.skipif(not Path("/proc/self/syscall").exists() or os.uname().machine != "x86_64",
                    reason="reads /proc/PID/syscall with x86-64 syscall numbers")  # fmt: skip
@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["ctrl-c", "sigterm"])
@pytest.mark.parametrize("command, whole", [
    (["decode", "v.vtw", "-f", "nut", "--codec", "ffv1"], 281_412),  # ffv1 frames: 281 KB of nut
    (["encode", "v.mp4", "--dtype", "fp32"], 148_808),  # a raw fp32 .vtw of 149 KB
], ids=["decode-video", "encode-vtw"])  # fmt: skip
def test_a_stop_while_a_stalled_pipe_is_written_is_one_line(tmp_path, signum, code, command, whole):
    """`-o -` into a pipe nobody reads, so the output (over the 64 KiB a pipe holds) blocks in write(2).
    For decode the signal lands inside PyAV's write callback, which printed it as an ignored exception (a
    traceback) and went on decoding to exit 0; encode said 'nothing written' with a part already sent."""
    write_test_video(tmp_path / "v.mp4", frames=96)
    assert run_cli(["encode", tmp_path / "v.mp4", "-o", tmp_path / "v.vtw", "--model", "tiny", "-q"]).exit_code == 0
    proc = subprocess.Popen([sys.executable, "-m", "vidtwin_cli", *command, "-o", "-", "--model", "tiny", "-q"],
                            cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.monotonic() + 120
    while not _blocked_in(proc.pid, WRITE, 1):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signum)
    stdout, stderr = proc.communicate(timeout=60)  # reading now unblocks the write
    how = "interrupted" if signum == signal.SIGINT else "terminated (SIGTERM)"
    lines = [line for line in stderr.decode().splitlines() if "untrained preset" not in line]
    assert (proc.returncode, lines) == (code, [f"{how}; the output sent to stdout is cut short"])
    assert 0 < len(stdout) < whole
