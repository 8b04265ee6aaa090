"""Hostile input through real processes: injected terminal escapes, closed pipes, signals, a full disk.

Every case ends in one escaped line on stderr with the documented exit code, and leaves no partial
or hidden file behind (docs/cli.md, "Exit codes" and "Interrupted runs").
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import REPO, cuts_inside_packets, dead_pid, run_cli, without_preset_warning, write_test_video
from .test_hub import hub_files, official_ckpt  # noqa: F401 (fixtures)
from .test_container import forge, tiny_vtw, unpack, vtw_bytes

TINY = ["--model", "tiny"]
INJECTED = "\x1b]8;;file:///etc/passwd\x07click\x1b]8;;\x07 [link=file:///etc/passwd]x[/link] [/] \x1b[2J\u202e"


def vidtwin(*args: object, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "vidtwin_cli", *map(str, args)], cwd=REPO,
                            stderr=subprocess.PIPE, **kwargs)  # fmt: skip


@pytest.fixture(scope="module")
def encoded(tmp_path_factory) -> Path:
    """A real .vtw of a 64×48, 192-frame video (tiny model): a decode that lasts long enough to interrupt."""
    folder = tmp_path_factory.mktemp("hostile")
    video = write_test_video(folder / "clip.mp4", width=64, height=48, frames=192)
    result = run_cli(["encode", video, "-o", folder / "clip.vtw", *TINY])
    assert result.exit_code == 0, result.stderr
    return folder / "clip.vtw"


def hidden(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.startswith(".")]


# --------------------------------------------------------------------------- injection


def test_header_strings_are_shown_escaped_never_interpreted(tmp_path):
    tensors, header, _ = unpack(vtw_bytes(tiny_vtw("int8"), tmp_path))
    header["model"]["spec"] = header["created_by"]["tool"] = INJECTED
    header["provenance"] = {"note": INJECTED}
    path = tmp_path / "evil.vtw"
    path.write_bytes(forge(tensors, header))
    r = run_cli(["inspect", path])
    assert r.exit_code == 0, r.stderr  # `[/]` crashed rich's markup parser before
    assert "\x1b" not in r.stderr and "\x07" not in r.stderr and "\u202e" not in r.stderr
    assert "\\x1b]8;;file:///etc/passwd\\x07click" in r.stderr and "[link=file:///etc/passwd]x[/link] [/]" in r.stderr


def test_file_names_in_errors_and_progress_are_escaped(tmp_path):
    name = tmp_path / "a\x1b[31m[bold]b\x07.vtw"
    r = run_cli(["inspect", name])
    assert r.exit_code == 2 and r.stderr.count("\n") == 1
    assert "\x1b" not in r.stderr and "a\\x1b[31m[bold]b\\x07.vtw: no such file" in r.stderr


def test_huge_tensor_dims_are_a_container_error(tmp_path):
    data = vtw_bytes(tiny_vtw("fp16"), tmp_path)
    (n,) = __import__("struct").unpack_from("<Q", data)
    outer = json.loads(data[8 : 8 + n])
    outer["structure"]["shape"][0] = 10**3999  # formatting its product once raised ValueError
    head = json.dumps(outer).encode()
    path = tmp_path / "dims.vtw"
    path.write_bytes(len(head).to_bytes(8, "little") + head + data[8 + n :])
    for args, code in ((["inspect", path], 2), (["verify", path, "--json"], 1)):
        r = run_cli(args)
        assert r.exit_code == code and "corrupt tensor entry" in r.stderr and "unexpected" not in r.stderr


# --------------------------------------------------------------------------- size bombs


def claimed_size_vtw(tmp_path: Path, side: int) -> Path:
    """A valid ~3 KB .vtw (one tile per clip, fit=resize) that claims side×side source frames."""
    tensors, header, _ = unpack(vtw_bytes(tiny_vtw("int8", frames=8, fit="resize"), tmp_path))
    for part in ("video", "geometry"):
        header[part]["width"] = header[part]["height"] = side
    path = tmp_path / f"claims{side}.vtw"
    path.write_bytes(forge(tensors, header))
    return path


@pytest.mark.parametrize("side, flags, message", [
    (16384, [], "decodes to 16384x16384 frames, beyond the 8192-pixel limit"),
    (4096, ["--max-side", "1024"], "beyond the 1024-pixel limit"),
    (4096, ["--max-side", "20000"], "--max-side 20000 is outside 1..16384"),
], ids=["16384-default-limit", "4096-lower-limit", "limit-beyond-format"])  # fmt: skip
def test_decode_refuses_frames_beyond_the_limit_in_one_line(tmp_path, side, flags, message):
    """16384² once tried to allocate 18 GiB in float before failing; now it is refused before any work."""
    r = run_cli(["decode", claimed_size_vtw(tmp_path, side), "-o", tmp_path / "out.mp4", *TINY, "--force", *flags])
    assert r.exit_code == 2 and r.stderr.count("\n") == 1 and message in r.stderr, r.stderr
    assert not (tmp_path / "out.mp4").exists()


@pytest.mark.slow
def test_decode_of_a_claimed_4096_frame_runs_in_bounded_memory(tmp_path):
    """A 3 KB file claiming 4096² frames: peak RSS 4.6 GiB before (a float clip at full size), ~1.4 GiB now,
    most of it x264's lookahead at that size."""
    src = claimed_size_vtw(tmp_path, 4096)
    code = ("import resource, subprocess, sys; p = subprocess.run(sys.argv[1:]); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(p.returncode)")
    done = subprocess.run([sys.executable, "-c", code, sys.executable, "-m", "vidtwin_cli", "decode", str(src), "-o",
                           str(tmp_path / "out.mp4"), *TINY, "--force"], cwd=REPO, capture_output=True, timeout=600)
    assert done.returncode == 0, done.stderr.decode()
    peak_kib = int(done.stdout.decode().split()[-1])
    assert peak_kib < 2 * 1024 * 1024, f"peak RSS {peak_kib / 1024**2:.2f} GiB"


