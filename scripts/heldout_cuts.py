"""Cut the held-out clips that docs/model-card.md measures the default model on.

Each cut is 48 consecutive frames of a held-out clip from scripts/fetch_media.py, copied losslessly
(FFV1 in Matroska, the source's frame rate) so that every later measurement sees the same pixels:

    bikes-48.mkv      bikes.mp4     frames 100-147
    box-48.mkv        box.mp4       frames 150-197 (the clip barely moves before 5 s)
    megamind-48.mkv   Megamind.avi  frames 24-71 (frame 0 is black)

    python scripts/fetch_media.py --all && python scripts/heldout_cuts.py --dest cuts
    vidtwin bench cuts/bikes-48.mkv cuts/box-48.mkv cuts/megamind-48.mkv --baseline libx264 --json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import av

from vidtwin_cli.cache import default_media_dir

FRAMES = 48
CUTS = {"bikes-48.mkv": ("bikes.mp4", 100), "box-48.mkv": ("box.mp4", 150), "megamind-48.mkv": ("Megamind.avi", 24)}


def cut(source: Path, first: int, count: int, dest: Path) -> None:
    """Frames first .. first+count-1 of `source` (decode order = display order here) -> FFV1 `dest`."""
    with av.open(str(source)) as src:
        stream = src.streams.video[0]
        frames = (f for i, f in enumerate(src.decode(stream)) if first <= i < first + count)
        with av.open(str(dest), "w") as out:
            video = out.add_stream("ffv1", rate=stream.average_rate)
            video.width, video.height = stream.width, stream.height
            video.pix_fmt = stream.codec_context.pix_fmt  # the decoded frames as they are: lossless
            video.time_base = 1 / stream.average_rate
            written = 0
            for frame in frames:  # renumbered 0, 1, ...: sources with gaps or odd time stamps cut cleanly
                frame.pts, frame.time_base = written, video.time_base
                out.mux(video.encode(frame))
                written += 1
                if written == count:
                    break
            out.mux(video.encode())
    if written != count:
        dest.unlink()
        raise SystemExit(f"{source} has fewer than {first + count} frames")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--media", type=Path, help="where fetch_media.py put the clips (default: its default)")
    parser.add_argument("--dest", type=Path, default=Path("."), help="folder for the cuts")
    args = parser.parse_args()
    media = args.media or default_media_dir()
    args.dest.mkdir(parents=True, exist_ok=True)
    for name, (source, first) in CUTS.items():
        if not (media / source).is_file():
            sys.exit(f"{media / source} is missing: run python scripts/fetch_media.py --all first")
        cut(media / source, first, FRAMES, args.dest / name)
        print(args.dest / name)


if __name__ == "__main__":
    main()
