"""`batch bench`: one `vidtwin bench` report per video, written to OUT_DIR/<same path>.bench.json.

Each report has the schema of `vidtwin bench VIDEO --json` with one input (docs/bench.md), built
from the bench library's per-file `bench_video`. A worker keeps one session per precision and the
LPIPS net for all its files. Speed figures of parallel workers share the machine: use one worker
when the timings matter; quality and rate figures do not depend on it.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from vidtwin_cli.callbacks import Progress
from vidtwin_cli.atomic import atomic_output
from vidtwin_cli.bench.baseline import BASELINE_CODECS
from vidtwin_cli.bench.speed import report_header
from vidtwin_cli.bench.video import VideoBenchOptions, bench_video
from vidtwin_cli.bench.lpips_weights import lpips_for
from vidtwin_cli.bench.metrics import json_ready
from vidtwin_cli.codec.model_session import ModelSession
from vidtwin_cli.codec.weights import DEFAULT_MODEL
from vidtwin_cli.media import VIDEO_PATTERNS



@dataclass(frozen=True)
class BenchSettings:
    precisions: tuple[str, ...] = ("fp32",)
    fit: str = "tile"
    dtype: str = "fp16"  # the latent storage whose decode and size are measured
    repeat: int = 1
    baselines: tuple[str, ...] = tuple(BASELINE_CODECS)
    rd: bool = False
    lpips: str = "alex"  # LPIPS net, or "off"
    lpips_every: int = 1
    suffix: str = ".bench.json"

    kind: Literal["bench"] = "bench"
    patterns: tuple[str, ...] = VIDEO_PATTERNS


class BenchRunner:
    """What one worker needs to bench files: a session per precision (the first is `first`), LPIPS, options."""

    def __init__(self, settings: BenchSettings, batch_size: int, first: ModelSession,
                 make_session: Callable[[str], ModelSession]) -> None:  # fmt: skip
        self.settings, self.batch_size = settings, batch_size
        self.sessions = {p: first if i == 0 else make_session(p) for i, p in enumerate(settings.precisions)}
        self._options: VideoBenchOptions | None = None
        self._load_seconds: dict[str, float] = {}

    def prepare(self) -> VideoBenchOptions:
        """Load the models (timed, once) and LPIPS on first use."""
        for precision, session in self.sessions.items():
            if precision not in self._load_seconds:
                start = time.perf_counter()
                session.load()
                self._load_seconds[precision] = time.perf_counter() - start
        if self._options is None:
            s, device = self.settings, self.sessions[self.settings.precisions[0]].device
            lpips = lpips_for(s.lpips, device)
            self._options = VideoBenchOptions(s.fit, s.dtype, s.repeat, self.batch_size, s.baselines, rd=s.rd,
                                              lpips=lpips, lpips_every=s.lpips_every)  # fmt: skip
        return self._options

    def run(self, src: Path, dst: Path, progress: Progress) -> int:
        """Bench `src`, write its report to `dst` atomically; returns the video's frame count."""
        options = self.prepare()
        with tempfile.TemporaryDirectory(prefix="vidtwin-bench-") as work:
            # bench counts steps, not frames: each step only gives a cancelled worker its chance to stop
            result = bench_video(src, self.sessions, Path(work), options, progress=lambda steps: progress(0))
        first = self.sessions[self.settings.precisions[0]]
        report = json_ready({**report_header("video", first.load()[0], first.device, self._load_seconds),
                             "inputs": [result]})  # fmt: skip
        with atomic_output(dst) as f:
            f.write((json.dumps(report, indent=2) + "\n").encode())
        frames = result["video"]["frames"]
        progress(frames)
        return frames


def finished_report(src: Path, dst: Path, settings: BenchSettings, model: str | None) -> int | None:
    """The frame count of a report at `dst` for `src` made with these settings; None if there is none."""
    try:
        report = json.loads(dst.read_text(encoding="utf-8"))
        (result,) = report["inputs"]
        made = (report["model"]["spec"], result["input"], result["fit"], result["latent_dtype"],
                tuple(run["precision"] for run in result["runs"]))  # fmt: skip
        frames = result["video"]["frames"]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
        return None
    wanted = (model or DEFAULT_MODEL, str(src), settings.fit, settings.dtype, settings.precisions)
    return frames if made == wanted and isinstance(frames, int) else None
