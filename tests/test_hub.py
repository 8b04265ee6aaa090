"""Hub models end to end against a real HTTP server on 127.0.0.1 standing in for the hub's file endpoint.

The server answers what huggingface_hub's `hf_hub_download` asks: HEAD then GET on
`/ORG/NAME/resolve/REVISION/FILE`, with `ETag` (the sha256, as the hub gives for LFS files),
`X-Repo-Commit` and `Content-Length`, and `X-Error-Code` on 404s (RepoNotFound, RevisionNotFound,
EntryNotFound), which is how the client tells those apart.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

import pytest
import torch

from vidtwin_cli.vtw.container import open_vtw

from .conftest import REPO
from .models.test_conformance import official_weights
from .test_weights import NotATensor, lightning_checkpoint

COMMIT = "89abcdef0123456789abcdef0123456789abcdef"
OFFICIAL = "vidtwin_structure_7_7_8_dynamics_7_8.ckpt"


class FakeHub(ThreadingHTTPServer):
    """Serves `files[(repo_id, filename)] = bytes` at the branch `main` (commit COMMIT); records every request."""

    def __init__(self, files: dict[tuple[str, str], bytes]) -> None:
        super().__init__(("127.0.0.1", 0), HubHandler)
        self.files = files
        self.requests: list[str] = []
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def __enter__(self) -> FakeHub:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()
        self.server_close()


class HubHandler(BaseHTTPRequestHandler):
    server: FakeHub

    def log_message(self, *args) -> None:  # keep pytest output clean
        pass

    def _answer(self, body: bool) -> None:
        self.server.requests.append(f"{self.command} {self.path}")
        parts = unquote(self.path).lstrip("/").split("/")
        if len(parts) < 5 or parts[2] != "resolve":
            return self._error(400, None)
        repo_id, revision, filename = "/".join(parts[:2]), parts[3], "/".join(parts[4:])
        if not any(repo == repo_id for repo, _ in self.server.files):
            return self._error(404, "RepoNotFound")
        if revision not in ("main", COMMIT):
            return self._error(404, "RevisionNotFound")
        data = self.server.files.get((repo_id, filename))
        if data is None:
            return self._error(404, "EntryNotFound", commit=True)
        self.send_response(200)
        self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
        self.send_header("X-Repo-Commit", COMMIT)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if body:
            self.wfile.write(data)

    def _error(self, status: int, code: str | None, commit: bool = False) -> None:
        self.send_response(status)
        if code:
            self.send_header("X-Error-Code", code)
        if commit:
            self.send_header("X-Repo-Commit", COMMIT)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def do_GET(self) -> None:
        self._answer(body=True)


def checkpoint_bytes(obj: dict) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def official_ckpt(official_fixture) -> bytes:
    """The tiny official weights as an official Lightning checkpoint (loss.* and trainer state included)."""
    return checkpoint_bytes(lightning_checkpoint(official_weights(official_fixture)))


@pytest.fixture(scope="module")
def hub_files(official_ckpt, official_fixture) -> dict[tuple[str, str], bytes]:
    weights = official_weights(official_fixture)
    return {
        ("acme/vidtwin", OFFICIAL): official_ckpt,
        ("acme/other", "weights/tiny.ckpt"): official_ckpt,
        ("acme/empty", "README.md"): b"nothing here",
        ("acme/notvidtwin", OFFICIAL): checkpoint_bytes({"state_dict": {"fc.weight": torch.zeros(2, 2)}}),
        ("acme/cut", OFFICIAL): checkpoint_bytes({"state_dict": {k: v for k, v in weights.items() if "conv_in" not in k}}),
        ("acme/pickle", OFFICIAL): checkpoint_bytes({"state_dict": weights, "hparams": NotATensor()}),
    }


def hub_env(tmp_path: Path, endpoint: str | None) -> dict[str, str]:
    """A child process's environment: its own hub and vidtwin caches, online only with an endpoint."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_CACHE": str(tmp_path / "hf"),
           "VIDTWIN_CACHE": str(tmp_path / "vidtwin-cache"), "HF_HUB_DISABLE_TELEMETRY": "1"}  # fmt: skip
    env.pop("HF_ENDPOINT", None)
    env["HF_HUB_OFFLINE"] = "0" if endpoint else "1"
    if endpoint:
        env["HF_ENDPOINT"] = endpoint
    return env