# --------------------------------------------------------------------------- pipes


@pytest.mark.parametrize("after", [0, 100], ids=["at-once", "after-100-bytes"])
def test_decode_into_a_pipe_closed_early_is_one_line(encoded, after):
    proc = vidtwin("decode", encoded, "-o", "-", "--format", "nut", *TINY, stdout=subprocess.PIPE)
    proc.stdout.read(after)  # like `| head -c 100`
    proc.stdout.close()
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 1
    assert without_preset_warning(stderr) == "error: <stdout>: cannot write (Broken pipe)\n"


@pytest.mark.parametrize("args, closed, message", [
    (["inspect", "-"], "stdin", "standard input is closed"),
    (["encode", "-", "--format", "nut", "-o", "x.vtw", *TINY], "stdin", "standard input is closed"),
    (["inspect", "{vtw}", "--json"], "stdout", "standard output is closed"),
], ids=["inspect-stdin", "encode-stdin", "inspect-stdout"])  # fmt: skip
def test_closed_standard_streams_are_usage_errors(encoded, tmp_path, args, closed, message):
    def close() -> None:
        os.close(0 if closed == "stdin" else 1)

    args = [str(encoded) if a == "{vtw}" else a for a in args]
    proc = subprocess.run([sys.executable, "-m", "vidtwin_cli", *args], cwd=tmp_path, preexec_fn=close,
                          stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(REPO)})  # fmt: skip
    assert (proc.returncode, proc.stderr.decode().count("\n")) == (2, 1), proc.stderr.decode()
    assert message in proc.stderr.decode()


# --------------------------------------------------------------------------- signals and leftovers


