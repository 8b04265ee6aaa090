"""Several `vidtwin batch` processes on one OUT_DIR: each input worked on by one, stale claims taken over."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, dead_pid, run_cli, write_test_video
from vidtwin_cli.batch.claims import Claims, output_claim
from vidtwin_cli.vtw.container import verify_vtw

TINY = ["--model", "tiny", "--threads", "1"]
CLIPS = 6


def _clips(src: Path, count: int = CLIPS) -> list[int]:
    """`count` small real videos; their frame counts."""
    src.mkdir()
    frames = [16 + i for i in range(count)]
    for i, n in enumerate(frames):
        write_test_video(src / f"clip{i}.mp4", frames=n)
    return frames


def _start(src: Path, out: Path, *extra: str) -> subprocess.Popen:
    """`vidtwin batch encode` in a process group of its own (its workers included)."""
    command = [sys.executable, "-m", "vidtwin_cli", "batch", "encode", str(src), "-o", str(out), *TINY, "--json", *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # fmt: skip


def _records(out: Path) -> dict[str, dict]:
    lines = (out / "batch-encode.jsonl").read_text().splitlines()
    return {Path(r["input"]).name: r for r in map(json.loads, lines)}


def _plant(out: Path, output: str, host: str, pid: int, age_s: float = 0.0) -> Path:
    """A claim file as another process would leave it, `age_s` seconds after its last heartbeat."""
    path = output_claim(out, out / output)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"host": host, "pid": pid, "claim": "0123456789abcdef", "since": "2026-01-01T00:00:00Z"}))
    if age_s:
        os.utime(path, (time.time() - age_s,) * 2)
    return path


def test_three_processes_on_one_out_dir_encode_every_input_exactly_once(tmp_path):
    src, out = tmp_path / "src", tmp_path / "out"
    frames = _clips(src)
    procs = [_start(src, out) for _ in range(3)]
    results = [proc.communicate(timeout=600) for proc in procs]
    for proc, (stdout, stderr) in zip(procs, results):
        assert proc.returncode == 0, stderr
    summaries = [json.loads(stdout) for stdout, _ in results]
    for proc, s in zip(procs, summaries):  # the figures for the record (pytest -s shows them)
        print(f"process {proc.pid}: exit {proc.returncode}, " + ", ".join(
            f"{key} {s.get(key)}" for key in ("files", "ok", "skipped", "failed", "others", "frames", "model_loads", "wall_s")))
    assert sum(s["ok"] for s in summaries) == CLIPS  # each input encoded once, by one of the three
    assert all(s["ok"] + s["others"] + s["skipped"] == CLIPS and s["failed"] == 0 for s in summaries)
    assert sum(s["frames"] for s in summaries) == sum(frames)
    records = _records(out)
    assert sorted(records) == [f"clip{i}.mp4" for i in range(CLIPS)]
    assert all(r["status"] == "ok" and r["attempts"] == 1 for r in records.values())
    assert all(verify_vtw(out / f"clip{i}.vtw").valid for i in range(CLIPS))
    assert not list(out.rglob(".*")), "claims, the manifest lock and temporaries are all gone"


@pytest.mark.parametrize("host, pid, age_s", [
    (socket.gethostname(), None, 0.0),  # a process of this host that died: stale at once
    ("another-machine", 4242, 3600.0),  # a heartbeat an hour old: its machine is gone
], ids=["dead-pid-this-host", "old-heartbeat-other-host"])  # fmt: skip
def test_a_stale_claim_is_taken_over(tmp_path, host, pid, age_s):
    src, out = tmp_path / "src", tmp_path / "out"
    _clips(src, 2)
    pid = pid or dead_pid()
    _plant(out, "clip1.vtw", host, pid, age_s)
    result = run_cli(["batch", "encode", src, "-o", out, *TINY, "--json"])
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["ok"], summary["others"]) == (2, 0)
    assert f"clip1.mp4: taking over from {host}:{pid}" in result.stderr
    assert verify_vtw(out / "clip1.vtw").valid and _records(out)["clip1.mp4"]["attempts"] == 1
    assert not (out / ".vidtwin-claims").exists()


def test_the_claims_of_a_killed_batch_are_taken_over_and_its_workers_stop(tmp_path):
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    for i in range(2):
        write_test_video(src / f"clip{i}.mp4", frames=120)
    first = _start(src, out)
    deadline = time.monotonic() + 300
    # a claim with its holder written (the file exists a moment before its contents: a kill then leaves a
    # claim that names no one, taken over as "a process")
    while (not any(c.stat().st_size for c in out.glob(".vidtwin-claims/*.claim")) and first.poll() is None
           and time.monotonic() < deadline):  # fmt: skip
        time.sleep(0.02)
    first.kill()  # SIGKILL: no cleanup, its claim stays behind
    first.wait()
    deadline = time.monotonic() + 60
    while _group_alive(first.pid) and time.monotonic() < deadline:  # its workers follow it
        time.sleep(0.1)
    assert not _group_alive(first.pid)
    assert list(out.glob(".vidtwin-claims/*.claim"))

    result = run_cli(["batch", "encode", src, "-o", out, *TINY, "--json"])
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["ok"] + summary["skipped"] == 2 and summary["ok"] >= 1
    assert f"taking over from {socket.gethostname()}:{first.pid}" in result.stderr
    assert all(verify_vtw(out / f"clip{i}.vtw").valid for i in range(2))
    assert not list(out.rglob(".*"))


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_live_claim_is_waited_for_never_taken(tmp_path):
    """Another process holds clip0 with a live heartbeat: the batch does clip1, waits, and does clip0 once it is free."""
    src, out = tmp_path / "src", tmp_path / "out"
    _clips(src, 2)
    holder = Claims(timeout_s=3)  # heartbeat every 3/8 s, from this (live) process
    claim = output_claim(out, out / "clip0.vtw")
    assert holder.take(claim) is not None
    proc = _start(src, out, "--claim-timeout", "3")
    try:
        deadline = time.monotonic() + 300
        while not (out / "clip1.vtw").exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(9)  # three timeouts: a claim judged by age alone would have been taken by now
        assert proc.poll() is None, proc.communicate()[1]
        assert not (out / "clip0.vtw").exists()
    finally:
        holder.close()
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    assert json.loads(stdout)["ok"] == 2 and "taking over" not in stderr
    assert verify_vtw(out / "clip0.vtw").valid


@pytest.mark.parametrize("round_", range(16))
@pytest.mark.parametrize("stagger_s", [0.0, 0.0002, 0.0005])  # late takers find the name free after a takeover
def test_of_many_takers_of_one_stale_claim_exactly_one_wins_and_knows_what_it_replaced(tmp_path, stagger_s, round_):
    out = tmp_path / "out"
    claim = _plant(out, "x.vtw", "another-machine", 4242, age_s=3600.0)
    takers = [Claims(timeout_s=60) for _ in range(8)]
    won: list = [None] * len(takers)
    start = threading.Barrier(len(takers))

    def take(i: int) -> None:
        start.wait()
        time.sleep(i * stagger_s)
        won[i] = takers[i].take(claim)

    threads = [threading.Thread(target=take, args=(i,)) for i in range(len(takers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [i for i, w in enumerate(won) if w is not None]
    assert len(winners) == 1, won
    (winner,) = winners
    # the one that holds it is the one told what it replaced: the runner clears the dead holder's leftovers then
    assert won[winner].replaced is not None and won[winner].replaced.holder.host == "another-machine"
    assert takers[winner].look(claim).holder.pid == os.getpid()
    assert [p.name for p in claim.parent.iterdir()] == [claim.name], "takeover markers are cleaned up"
    for taker in takers:
        taker.close()
    assert not claim.exists()
