"""Fuzz the .vtw reader and the commands that show files: every mutated file must read as valid data
or fail with ContainerError, and `inspect`/`verify` must answer with their documented exit codes,
one escaped line of error, no uncaught exception and no hang.

VIDTWIN_FUZZ_ITERS sets the iteration count (default 300, a few seconds) and VIDTWIN_FUZZ_SEED the
seed (default 0); docs/vtw-format.md says how to run it longer. A failing case is kept as
`failure-<iteration>.vtw` in the test's tmp_path and named in the failure message.

The slow test at the end sends mutants of files the CLI wrote through `inspect`, `verify` and `decode`,
each command in a process of its own under a memory and a time limit (VIDTWIN_FUZZ_CLI_MUTANTS, default
500, which keeps the whole suite near its 10-minute budget on 2 cores), and counts how each run ended.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import struct
import subprocess
import sys
import zlib
from collections import Counter
from collections.abc import Callable, Iterator

import pytest
import torch

from vidtwin_cli.vtw.container import read_vtw, verify_vtw
from vidtwin_cli.errors import ContainerError

from .conftest import REPO, run_cli, write_test_video
from .test_container import forge, tiny_vtw, unpack, vtw_bytes

ITERATIONS = int(os.environ.get("VIDTWIN_FUZZ_ITERS", "300"))
SEED = int(os.environ.get("VIDTWIN_FUZZ_SEED", "0"))
HANG_S = 20  # one mutant through the reader, inspect and verify; far beyond the ~10 ms they take
HOSTILE_VALUES = [-1, 0, 1, 7, 2**63, 2**70, 10**30, 10**3999, 1.5, 64.7, -0.0, 1e308, "", "x" * 9, "fp16", "inf", "64",
                  "\ud800", "[/]", "\x1b]8;;file:///etc/passwd\x07[link=file:///etc/passwd]x[/link]\x1b[2J", None, True,
                  [], {}, [1, 2], [2**70, 1], [True, 1], {"a": 1}]
JSON_BYTES = [b"{", b"}", b"[", b"]", b",", b":", b'"', b"0", b"-1", b"1e999", b"NaN", b"null", b"\\", b"\xff", b" "]
HOSTILE_TEXTS = ["\x1b]8;;file:///etc/passwd\x07click\x1b]8;;\x07", "[link=file:///etc/passwd]x[/link]", "[/]", "[bold]",
                 "\x1b[2J\x1b[31mred", "\r\x08\x07", "\u202eevil", "\ud800", ":smile:", "a\nb"]
TEXT_FIELDS = [("model", "spec"), ("created_by", "tool"), ("created_by", "version"), ("video", "codec"),
               ("provenance", "note")]
TENSOR_DTYPES = ["F16", "BF16", "F32", "F64", "I8", "U8", "I64", "BOOL", "XYZ"]


def _split(data: bytes) -> tuple[dict, bytes]:
    (n,) = struct.unpack_from("<Q", data)
    return json.loads(data[8 : 8 + n]), data[8 + n :]


def _join(outer: dict | bytes, rest: bytes) -> bytes:
    header = outer if isinstance(outer, bytes | bytearray) else json.dumps(outer).encode()
    return struct.pack("<Q", len(header)) + bytes(header) + rest


def truncate(data: bytes, rng: random.Random) -> bytes:
    return data[: rng.randrange(len(data))]


def flip_bytes(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        out[rng.randrange(len(out))] ^= rng.randint(1, 255)
    return bytes(out)


def flip_header_bytes(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    (n,) = struct.unpack_from("<Q", data)
    for _ in range(rng.randint(1, 3)):
        out[8 + rng.randrange(n)] ^= rng.randint(1, 255)
    return bytes(out)


def corrupt_header_json(data: bytes, rng: random.Random) -> bytes:
    """Delete, insert or replace bytes in the JSON header, keeping the length field right."""
    (n,) = struct.unpack_from("<Q", data)
    header, at = bytearray(data[8 : 8 + n]), rng.randrange(n)
    op = rng.choice(["delete", "insert", "replace"])
    if op == "delete":
        del header[at : at + rng.randint(1, 12)]
    elif op == "insert":
        header[at:at] = rng.choice(JSON_BYTES)
    else:
        header[at] = rng.choice(b'{}[]",:0123456789-eE. \\ntrufals')
    return _join(header, data[8 + n :])


def edit_tensor_table(data: bytes, rng: random.Random) -> bytes:
    """Change one dtype, shape or offset of the tensor table (data bytes unchanged)."""
    outer, rest = _split(data)
    name = rng.choice([k for k in outer if k != "__metadata__"])
    entry = outer[name]
    what = rng.choice(["dtype", "shape", "offsets", "drop", "add"])
    if what == "dtype":
        entry["dtype"] = rng.choice(TENSOR_DTYPES)
    elif what == "shape":
        dim = rng.randrange(len(entry["shape"]))
        entry["shape"][dim] = rng.choice([0, -1, entry["shape"][dim] + rng.choice([-1, 1]), 2**40, 10**3999, True, "3"])
    elif what == "offsets":
        entry["data_offsets"][rng.randrange(2)] += rng.choice([-8, -1, 1, 8, 2**40, 10**3999])
    elif what == "drop":
        del outer[name]
    else:
        outer["extra"] = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}
    return _join(outer, rest)


def hostile_value(header: dict, rng: random.Random) -> dict:
    """`header` (a .vtw's JSON header, either format) with one value, at any depth, hostile or deleted."""
    node = header
    while True:
        key = rng.choice(list(node))
        if isinstance(node[key], dict) and node[key] and rng.random() < 0.7:
            node = node[key]
            continue
        break
    if rng.random() < 0.15:
        del node[key]
    else:
        node[key] = rng.choice(HOSTILE_VALUES)
    return header


def resign_header_value(data: bytes, rng: random.Random) -> bytes:
    """Replace one value of the JSON header with a hostile one and re-sign, so the checksum passes."""
    tensors, header, _ = unpack(data)
    return forge(tensors, hostile_value(header, rng))


def resign_hostile_text(data: bytes, rng: random.Random) -> bytes:
    """Put terminal escapes, rich markup or a lone surrogate into a string field shown by `inspect`, re-signed."""
    tensors, header, _ = unpack(data)
    parent, key = rng.choice(TEXT_FIELDS)
    header[parent][key] = rng.choice(HOSTILE_TEXTS) + rng.choice(["", " tail"])
    return forge(tensors, header)


def resign_huge_number(data: bytes, rng: random.Random) -> bytes:
    """A number with thousands of digits (or past 2**63) as a tensor dim or a header integer, re-signed."""
    tensors, header, _ = unpack(data)
    value = rng.choice([10**3999, -(10**3999), 2**64, 2**70])
    if rng.random() < 0.5:
        header[rng.choice(["clips", "tiles_per_clip", "seed"])] = value
        return forge(tensors, header)
    outer, rest = _split(forge(tensors, header))
    entry = outer[rng.choice([k for k in outer if k != "__metadata__"])]
    entry[rng.choice(["shape", "data_offsets"])][0] = value
    return _join(outer, rest)


def resign_tensor_bytes(data: bytes, rng: random.Random) -> bytes:
    """Flip bytes inside one tensor (NaN, infinity, negative scales...) and re-sign."""
    tensors, header, _ = unpack(data)
    name = rng.choice(list(tensors))
    raw = tensors[name].contiguous().reshape(-1).view(torch.uint8).clone()
    for _ in range(rng.randint(1, 3)):
        raw[rng.randrange(raw.numel())] ^= rng.randint(1, 255)
    tensors[name] = raw.view(tensors[name].dtype).reshape(tensors[name].shape)
    return forge(tensors, header)


MUTATIONS: list[Callable[[bytes, random.Random], bytes]] = [
    truncate, flip_bytes, flip_header_bytes, corrupt_header_json, edit_tensor_table, resign_header_value,
    resign_tensor_bytes, resign_hostile_text, resign_huge_number,
]


class Hang(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    def expire(signum: int, frame: object) -> None:
        raise Hang(f"no answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def check_commands(path, valid: bool) -> None:
    """`inspect` (its table) and `verify --json` on one file, in-process through the real entry point."""
    inspect, verify = run_cli(["inspect", path]), run_cli(["verify", path, "--json"])
    for r in (inspect, verify):
        assert "error: unexpected" not in r.stderr and "Traceback" not in r.stderr, r.stderr
        assert "\x1b" not in r.stderr and "\x07" not in r.stderr, r.stderr  # escapes from the file stay inert
    assert (inspect.exit_code, verify.exit_code) == ((0, 0) if valid else (2, 1)), inspect.stderr + verify.stderr
    assert json.loads(verify.stdout)["valid"] is valid  # the verdict is printed, valid or not
    if not valid:
        assert len(inspect.stderr.splitlines()) == 1 and inspect.stderr.startswith(f"error: {path}")


def test_mutated_vtw_files_read_cleanly_or_raise_container_error(tmp_path):
    bases = [vtw_bytes(tiny_vtw("int8", vfr=True), tmp_path), vtw_bytes(tiny_vtw("fp16", frames=7), tmp_path)]
    rng = random.Random(SEED)
    outcomes: Counter[tuple[str, str]] = Counter()
    path = tmp_path / "fuzz.vtw"
    for i in range(ITERATIONS):
        mutate = rng.choice(MUTATIONS)
        data = mutate(rng.choice(bases), rng)
        path.write_bytes(data)
        try:
            with time_limit(HANG_S):
                try:
                    vtw = read_vtw(path)
                except ContainerError as e:
                    assert "\n" not in str(e) and str(e).startswith(str(path))
                    outcomes[mutate.__name__, "rejected"] += 1
                    assert verify_vtw(path).valid is False
                    check_commands(path, valid=False)
                    continue
                for t in (vtw.latents.structure, vtw.latents.dynamics_x, vtw.latents.dynamics_y):
                    assert t.dtype == torch.float32 and t.shape[0] == vtw.header.clips * vtw.header.tiles_per_clip
                    assert torch.isfinite(t).all()
                assert verify_vtw(path).valid is True
                check_commands(path, valid=True)
        except Exception as e:  # anything but ContainerError is a bug: keep the file, name the case
            kept = tmp_path / f"failure-{i}.vtw"
            kept.write_bytes(data)
            pytest.fail(f"seed {SEED} iteration {i} ({mutate.__name__}): {type(e).__name__}: {e} (file: {kept})")
        outcomes[mutate.__name__, "read"] += 1
    assert sum(outcomes.values()) == ITERATIONS
    if ITERATIONS >= 10 * len(MUTATIONS):  # each mutation ran and was caught at least once
        assert {name for name, outcome in outcomes if outcome == "rejected"} == {m.__name__ for m in MUTATIONS}


# --------------------------------------------------------------------------- format 2.0


def _chunks2(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, payload) of every chunk of a well-formed 2.0 file, trailer excluded."""
    out, pos = [], 12
    while pos < len(data) - 16:
        kind, n = struct.unpack_from("<4sI", data, pos)
        out.append((kind, data[pos + 8 : pos + 8 + n]))
        pos += 12 + n
    return out


def _build2(items: list[tuple[bytes, bytes]], prefix: bytes = b"\x89VTW\r\n\x1a\n\x02\x00\x00\x00",
            fix_index: bool = True) -> bytes:
    """A 2.0 file from chunks, every CRC right; with `fix_index` the INDX chunk and trailer point right."""
    out, clips, audio, index_at = bytearray(prefix), [], [], 0
    for kind, payload in items:
        if kind == b"INDX" and fix_index:
            payload = struct.pack(f"<I{len(clips)}QI{len(audio)}Q", len(clips), *clips, len(audio), *audio)
        if kind == b"INDX":
            index_at = len(out)
        (clips if kind == b"CLIP" else audio if kind == b"APKT" else []).append(len(out))
        head = struct.pack("<4sI", kind, len(payload))
        out += head + payload + struct.pack("<I", zlib.crc32(head + payload))
    return bytes(out + struct.pack("<Q", index_at) + b"vtw-end\n")


def recrc_payload_bytes(data: bytes, rng: random.Random) -> bytes:
    """Flip bytes inside one chunk's payload and fix its CRC, so the chunk's own parser meets them."""
    items = _chunks2(data)
    i = rng.randrange(len(items))
    kind, payload = items[i]
    raw = bytearray(payload)
    for _ in range(rng.randint(1, 3)):
        if raw:
            raw[rng.randrange(len(raw))] ^= rng.randint(1, 255)
    items[i] = (kind, bytes(raw))
    return _build2(items, fix_index=kind != b"INDX")


def resign_header_value2(data: bytes, rng: random.Random) -> bytes:
    """Replace one value of the JSON header with a hostile one, CRC fixed."""
    items = _chunks2(data)
    items[0] = (b"HEAD", json.dumps(hostile_value(json.loads(items[0][1]), rng)).encode())
    return _build2(items)


def rearrange_chunks(data: bytes, rng: random.Random) -> bytes:
    """Drop, duplicate, swap or invent a chunk, or break the version or trailer (CRCs right)."""
    items = _chunks2(data)
    what = rng.choice(["drop", "duplicate", "swap", "invent", "version", "index", "trailer"])
    i, j = rng.randrange(len(items)), rng.randrange(len(items))
    if what == "drop":
        del items[i]
    elif what == "duplicate":
        items.insert(j, items[i])
    elif what == "swap":
        items[i], items[j] = items[j], items[i]
    elif what == "invent":
        items.insert(j, (rng.choice([b"XTRA", b"CLIP", b"APKT", b"\x00\xff ~"]), rng.randbytes(rng.randint(0, 40))))
    elif what == "version":
        return _build2(items, prefix=b"\x89VTW\r\n\x1a\n" + struct.pack("<HH", rng.choice([1, 3, 65535]), 0))
    elif what == "index":
        return _build2(items, fix_index=False)[:-16] + struct.pack("<Q", rng.randrange(len(data))) + b"vtw-end\n"
    else:
        return data[:-8] + rng.randbytes(8)
    return _build2(items, fix_index=rng.random() < 0.8)


MUTATIONS_2: list[Callable[[bytes, random.Random], bytes]] = [
    truncate, flip_bytes, recrc_payload_bytes, resign_header_value2, rearrange_chunks,
]


def _coded_bases(tmp_path) -> list[bytes]:
    from vidtwin_cli.vtw.audio import AudioPacket, AudioTrack
    from vidtwin_cli.vtw.container import EntropyCoding, vtw_writer

    from fractions import Fraction

    bases = []
    for vfr, audio in ((True, False), (False, True)):
        vtw = tiny_vtw("entropy", frames=40, vfr=vfr, step=0.5, keyint=3)
        h, path = vtw.header, tmp_path / "base2.vtw"
        with vtw_writer(path, h.model, h.geometry, EntropyCoding(step=0.5, keyint=3)) as writer:
            writer.add(vtw.latents)
            if audio:
                packets = [AudioPacket(i * 1024, i * 1024, 1024, True, bytes([i]) * 7) for i in range(5)]
                writer.add_audio([AudioTrack("aac", 48000, "stereo", Fraction(1, 48000), b"\x11\x90")],
                                 iter([(0, packets[:3]), (0, packets[3:])]))
            writer.finish(h.video)
        bases.append(path.read_bytes())
    return bases


def test_mutated_vtw2_files_read_cleanly_or_raise_container_error(tmp_path):
    from vidtwin_cli.vtw.container import open_vtw

    bases = _coded_bases(tmp_path)
    rng = random.Random(SEED)
    outcomes: Counter[tuple[str, str]] = Counter()
    path = tmp_path / "fuzz2.vtw"
    for i in range(ITERATIONS):
        mutate = rng.choice(MUTATIONS_2)
        data = mutate(rng.choice(bases), rng)
        path.write_bytes(data)
        try:
            with open_vtw(path) as reader:
                clips = [reader.clip(k) for k in range(reader.header.clips)]
                packets = list(reader.audio_packets())
        except ContainerError as e:
            assert "\n" not in str(e) and str(e).startswith(str(path))
            outcomes[mutate.__name__, "rejected"] += 1
            assert verify_vtw(path).valid is False
            continue
        except Exception as e:  # anything but ContainerError is a reader bug: keep the file, name the case
            kept = tmp_path / f"failure2-{i}.vtw"
            kept.write_bytes(data)
            pytest.fail(f"seed {SEED} iteration {i} ({mutate.__name__}): {type(e).__name__}: {e} (file: {kept})")
        for clip in clips:
            for t in (clip.structure, clip.dynamics_x, clip.dynamics_y):
                assert t.dtype == torch.float32 and torch.isfinite(t).all()
        assert all(track < len(reader.audio) for track, _ in packets)
        assert verify_vtw(path).valid is True
        outcomes[mutate.__name__, "read"] += 1
    assert sum(outcomes.values()) == ITERATIONS
    if ITERATIONS >= 10 * len(MUTATIONS_2):
        assert {name for name, outcome in outcomes if outcome == "rejected"} == {m.__name__ for m in MUTATIONS_2}


# --------------------------------------------------------------------------- the CLI in its own processes (slow)


CLI_MUTANTS = int(os.environ.get("VIDTWIN_FUZZ_CLI_MUTANTS", "500"))
CLI_SERVERS = os.cpu_count() or 1  # commands run side by side, one server each
CLI_HEADROOM = 2 << 30  # address space a command may take beyond the modules it starts with (RLIMIT_AS)
CLI_HANG_S = 300  # per command: a valid decode takes about a second of CPU, far more wall time on a loaded machine
MUST_NOT_HAPPEN = ("uncaught", "hang", "crash", "raw escape", "partial output")


class ForkServer:
    """tests/cli_forkserver.py in a subprocess: `run(argv)` runs one `vidtwin` command line in a process of its own."""

    def __init__(self, workdir) -> None:
        workdir.mkdir(exist_ok=True)
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.cli_forkserver"], cwd=REPO, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)  # fmt: skip
        self.workdir, self.stdout, self.stderr = workdir, workdir / "stdout", workdir / "stderr"

    def run(self, argv: list) -> tuple[dict, str, str]:
        """(the server's answer, stdout, stderr) of one command line."""
        request = {"argv": [str(a) for a in argv], "stdout": str(self.stdout), "stderr": str(self.stderr),
                   "headroom": CLI_HEADROOM, "timeout": CLI_HANG_S}  # fmt: skip
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        answer = json.loads(self.proc.stdout.readline())
        return answer, self.stdout.read_text(errors="replace"), self.stderr.read_text(errors="replace")

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def how_it_ended(command: str, answer: dict, stdout: str, stderr: str, left_output: bool) -> str:
    """The class of one run: exit 0, exit 1 or 2 with one error line, or one of MUST_NOT_HAPPEN / a memory kill."""
    code, lines = answer["code"], stderr.splitlines()
    if answer["hang"]:
        return "hang"
    if "error: out of memory" in stderr or code == -signal.SIGKILL:
        return "memory kill"
    if code < 0:
        return "crash"  # killed by a signal of its own: a segfault, an abort
    if "\x1b" in stderr or "\x07" in stderr:
        return "raw escape"
    if code != 0 and left_output:
        return "partial output"
    if code not in (0, 1, 2) or "Traceback" in stderr or "error: unexpected" in stderr:
        return "uncaught"
    if command == "verify" and not stdout.startswith("{"):
        return "uncaught"  # `verify --json` always prints its verdict
    if code == 0:
        return "exit 0"
    if sum(line.startswith("error: ") for line in lines) > 1 or not all(line.startswith(("error: ", "warning: "))
                                                                         for line in lines):  # fmt: skip
        return "uncaught"  # an error must be one line
    return f"exit {code}, one-line error"


def run_mutant(server: ForkServer, data: bytes) -> list[tuple[str, str, dict, str]]:
    """(command, how it ended, the server's answer, stderr) of inspect, verify --json and decode on one mutant."""
    path, out = server.workdir / "mutant.vtw", server.workdir / "out.mp4"
    path.write_bytes(data)
    runs = []
    for command, flags in (("inspect", []), ("verify", ["--json"]), ("decode", ["-o", out, "-y"])):
        answer, stdout, stderr = server.run([command, path, *flags])
        runs.append((command, how_it_ended(command, answer, stdout, stderr, out.exists() and answer["code"] != 0),
                     answer, stderr))  # fmt: skip
        out.unlink(missing_ok=True)
    return runs


def cli_bases(server: ForkServer, tmp_path) -> list[tuple[str, bytes]]:
    """Files `vidtwin encode` wrote from real videos (one with AAC audio): two 1.x (int8, fp16 resized) and
    two 2.0 (default, with audio packets; --keyint 2 --quality 4)."""
    from .test_cli_audio import write_video_with_audio

    video = write_test_video(tmp_path / "video.mp4", frames=17)
    with_audio = write_video_with_audio(tmp_path / "audio.mp4", "aac")
    bases = []
    for name, flags in [("1.x", [video, "--dtype", "int8"]), ("1.x", [video, "--dtype", "fp16", "--fit", "resize"]),
                        ("2.0", [with_audio]), ("2.0", [video, "--keyint", "2", "--quality", "4"])]:  # fmt: skip
        out = tmp_path / "base.vtw"
        answer, _, stderr = server.run(["encode", *flags, "-o", out, "--model", "tiny", "-y"])
        assert answer["code"] == 0, stderr
        bases.append((name, out.read_bytes()))
    return bases


@pytest.mark.slow
def test_the_cli_survives_mutated_files_in_processes_of_its_own(tmp_path, capsys):
    """Every run ends in exit 0 or a one-line error (or, at worst, a memory kill under the limit): no uncaught
    exception, hang, crash, raw escape on stderr or output left by a failed decode."""
    from concurrent.futures import ThreadPoolExecutor

    servers = [ForkServer(tmp_path / f"server{k}") for k in range(CLI_SERVERS)]
    try:
        bases = cli_bases(servers[0], tmp_path)
        rng, mutants = random.Random(SEED), []
        for _ in range(CLI_MUTANTS):
            kind, base = rng.choice(bases)
            mutate = rng.choice(MUTATIONS if kind == "1.x" else MUTATIONS_2)
            mutants.append((kind, mutate.__name__, mutate(base, rng)))
        with ThreadPoolExecutor(CLI_SERVERS) as pool:  # server k takes mutants k, k + CLI_SERVERS, ...
            share = [pool.submit(lambda k: [run_mutant(servers[k], m[2]) for m in mutants[k::CLI_SERVERS]], k)
                     for k in range(CLI_SERVERS)]  # fmt: skip
            results = [None] * CLI_MUTANTS
            for k, future in enumerate(share):
                results[k::CLI_SERVERS] = future.result()
    finally:
        for server in servers:
            server.close()
    outcomes = Counter((command, ended) for runs in results for command, ended, _, _ in runs)
    failures = []
    for i, ((kind, mutation, data), runs) in enumerate(zip(mutants, results)):
        for command, ended, _, stderr in runs:
            if ended in MUST_NOT_HAPPEN:
                kept = tmp_path / f"failure-cli-{i}.vtw"
                kept.write_bytes(data)
                failures.append(f"{command} {kept} ({mutation}): {ended}, {stderr.strip()[-300:]!r}")
    answers = [answer for runs in results for _, _, answer, _ in runs]
    per_mutant = [(sum(a["seconds"] for _, _, a, _ in runs), sum(a["cpu"] for _, _, a, _ in runs)) for runs in results]
    with capsys.disabled():
        kinds = Counter(kind for kind, _, _ in mutants)
        print(f"\nCLI fuzz, seed {SEED}: {CLI_MUTANTS} mutants ({kinds['1.x']} of 1.x files, {kinds['2.0']} of 2.0), "
              f"each through inspect, verify --json and decode, {CLI_SERVERS} at a time (RLIMIT_AS: start + "
              f"{CLI_HEADROOM >> 30} GiB; {CLI_HANG_S} s each)")
        for command in ("inspect", "verify", "decode"):
            counts = sorted(((n, ended) for (c, ended), n in outcomes.items() if c == command), reverse=True)
            print(f"  {command:8s}" + ", ".join(f"{ended}: {n}" for n, ended in counts))
        print(f"  max per mutant (3 commands): {max(w for w, _ in per_mutant):.1f} s wall, "
              f"{max(c for _, c in per_mutant):.2f} s CPU; max RSS of a run "
              f"{max(a['max_rss_kib'] for a in answers) / 1024:.0f} MiB")
    assert not failures, "\n".join(failures[:10])
    assert sum(outcomes.values()) == 3 * CLI_MUTANTS
