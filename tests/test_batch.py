"""`vidtwin batch`: resumable folder jobs on local worker processes and on Ray, with real files and processes."""

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
import torch

from tests.conftest import REPO, dead_pid, run_cli, write_test_video
from vidtwin_cli.codec.runtime import precision_name
from vidtwin_cli.vtw.container import inspect_vtw, verify_vtw
from vidtwin_cli.video.io import VideoReader

# One thread per worker: the tiny model gains nothing from more, and a shared 2-core machine stays responsive.
TINY = ["--model", "tiny", "--threads", "1"]
GOOD = ["a.mp4", "b.mov", "sub/c.mp4", "sub/d.mkv", "sub/deeper/e.mp4", "sub/deeper/f.mp4"]
BROKEN = "sub/broken.mp4"


def _tree(root: Path) -> Path:
    """Six small real videos in nested folders, one truncated file, and files the default globs skip."""
    for i, rel in enumerate(GOOD):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        write_test_video(root / rel, frames=9 + i, format="matroska" if rel.endswith(".mkv") else None)
    data = (root / "a.mp4").read_bytes()
    (root / BROKEN).write_bytes(data[: len(data) // 2])
    (root / "notes.txt").write_text("not a video\n")
    (root / "sub" / ".partial.mp4").write_bytes(data)  # hidden, like an atomic temporary: never an input
    return root


def _outputs(out: Path, suffix: str = ".vtw") -> dict[str, Path]:
    return {p.relative_to(out).as_posix(): p for p in out.rglob(f"*{suffix}")}


def _records(manifest: Path) -> dict[str, dict]:
    records = [json.loads(line) for line in manifest.read_text().splitlines()]
    return {r["input"]: r for r in records}


def _mtimes(paths: dict[str, Path]) -> dict[str, int]:
    return {rel: p.stat().st_mtime_ns for rel, p in paths.items()}


def _vtw(rel: str) -> str:
    return str(Path(rel).with_suffix(".vtw").as_posix())


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return _tree(tmp_path_factory.mktemp("batch") / "videos")


@pytest.fixture(scope="module")
def first_run(tree, tmp_path_factory):
    out = tmp_path_factory.mktemp("batch-out") / "latents"
    result = run_cli(["batch", "encode", tree, "-o", out, *TINY, "--json"])
    return result, out


def test_encode_folder_mirrors_tree_and_records_the_corrupt_file(first_run, tree):
    result, out = first_run
    assert result.exit_code == 1, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["files"], summary["ok"], summary["failed"], summary["skipped"]) == (7, 6, 1, 0)
    assert summary["model_loads"] == 1 and summary["workers_started"] == 1
    assert summary["frames"] == sum(9 + i for i in range(len(GOOD)))
    outputs = _outputs(out)
    assert sorted(outputs) == sorted(_vtw(rel) for rel in GOOD)
    assert all(verify_vtw(p).valid for p in outputs.values())
    assert {inspect_vtw(p).to_json()["format_version"] for p in outputs.values()} == {"2.0"}  # as `encode` writes
    assert not [p for p in out.rglob(".*")], "no temporaries may be left"
    records = _records(out / "batch-encode.jsonl")
    assert len(records) == 7
    broken = records[str(tree / BROKEN)]
    assert broken["status"] == "failed" and "broken.mp4" in broken["error"] and broken["attempts"] == 1
    assert "broken.mp4" in result.stderr and "1 of 7 files failed" in result.stderr
    good = records[str(tree / "sub/c.mp4")]
    assert good["status"] == "ok" and good["frames"] == 11 and good["output_bytes"] == outputs["sub/c.vtw"].stat().st_size


def test_rerun_skips_finished_files_without_model_work_and_retries_failures(first_run, tree):
    _, out = first_run
    before = _mtimes(_outputs(out))
    result = run_cli(["batch", "encode", tree, "-o", out, *TINY, "--json"])
    assert result.exit_code == 1
    summary = json.loads(result.stdout)
    assert (summary["ok"], summary["skipped"], summary["failed"]) == (0, 6, 1)
    assert summary["model_loads"] == 0  # the corrupt file is retried, and fails before any model loads
    assert _mtimes(_outputs(out)) == before
    assert _records(out / "batch-encode.jsonl")[str(tree / BROKEN)]["attempts"] == 2


@pytest.mark.parametrize("kind", ["txt", "csv", "jsonl"])
def test_list_of_paths_maps_to_the_same_outputs_and_starts_nothing_when_done(first_run, tree, kind):
    _, out = first_run
    listed = {"txt": "# six clips\n" + "\n".join(GOOD) + "\n",
              "csv": "path,label\n" + "".join(f"{rel},x\n" for rel in GOOD),
              "jsonl": "".join(json.dumps({"path": rel}) + "\n" for rel in GOOD)}[kind]  # fmt: skip
    inputs = tree / f"list.{kind}"
    inputs.write_text(listed)
    result = run_cli(["batch", "encode", inputs, "-o", out, *TINY, "--json", "--manifest", out / f"list-{kind}.jsonl"])
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["skipped"], summary["workers_started"], summary["model_loads"]) == (6, 0, 0)