def _interrupt_decode(encoded: Path, out: Path, sig: int) -> tuple[int, str]:
    """Start a decode, wait until its hidden temporary exists, send `sig`; (exit code, stderr)."""
    proc = vidtwin("decode", encoded, "-o", out / "clip.mp4", *TINY)
    deadline = time.monotonic() + 120
    while not hidden(out) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, "the decode finished before it could be interrupted"
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    return proc.returncode, stderr.decode()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_termination_signals_clean_up_like_ctrl_c(encoded, tmp_path, sig):
    code, stderr = _interrupt_decode(encoded, tmp_path, sig)
    assert code == 128 + sig
    assert without_preset_warning(stderr) == f"terminated ({signal.Signals(sig).name}); nothing written\n"
    assert list(tmp_path.iterdir()) == [], "no output and no hidden temporary may be left"


def test_killed_run_leftovers_are_removed_by_the_next_run(encoded, tmp_path):
    code, _ = _interrupt_decode(encoded, tmp_path, signal.SIGKILL)
    assert code == -signal.SIGKILL
    [leftover] = hidden(tmp_path)  # named after the output, this host and the dead process
    assert leftover.startswith(f".clip.mp4.{socket.gethostname()}.") and not (tmp_path / "clip.mp4").exists()
    live = tmp_path / f".clip.mp4.{socket.gethostname()}.{os.getpid()}.abcdefgh.mp4"  # a running writer's
    live.write_bytes(b"")
    stale = tmp_path / f".clip.mp4.{socket.gethostname()}.{dead_pid()}.abcdefgh.mp4"
    stale.write_bytes(b"")
    r = run_cli(["decode", encoded, "-o", tmp_path / "clip.mp4", *TINY])
    assert r.exit_code == 0, r.stderr
    assert sorted(hidden(tmp_path)) == [live.name], "dead writers' temporaries go, a live writer's stays"


# --------------------------------------------------------------------------- a full disk