def vidtwin(args: list, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vidtwin_cli", *map(str, args)], env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip


def latents(path: Path) -> list[torch.Tensor]:
    with open_vtw(path) as reader:
        return [t for clip in reader.iter_clips() for t in (clip.structure, clip.dynamics_x, clip.dynamics_y)]


def test_encode_through_the_hub_then_offline_from_the_cache(tmp_path, cli, hub_files, sample_video):
    """`--model acme/vidtwin` downloads the official checkpoint, converts it once, and encodes exactly as the
    same checkpoint converted by hand; offline with the server gone, the cache gives the same bytes."""
    ckpt = tmp_path / "official.ckpt"
    ckpt.write_bytes(hub_files[("acme/vidtwin", OFFICIAL)])
    by_hand = tmp_path / "by-hand.safetensors"
    assert cli(["convert", ckpt, "-o", by_hand, "--config", "tiny"]).exit_code == 0
    assert cli(["encode", sample_video, "-o", tmp_path / "ref.vtw", "--model", by_hand, "-q"]).exit_code == 0

    with FakeHub(hub_files) as hub:
        online = vidtwin(["encode", sample_video, "-o", tmp_path / "hub.vtw", "--model", "acme/vidtwin", "--json"],
                         hub_env(tmp_path, hub.endpoint))  # fmt: skip
        assert online.returncode == 0, online.stderr
        assert f"GET /acme/vidtwin/resolve/main/{OFFICIAL}" in hub.requests
    converted = list((tmp_path / "vidtwin-cache" / "models").glob("*.safetensors"))
    assert [p.stem for p in converted] == [hashlib.sha256(ckpt.read_bytes()).hexdigest()]
    inode = converted[0].stat().st_ino

    for got, want in zip(latents(tmp_path / "hub.vtw"), latents(tmp_path / "ref.vtw"), strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=0)
    with open_vtw(tmp_path / "hub.vtw") as reader, open_vtw(tmp_path / "ref.vtw") as ref:
        assert reader.header.model.spec == "acme/vidtwin" and reader.header.model.commit == COMMIT
        assert reader.header.model.weights_sha256 == ref.header.model.weights_sha256

    offline = vidtwin(["encode", sample_video, "-o", tmp_path / "again.vtw", "--model", "acme/vidtwin", "-q"],
                      hub_env(tmp_path, None))  # fmt: skip
    assert offline.returncode == 0, offline.stderr
    assert (tmp_path / "again.vtw").read_bytes() == (tmp_path / "hub.vtw").read_bytes()
    assert converted[0].stat().st_ino == inode  # found by the checkpoint's hash: not converted again


# Several CLI runs in one child process (one torch import), each through the real entry point with its
# own stdout/stderr; the environment (endpoint, caches) is the child's, set before huggingface_hub loads.
DRIVER = """
import contextlib, io, json, sys
from vidtwin_cli.app import main
runs = []
for argv in json.loads(sys.argv[1]):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    runs.append([code, out.getvalue(), err.getvalue()])
print(json.dumps(runs))
"""


def vidtwin_runs(runs: list[list], env: dict[str, str]) -> list[tuple[int, str, str]]:
    child = subprocess.run([sys.executable, "-c", DRIVER, json.dumps([[str(a) for a in argv] for argv in runs])],
                           env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert child.returncode == 0, child.stderr
    return [tuple(r) for r in json.loads(child.stdout.splitlines()[-1])]


ERRORS = {
    "repo-missing": ("nobody/nothing", "no such hub repository"),
    "file-missing": ("acme/vidtwin:missing.ckpt", "has no missing.ckpt"),
    "no-weights": ("acme/empty", "neither model.safetensors nor"),
    "revision-missing": ("acme/vidtwin@v9", "no revision 'v9'"),
    "not-vidtwin": ("acme/notvidtwin", "not a VidTwin checkpoint"),
    "unknown-config": ("acme/cut", "no known VidTwin configuration"),
    "pickled-code": ("acme/pickle", "arbitrary code"),
    "invalid-id": ("a..b/..@..", "invalid hub model id"),
    "file-escapes": ("acme/vidtwin:../x.ckpt", "invalid hub model id"),
}


@pytest.fixture(scope="module")
def error_runs(tmp_path_factory, hub_files, sample_video) -> dict[str, tuple[int, str, str, Path]]:
    tmp = tmp_path_factory.mktemp("hub-errors")
    outs = {case: tmp / f"{case}.vtw" for case in ERRORS}
    with FakeHub(hub_files) as hub:
        runs = vidtwin_runs([["encode", sample_video, "-o", outs[case], "--model", model]
                             for case, (model, _) in ERRORS.items()], hub_env(tmp, hub.endpoint))  # fmt: skip
    return {case: (*run, outs[case], tmp) for case, run in zip(ERRORS, runs, strict=True)}


@pytest.mark.parametrize("case", ERRORS)
def test_hub_errors_are_one_line_exit_2(error_runs, case):
    code, stdout, stderr, out, tmp = error_runs[case]
    assert code == 2, stderr
    assert ERRORS[case][1] in stderr and stderr.count("\n") == 1 and "Traceback" not in stderr
    assert not out.exists() and not stdout
    assert not list((tmp / "vidtwin-cache").glob("models/*"))  # nothing half-converted left behind


def test_offline_and_not_cached_is_one_line(cli, tmp_path, sample_video):
    result = cli(["encode", sample_video, "-o", tmp_path / "o.vtw", "--model", "acme/never-seen"])
    assert result.exit_code == 2 and "not in the local hub cache" in result.stderr
    assert result.stderr.count("\n") == 1


def test_decode_uses_a_recorded_hub_model_only_when_local(tmp_path, hub_files, sample_video):
    """A named file in a subfolder works; decode finds the model a .vtw records in the cache, with no hub
    request at all; with empty caches it refuses, telling the user to pass --model, and still asks nothing."""
    vtw = tmp_path / "a.vtw"
    with FakeHub(hub_files) as hub:
        env = hub_env(tmp_path, hub.endpoint)
        info, enc = vidtwin_runs([["info", "--model", "acme/other:weights/tiny.ckpt", "--json"],
                                  ["encode", sample_video, "-o", vtw, "--model", "acme/vidtwin", "-q"]], env)
        assert info[0] == 0 and enc[0] == 0, (info, enc)
        described = json.loads(info[1])
        assert described["source"] == "hub" and described["commit"] == COMMIT and described["config"]["hidden_size"] == 48
        before = list(hub.requests)
        empty = {**env, "HF_HUB_CACHE": str(tmp_path / "empty-hf"), "VIDTWIN_CACHE": str(tmp_path / "empty-cache")}
        cached = vidtwin_runs([["decode", vtw, "-o", tmp_path / "a.mp4", "-q"]], env)
        refused = vidtwin_runs([["decode", vtw, "-o", tmp_path / "b.mp4"]], empty)
        assert hub.requests == before  # pinned to the recorded commit, local only: nothing asked of the hub
    assert cached[0][0] == 0, cached
    code, _, stderr = refused[0]
    assert code == 2 and "never triggers a download" in stderr and "--model acme/vidtwin" in stderr
    assert not (tmp_path / "b.mp4").exists()


PROGRESS = """
import json, sys
from vidtwin_cli.codec.weights import resolve_model
stages = []

def stage(description, total, unit):
    stages.append([description, total, unit, 0])
    def advance(n):
        stages[-1][3] += n
    return advance

loaded = resolve_model(sys.argv[1], progress=stage)
print(json.dumps({"stages": stages, "commit": loaded.commit}))
"""


def test_models_pull_list_rm_with_progress(tmp_path, hub_files):
    """`pull` reports download and conversion progress (bytes, then steps); `list` shows the conversion with
    its size, sha256, source and last use; `rm` removes conversion and download, so offline it is gone."""
    size = len(hub_files[("acme/vidtwin", OFFICIAL)])
    with FakeHub(hub_files) as hub:
        env = hub_env(tmp_path, hub.endpoint)
        child = subprocess.run([sys.executable, "-c", PROGRESS, "acme/vidtwin"], env=env, capture_output=True,
                               text=True, timeout=300)  # fmt: skip
        assert child.returncode == 0, child.stderr
        pulled = json.loads(child.stdout.splitlines()[-1])
        again = vidtwin_runs([["models", "pull", "acme/vidtwin", "--json"]], env)[0]
    assert [s[0] for s in pulled["stages"]] == [f"downloading {OFFICIAL}", f"checking {OFFICIAL}", f"converting {OFFICIAL}"]
    assert [s[1:] for s in pulled["stages"]] == [[size, "bytes", size], [size, "bytes", size], [3, "steps", 3]]
    assert again[0] == 0 and json.loads(again[1])["commit"] == COMMIT  # the second pull converts nothing

    offline = hub_env(tmp_path, None)
    listed, removed, gone, refused = vidtwin_runs([["models", "list", "--json"], ["models", "rm", "acme/vidtwin", "--json"],
                                                   ["models", "list", "--json"], ["models", "rm", "tiny"]], offline)
    models = {m["id"]: m for m in json.loads(listed[1])["models"]}
    assert {"default", "release", "paper", "small", "tiny", "acme/vidtwin"} <= set(models)
    hub_model = models["acme/vidtwin"]
    assert hub_model["kind"] == "converted" and hub_model["commit"] == COMMIT and hub_model["bytes"] > 0
    assert hub_model["source"] == f"acme/vidtwin:{OFFICIAL}@{COMMIT}" and len(hub_model["weights_sha256"]) == 64
    assert hub_model["last_used"] is not None
    assert removed[0] == 0 and len(json.loads(removed[1])["removed"]) == 2  # the conversion and the download
    assert "acme/vidtwin" not in {m["id"] for m in json.loads(gone[1])["models"]}
    assert refused[0] == 2 and "nothing to remove" in refused[2]
    assert vidtwin_runs([["info", "--model", "acme/vidtwin"]], offline)[0][0] == 2  # offline, and now not cached