def test_shards_cover_every_file_exactly_once(first_run, tree):
    _, out = first_run
    seen = []
    for i in range(2):
        result = run_cli(["batch", "encode", tree, "-o", out, *TINY, "--shard", f"{i}/2", "--json"])
        assert result.exit_code in (0, 1), result.stderr
        seen.append(set(_records(out / f"batch-encode-{i}of2.jsonl")))
    assert not seen[0] & seen[1]
    assert seen[0] | seen[1] == {str(tree / rel) for rel in [*GOOD, BROKEN]}


def test_batch_encode_takes_every_coding_flag_of_encode():
    from vidtwin_cli.app import build_app

    cli = build_app()
    encode, batch_encode = cli.commands["encode"], cli.commands["batch"].commands["encode"]
    one_file_only = {"inputs", "output", "out_dir", "overwrite", "never", "format"}  # batch plans its own outputs
    flags = {p.name: set(p.opts) for p in encode.params if p.name not in one_file_only}
    assert flags == {p.name: set(p.opts) for p in batch_encode.params if p.name in flags}


def test_coding_flags_are_kept_and_a_change_of_them_redoes_the_file(first_run, tree, tmp_path):
    """--quality/--step/--keyint/--frames reach the files, and a rerun with other ones is not 'already done'."""
    _, default_out = first_run
    two = tree / "two.txt"
    two.write_text("a.mp4\nsub/c.mp4\n")
    out = tmp_path / "out"

    def run(*flags: str) -> dict:
        result = run_cli(["batch", "encode", two, "-o", out, *TINY, *flags, "--json"])
        assert result.exit_code == 0, result.stderr
        summary = json.loads(result.stdout)
        return {"ok": summary["ok"], "skipped": summary["skipped"]}

    assert run("--quality", "3", "--keyint", "2") == {"ok": 2, "skipped": 0}
    coarse = inspect_vtw(out / "sub/c.vtw").to_json()
    default = inspect_vtw(default_out / "sub/c.vtw").to_json()
    assert (coarse["coding"]["keyint"], coarse["provenance"]) == (2, {"encode": {"quality": 3}})
    assert coarse["coding"]["step"] > default["coding"]["step"] and coarse["file_bytes"] < default["file_bytes"]
    assert default["provenance"] == {"encode": {"quality": 9}}
    assert run("--quality", "3", "--keyint", "2") == {"ok": 0, "skipped": 2}
    assert run("--quality", "4", "--keyint", "2") == {"ok": 2, "skipped": 0}  # the old check skipped these
    assert run("--quality", "4") == {"ok": 2, "skipped": 0}  # keyint back to the default
    assert run("--step", "0.25") == {"ok": 2, "skipped": 0}
    assert inspect_vtw(out / "a.vtw").to_json()["coding"] == {"step": 0.25, "keyint": 8}
    assert run("--step", "0.25", "--frames", "4") == {"ok": 2, "skipped": 0}
    assert inspect_vtw(out / "sub/c.vtw").to_json()["video"]["frame_count"] == 4
    assert run("--step", "0.25", "--frames", "4") == {"ok": 0, "skipped": 2}


