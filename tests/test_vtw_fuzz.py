"""Fuzz the .vtw reader and the commands that show files: every mutated file must read as valid data
or fail with ContainerError, and `inspect`/`verify` must answer with their documented exit codes,
one escaped line of error, no uncaught exception and no hang.

VIDTWIN_FUZZ_ITERS sets the iteration count (default 300, a few seconds) and VIDTWIN_FUZZ_SEED the
seed (default 0); docs/vtw-format.md says how to run it longer. A failing case is kept as
`failure-<iteration>.vtw` in the test's tmp_path and named in the failure message.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import struct
from collections import Counter
from collections.abc import Callable, Iterator

import pytest
import torch

from vidtwin_cli.vtw.container import read_vtw, verify_vtw
from vidtwin_cli.errors import ContainerError

from .conftest import run_cli
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


def resign_header_value(data: bytes, rng: random.Random) -> bytes:
    """Replace one value of the JSON header with a hostile one and re-sign, so the checksum passes."""
    tensors, header, _ = unpack(data)
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
    return forge(tensors, header)


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
