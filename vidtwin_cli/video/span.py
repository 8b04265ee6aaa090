"""A part of a video's timeline, as `--range` takes it, resolved to the frames it selects.

Syntax (docs/cli.md, "Ranges"): `START:END` with times in seconds (`2.5:4`), or `START-END` with
times as `[[HH:]MM:]SS[.frac]` (`00:01:02.5-00:01:10`, `1:02-1:10`); a side ending in `f` is a frame
number (`48f-96f`). Either side may be empty (the start or the end of the video). Like ffmpeg's
`trim`, a range is half-open: it keeps the frames shown at or after START and before END (frame END
itself is the first frame left out).
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass

import numpy as np

from vidtwin_cli.errors import UsageError
from vidtwin_cli.video.info import VideoInfo

SYNTAX = "START:END in seconds (2.5:4), START-END in [HH:]MM:SS[.frac] (00:01:02.5-00:01:10) or frames (48f-96f)"
_CLOCK = re.compile(r"(?:(?:(\d+):)?(\d+):)?(\d+(?:\.\d*)?|\.\d+)")
_FRAME = re.compile(r"(\d+)f")
_TOLERANCE = 1e-9  # seconds: a time typed as a frame's own timestamp selects that frame


@dataclass(frozen=True)
class Mark:
    """One end of a range: a time in seconds or a frame number."""

    value: float
    is_frame: bool

    def frame(self, times: np.ndarray) -> int:
        """The index of the first frame at or after this mark (len(times) past the last)."""
        if self.is_frame:
            return int(self.value)
        return int(np.searchsorted(times, self.value - _TOLERANCE, side="left"))

    def __str__(self) -> str:
        return f"frame {int(self.value)}" if self.is_frame else f"{self.value:g} s"


@dataclass(frozen=True)
class Span:
    """A parsed `--range`: `start`/`end` None mean the video's start/end; `text` is what was typed."""

    text: str
    start: Mark | None
    end: Mark | None

    @classmethod
    def parse(cls, text: str) -> Span:
        """The range `text` means (module docstring); a UsageError naming the syntax otherwise."""
        stripped = text.strip()
        if stripped.count("-") == 1:
            sides, clock = stripped.split("-"), True
        elif "-" not in stripped and stripped.count(":") == 1:
            sides, clock = stripped.split(":"), False
        else:
            raise UsageError(f"--range {text!r} must be {SYNTAX}")
        start, end = (_mark(side.strip(), clock, text) for side in sides)
        if start is None and end is None:
            raise UsageError(f"--range {text!r} selects the whole video; leave --range out for that")
        if start is not None and end is not None and start.is_frame == end.is_frame and end.value <= start.value:
            raise UsageError(f"--range {text}: the end ({end}) must come after the start ({start})")
        return cls(text, start, end)

    def frames(self, info: VideoInfo, name: str) -> tuple[int, int]:
        """[first, stop) frame indices of `info`'s video (named `name` in errors) that the range keeps."""
        times = frame_times(info)
        first = self.start.frame(times) if self.start else 0
        stop = self.end.frame(times) if self.end else info.frame_count
        if self.end is not None and not self.end.is_frame and self.end.value > info.duration + _TOLERANCE:
            stop = info.frame_count + 1  # an end time past the video is refused below, as an end frame is
        if first >= info.frame_count or stop > info.frame_count:
            raise UsageError(f"--range {self.text} is outside {name} (0 to {info.duration:.3f} s, frames 0 to "
                             f"{info.frame_count}); a range must lie within the video")
        if stop <= first:
            raise UsageError(f"--range {self.text} holds no frame of {name} (frames are {1 / float(info.fps):.3f} s apart)")
        return first, stop


def _mark(side: str, clock: bool, text: str) -> Mark | None:
    if not side:
        return None
    if match := _FRAME.fullmatch(side):
        return Mark(float(match.group(1)), True)
    match = _CLOCK.fullmatch(side) if clock else re.fullmatch(r"\d+(?:\.\d*)?|\.\d+", side)
    if not match:
        raise UsageError(f"--range {text!r}: {side!r} is not a time; a range is {SYNTAX}")
    if not clock:
        return Mark(float(side), False)
    hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    if (match.group(2) and float(seconds) >= 60) or (match.group(1) and minutes >= 60):
        raise UsageError(f"--range {text!r}: {side!r} has more than 59 minutes or seconds in a field")
    value = hours * 3600 + minutes * 60 + seconds
    if not math.isfinite(value):
        raise UsageError(f"--range {text!r}: {side!r} is not a finite time")
    return Mark(value, False)


def frame_times(info: VideoInfo) -> np.ndarray:
    """Presentation time in seconds of every frame (timestamps for VFR, index / fps otherwise)."""
    if info.pts is not None:
        return np.asarray(info.pts, dtype=np.float64) * float(info.time_base)
    return np.arange(info.frame_count, dtype=np.float64) / float(info.fps)


def excerpt(info: VideoInfo, first: int, stop: int) -> VideoInfo:
    """The timing of frames [first, stop) of `info` as a video of their own, starting at time 0."""
    times = frame_times(info)
    end = times[stop] if stop < info.frame_count else info.duration
    pts = tuple(p - info.pts[first] for p in info.pts[first:stop]) if info.pts is not None else None
    return dataclasses.replace(info, frame_count=stop - first, duration=float(end - times[first]), pts=pts)