@pytest.fixture
def small_disk(tmp_path) -> Path:
    """A real 64 KiB filesystem (tmpfs; needs root, as CI has)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.decode().strip() or 'not root'})")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


@pytest.mark.parametrize("command, output", [("encode", "clip.vtw"), ("decode", "clip.mp4")])
def test_full_disk_is_a_runtime_error_with_nothing_left(encoded, small_disk, command, output):
    (small_disk / "filler").write_bytes(b"\0" * (60 << 10))
    source = encoded if command == "decode" else encoded.with_suffix(".mp4")
    r = run_cli([command, source, "-o", small_disk / output, *TINY])
    assert r.exit_code == 1 and without_preset_warning(r.stderr).count("\n") == 1, r.stderr
    assert f"{small_disk / output}: cannot" in r.stderr and "No space left on device" in r.stderr
    assert "unexpected" not in r.stderr
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler"]


def test_batch_on_a_full_disk_still_prints_its_summary(tmp_path, small_disk):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):
        write_test_video(src / f"clip{i}.mp4", width=64, height=48, frames=40)
    (small_disk / "filler").write_bytes(b"\0" * (56 << 10))
    r = run_cli(["batch", "encode", src, "-o", small_disk, *TINY, "--json"])
    assert r.exit_code == 1, r.stderr
    summary = json.loads(r.stdout)
    assert (summary["files"], summary["failed"]) == (3, 3)
    assert all("No space left on device" in f["error"] and "unexpected" not in f["error"] for f in summary["failures"])
    assert "unexpected" not in r.stderr


# --------------------------------------------------------------------------- a file choosing a model


def test_a_file_never_chooses_what_is_downloaded_or_loaded(tmp_path, hub_files):
    """A .vtw that records a hub id or a model path: decode asks no hub, opens no path, and says --model."""
    from models import PRESETS
    from vidtwin_cli.codec.weights import build_model, save_model

    from .test_hub import FakeHub, hub_env

    model_file = tmp_path / "model.safetensors"
    sha = save_model(model_file, build_model(PRESETS["tiny"]))
    tensors, header, _ = unpack(vtw_bytes(tiny_vtw("fp16"), tmp_path))
    header["model"]["weights_sha256"] = sha
    files = {}
    for name, spec in (("hub", "acme/vidtwin"), ("path", str(model_file))):
        header["model"]["spec"] = spec
        files[name] = tmp_path / f"{name}.vtw"
        files[name].write_bytes(forge(tensors, header))
    with FakeHub(hub_files) as hub:
        env = hub_env(tmp_path, hub.endpoint)  # online: only the code stands between the file and the hub
        runs = {name: subprocess.run([sys.executable, "-m", "vidtwin_cli", "decode", str(path), "-o",
                                      str(tmp_path / f"{name}.mp4")], env=env, capture_output=True, text=True,
                                     timeout=300) for name, path in files.items()}  # fmt: skip
        assert hub.requests == []
    for name, run in runs.items():
        assert run.returncode == 2 and run.stderr.count("\n") == 1, run.stderr
        assert "--model" in run.stderr and not (tmp_path / f"{name}.mp4").exists()
    assert "never chooses a file to load" in runs["path"].stderr
    given = run_cli(["decode", files["path"], "-o", tmp_path / "given.mp4", "--model", model_file])
    assert given.exit_code == 0, given.stderr  # the user's --model is what loads it


# --------------------------------------------------------------------------- cut and endless input


@pytest.fixture(scope="module")
def nut_stream(tmp_path_factory) -> tuple[bytes, int]:
    """A 300-frame H.264 nut stream (about 17 KB), as `ffmpeg ... -f nut -` would pipe it, and an offset
    inside a packet about a third of the way in."""
    path = write_test_video(tmp_path_factory.mktemp("nut") / "long.nut", width=64, height=48, frames=300,
                            format="nut")
    return path.read_bytes(), cuts_inside_packets(path, 4)[1]


def encode_stdin(stdin: bytes | object, out: Path, *flags: str) -> tuple[int, str]:
    """`vidtwin encode - --format nut` in its own process, fed through a real pipe (or a file object)."""
    proc = subprocess.run([sys.executable, "-m", "vidtwin_cli", "encode", "-", "--format", "nut", "-o", str(out), *TINY,
                           *flags], cwd=REPO, capture_output=True, timeout=300,
                          **({"input": stdin} if isinstance(stdin, bytes) else {"stdin": stdin}))  # fmt: skip
    return proc.returncode, without_preset_warning(proc.stderr.decode())


@pytest.mark.parametrize("strict", [False, True], ids=["warns", "strict"])
def test_a_cut_stream_is_reported_with_the_frames_kept(nut_stream, tmp_path, strict):
    """Cut a third of the way in it once made a valid .vtw of a third of the video without a word."""
    data, cut = nut_stream
    out = tmp_path / "cut.vtw"
    code, stderr = encode_stdin(data[:cut], out, "-q", *(["--strict"] if strict else []))
    assert stderr.count("\n") == 1 and "<stdin>: damaged or cut short (" in stderr, stderr
    kept = int(stderr.split("; ")[-1].split()[0])
    assert 60 < kept < 300
    if strict:
        assert code == 2 and stderr.startswith("error: ") and not out.exists()
    else:
        assert code == 0 and stderr.startswith("warning: ") and "are kept" in stderr
        assert json.loads(run_cli(["inspect", out, "--json"]).stdout)["video"]["frame_count"] == kept


def test_a_whole_stream_gives_no_warning(nut_stream, tmp_path):
    assert encode_stdin(nut_stream[0], tmp_path / "whole.vtw", "-q") == (0, "")


def test_endless_garbage_on_stdin_gives_up_in_bounded_input(tmp_path):
    """/dev/zero as nut: the demuxer would search for a start code forever."""
    with open("/dev/zero", "rb") as zeros:
        code, stderr = encode_stdin(zeros, tmp_path / "z.vtw")
    assert (code, stderr) == (2, "error: <stdin>: no video frame in the first 64 MiB of input; is it really nut?\n")
    assert not (tmp_path / "z.vtw").exists()
