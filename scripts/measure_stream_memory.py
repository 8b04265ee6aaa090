"""Peak memory of streaming a video through vidtwin, long video vs short video.

Each measurement runs in a fresh process (peak RSS is per process). By default it is the I/O
path alone: decode every frame (VideoReader), group into clips (iter_clips), cut into tiles and
back (tiling), encode the result (VideoWriter), no model. With `--encode` it is the real
`vidtwin encode` command with the bundled default model, the model and the .vtw writer included.
The issue asks for the 10-minute peak to be within 10% of the 10-second peak at the same frame size.

    python scripts/measure_stream_memory.py                    # 600 s vs 10 s, 160×120 @ 25 fps
    python scripts/measure_stream_memory.py --encode           # the same through `vidtwin encode`
    python scripts/measure_stream_memory.py --seconds 600 10 --size 320x240 --json
    python scripts/measure_stream_memory.py --video some.mp4   # one measurement of an existing file
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vidtwin_cli.video.tiling import frames_to_tiles, tiles_to_frames
from vidtwin_cli.video.info import Geometry
from vidtwin_cli.video.io import VideoReader, VideoWriter, iter_clips


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def write_synthetic(path: Path, seconds: float, width: int, height: int, fps: int = 25) -> Path:
    """A moving-pattern H.264 video of the given length (generated frame by frame)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "23"}
        for i in range(round(seconds * fps)):
            rgb = np.stack([128 + 100 * np.sin(x / 9 + i / 5), 128 + 100 * np.cos(y / 7 - i / 7),
                            (x + y + i) % 256], -1)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb.astype(np.uint8), format="rgb24")))
        container.mux(stream.encode())
    return path


def stream_peak_rss(video: Path, clip_length: int = 16, tile: int = 64, fit: str = "tile") -> dict:
    """Stream `video` through vidtwin's I/O path in this process and report the peak RSS.

    Pass 1 is the encode side: decode -> clips -> tiles (the timing is known only at the end).
    Pass 2 is the decode side: with that VideoInfo, tiles -> frames -> H.264 file (scratch, deleted).
    """
    baseline = peak_rss_mib()
    start = time.perf_counter()
    with VideoReader(video) as reader:
        geometry = Geometry.plan(reader.width, reader.height, tile, fit)
        for clip, _ in iter_clips(reader, clip_length):
            frames_to_tiles(clip, geometry)
        info = reader.info
    width, height = geometry.output_size
    with tempfile.TemporaryDirectory() as tmp, VideoReader(video) as reader, \
            VideoWriter(Path(tmp) / "out.mp4", info, width, height) as writer:
        for clip, valid in iter_clips(reader, clip_length):
            for frame in tiles_to_frames(frames_to_tiles(clip, geometry), geometry)[:valid]:
                writer.write(frame)
    return {"video": str(video), "frames": info.frame_count, "seconds_of_video": info.duration,
            "size": f"{info.width}x{info.height}", "wall_s": round(time.perf_counter() - start, 2),
            "baseline_rss_mib": round(baseline, 1), "peak_rss_mib": round(peak_rss_mib(), 1)}


def encode_peak_rss(video: Path) -> dict:
    """Run `vidtwin encode` on `video` in a child process and report the child's peak RSS."""
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "vidtwin_cli", "encode", str(video), "-o", str(Path(tmp) / "out.vtw"), "--quiet", "--json"]
        done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"vidtwin encode {video} failed: {done.stderr.strip()}")
    result = json.loads(done.stdout)
    return {"video": str(video), "frames": result["frames"], "seconds_of_video": result["frames"] / result["fps"],
            "size": f"{result['width']}x{result['height']}", "wall_s": round(time.perf_counter() - start, 2),
            "vtw_bytes": result["bytes"], "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)}


def measure_in_child(video: Path, encode: bool) -> dict:
    cmd = [sys.executable, __file__, "--video", str(video), "--json"] + (["--encode"] if encode else [])
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"measurement of {video} failed: {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, nargs="+", default=[600, 10], help="lengths to compare")
    parser.add_argument("--size", default="160x120", help="WxH of the generated videos")
    parser.add_argument("--video", type=Path, help="measure this file in this process instead")
    parser.add_argument("--encode", action="store_true", help="measure `vidtwin encode` (default model), not the I/O path")
    parser.add_argument("--json", action="store_true", help="print JSON only")
    args = parser.parse_args()
    if args.video:
        result = encode_peak_rss(args.video) if args.encode else stream_peak_rss(args.video)
        print(json.dumps(result) if args.json else result)
        return
    width, height = (int(v) for v in args.size.split("x"))
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for seconds in args.seconds:
            video = write_synthetic(Path(tmp) / f"{seconds:g}s.mp4", seconds, width, height)
            results.append(measure_in_child(video, args.encode))
    if args.json:
        print(json.dumps(results, indent=1))
        return
    for r in results:
        print(f"{r['seconds_of_video']:>8.1f} s  {r['frames']:>6} frames  {r['size']}  "
              f"peak RSS {r['peak_rss_mib']:.1f} MiB  {r['wall_s']} s")
    ratio = results[0]["peak_rss_mib"] / results[-1]["peak_rss_mib"]
    print(f"peak RSS ratio first/last: {ratio:.3f}")


if __name__ == "__main__":
    main()