@pytest.mark.slow
def test_killed_run_resumes_to_every_output_valid(tmp_path):
    src, out = tmp_path / "clips", tmp_path / "out"
    src.mkdir()
    for i in range(10):
        write_test_video(src / f"clip{i}.mp4", width=64, height=64, frames=48)
    manifest = out / "batch-encode.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "vidtwin_cli", "batch", "encode", str(src), "-o", str(out), *TINY],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.monotonic() + 120
    while not (manifest.is_file() and manifest.read_text().strip()) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stderr.decode()
    assert "terminated (SIGTERM)" in stderr.decode()
    assert not [p for p in out.rglob(".*")], "no partial file may be left"
    done = _outputs(out)
    assert 1 <= len(done) < 10
    assert all(verify_vtw(p).valid for p in done.values())
    before = _mtimes(done)
    undone = next(f"clip{i}.vtw" for i in range(10) if f"clip{i}.vtw" not in done)
    (out / f".{undone}.{socket.gethostname()}.{dead_pid()}.x1y2z3.vtw").write_bytes(b"half a file")  # a killed writer's

    result = run_cli(["batch", "encode", src, "-o", out, *TINY, "--json"])
    assert result.exit_code == 0, result.stderr
    assert not [p for p in out.rglob(".*")], "the resumed run removes stale temporaries"
    summary = json.loads(result.stdout)
    assert (summary["skipped"], summary["ok"]) == (len(done), 10 - len(done))
    outputs = _outputs(out)
    assert len(outputs) == 10 and all(verify_vtw(p).valid for p in outputs.values())
    assert {rel: t for rel, t in _mtimes(outputs).items() if rel in before} == before

    again = run_cli(["batch", "encode", src, "-o", out, *TINY, "--json"])
    assert again.exit_code == 0
    assert (json.loads(again.stdout)["workers_started"], json.loads(again.stdout)["model_loads"]) == (0, 0)


def test_decode_batch_restores_frame_counts(first_run, tmp_path):
    _, latents = first_run
    out = tmp_path / "decoded"
    result = run_cli(["batch", "decode", latents, "-o", out, *TINY, "--json", "--workers", "2"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["ok"] == 6
    videos = _outputs(out, ".mp4")
    assert sorted(videos) == sorted(str(Path(rel).with_suffix(".mp4").as_posix()) for rel in GOOD)
    for i, rel in enumerate(GOOD):
        with VideoReader(videos[str(Path(rel).with_suffix(".mp4").as_posix())]) as video:
            assert sum(1 for _ in video) == 9 + i
    again = run_cli(["batch", "decode", latents, "-o", out, *TINY, "--json"])
    assert json.loads(again.stdout)["skipped"] == 6 and json.loads(again.stdout)["workers_started"] == 0


def test_torn_manifest_line_is_ignored_with_a_warning(first_run, tree):
    _, out = first_run
    manifest = out / "torn.jsonl"
    manifest.write_text(json.dumps({"input": str(tree / "a.mp4"), "output": "x", "status": "ok"}) + '\n{"input": "/x", "outp')
    inputs = tree / "good.txt"
    inputs.write_text("\n".join(GOOD))
    result = run_cli(["batch", "encode", inputs, "-o", out, *TINY, "--manifest", manifest, "--json"])
    assert result.exit_code == 0, result.stderr
    assert "ignoring its last line" in result.stderr
    assert len(manifest.read_text().splitlines()) == 6  # compacted: one record per input, the torn line gone


def test_a_model_that_cannot_load_stops_the_batch(tree, tmp_path):
    result = run_cli(["batch", "encode", tree, "-o", tmp_path / "out", "--model", "no-such-model", "--threads", "1"])
    assert result.exit_code == 2 and "no-such-model" in result.stderr
    assert not _outputs(tmp_path / "out")


def _ray_or_skip():
    try:
        import ray  # noqa: F401
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("CI installs the ray extra; `import ray` failed")
        pytest.skip("ray is not installed (pip install 'vidtwin[ray]')")


@pytest.mark.slow
def test_ray_outputs_are_byte_identical_to_local_mode(first_run, tree, tmp_path):
    _ray_or_skip()
    _, local = first_run
    out = tmp_path / "ray"
    result = run_cli(["batch", "encode", tree, "-o", out, *TINY, "--ray", "local", "--workers", "2", "--json"])
    assert result.exit_code == 1, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["ok"], summary["failed"]) == (6, 1)
    assert summary["workers_started"] == 2  # actors of one CPU each (--threads 1)
    assert "broken.mp4" in _records(out / "batch-encode.jsonl")[str(tree / BROKEN)]["error"]
    ray_outputs, local_outputs = _outputs(out), _outputs(local)
    assert sorted(ray_outputs) == sorted(local_outputs)
    for rel, path in ray_outputs.items():
        assert path.read_bytes() == local_outputs[rel].read_bytes(), rel


def test_ray_missing_is_one_line_with_the_install_command(tree, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` sees where the extra is not installed
    result = run_cli(["batch", "encode", tree, "-o", tmp_path / "out", *TINY, "--ray", "local"])
    assert result.exit_code == 2
    assert "pip install 'vidtwin[ray]'" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def _bad_list(tmp: Path) -> Path:
    (tmp / "list.csv").write_text("file_name\na.mp4\n")
    return tmp / "list.csv"


def _outside(tmp: Path) -> Path:
    (tmp / "inner").mkdir()
    (tmp / "inner" / "list.txt").write_text("../a.mp4\n")
    return tmp / "inner" / "list.txt"


def _clash(tmp: Path) -> Path:
    (tmp / "clash").mkdir()
    for name in ("x.mp4", "x.mov"):
        write_test_video(tmp / "clash" / name, frames=2)
    return tmp / "clash"


@pytest.mark.parametrize("make_src, extra, fragment", [
    (lambda t: t, ["--shard", "2/2"], "--shard"),
    (lambda t: t, ["--shard", "half"], "--shard"),
    (lambda t: t / "missing", [], "no such folder"),
    (lambda t: write_test_video(t / "one.mp4", frames=2), [], "must be a folder or a list"),
    (_bad_list, [], "path"),
    (_outside, [], "outside the root"),
    (_clash, [], "would both write"),
    (lambda t: t, ["--ray", "local", "--device", "cuda:1"], "--device"),
    (lambda t: t, ["--precision", "fp16"], "fp16"),
    (lambda t: t, ["--quality", "13"], "--quality"),
    (lambda t: t, ["--keyint", "0"], "--keyint"),
    (lambda t: t, ["--step", "-1"], "--step"),
], ids=["shard-out-of-range", "shard-not-i-of-n", "missing-src", "video-as-src", "csv-without-path-column",
        "list-outside-root", "two-inputs-one-output", "ray-device-index", "fp16-on-cpu", "quality-out-of-range",
        "keyint-zero", "negative-step"])  # fmt: skip
def test_bad_usage_is_one_line_exit_2_and_writes_nothing(tmp_path, make_src, extra, fragment):
    src = make_src(tmp_path)
    out = tmp_path / "out"
    result = run_cli(["batch", "encode", src, "-o", out, *TINY, *extra])
    assert result.exit_code == 2, result.stderr
    assert fragment in result.stderr
    assert not out.exists()


@pytest.mark.parametrize("command, extra, fragment", [
    ("decode", ["--codec", "no-such-encoder"], "no-such-encoder"),
    ("decode", ["--only", "motion"], "--only"),
    ("bench", ["--fit", "crop"], "crop"),
    ("bench", ["--baseline", "libvpx"], "--baseline"),
    ("bench", ["--lpips", "squeeze"], "--lpips"),
], ids=["decode-unknown-codec", "decode-bad-only", "bench-crop", "bench-unknown-baseline", "bench-unknown-lpips"])  # fmt: skip
def test_bad_command_flags_stop_before_any_work(first_run, tmp_path, command, extra, fragment):
    _, latents = first_run
    result = run_cli(["batch", command, latents, "-o", tmp_path / "out", *extra])
    assert result.exit_code == 2 and fragment in result.stderr
    assert not (tmp_path / "out").exists()


def test_bench_batch_writes_one_report_per_video_and_resumes(tree, tmp_path):
    out = tmp_path / "bench"
    args = ["batch", "bench", tree, "-o", out, *TINY, "--glob", "a.mp4", "--glob", "sub/c.mp4", "--lpips", "off",
            "--baseline", "none", "--json"]  # fmt: skip
    result = run_cli(args)
    assert result.exit_code == 0, result.stderr
    assert (json.loads(result.stdout)["ok"], json.loads(result.stdout)["frames"]) == (2, 9 + 11)
    reports = _outputs(out, ".bench.json")
    assert sorted(reports) == ["a.bench.json", "sub/c.bench.json"]
    report = json.loads(reports["sub/c.bench.json"].read_text())
    (video,) = report["inputs"]  # the schema of `vidtwin bench VIDEO --json`
    assert video["input"] == str(tree / "sub/c.mp4") and video["video"]["frames"] == 11
    auto = precision_name("auto", torch.device("cpu"))  # the default: bf16 on a CPU with native bf16, else fp32
    assert [run["precision"] for run in video["runs"]] == [auto] and video["runs"][0]["quality"]["psnr"]
    again = run_cli(args)
    assert (json.loads(again.stdout)["skipped"], json.loads(again.stdout)["workers_started"]) == (2, 0)
