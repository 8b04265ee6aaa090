"""`vidtwin datasets`: the built-in synth-motion set and its motion-direction check."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vidtwin_cli.console import err_console, print_json, progress_bar
from vidtwin_cli.commands.options import JsonOption, QuietOption
from vidtwin_cli.errors import InputError
from vidtwin_cli.media import LABELS_FILE, labels_from_folders, read_labels

app = typer.Typer(no_args_is_help=True, help="Built-in datasets: make synth-motion, score videos with its classifier.")



@app.command("synth-motion")
def synth_motion(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to create: OUT/<class>/*.mp4 and OUT/labels.csv.")],
    per_class: Annotated[int, typer.Option("--per-class", help="Videos per direction class.")] = 64,
    seed: Annotated[int, typer.Option("--seed", help="Video k of class c depends only on (seed, c, k).")] = 0,
    size: Annotated[int, typer.Option("--size", help="Frame width = height (pixels).")] = 64,
    frames: Annotated[int, typer.Option("--frames", help="Frames per video.")] = 8,
    fps: Annotated[int, typer.Option("--fps", help="Frame rate.")] = 8,
    quiet: QuietOption = False,
    json_out: JsonOption = False,
) -> None:
    """Write a labelled set of videos of a textured square moving right, left, down or up."""
    from vidtwin_cli.generation.synth import CLASSES, SynthSettings, write_dataset  # numpy, PyAV: not for --help

    settings = SynthSettings(size, frames, fps)
    if (out / LABELS_FILE).exists():
        raise InputError(f"{out}: already holds a dataset ({LABELS_FILE}); choose a new folder")
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder")
    err = err_console()
    with progress_bar(err, quiet, unit="videos") as bar:
        task = bar.add_task("synth-motion", total=per_class * len(CLASSES))
        rows = write_dataset(out, per_class, seed, settings, lambda n: bar.advance(task, n))
    result = {"out": str(out), "videos": len(rows), "classes": list(CLASSES), "labels": str(out / LABELS_FILE),
              "seed": seed, "size": size, "frames": frames, "fps": fps}  # fmt: skip
    if json_out:
        print_json(result)
    elif not quiet:
        err.print(f"wrote {len(rows)} videos ({per_class} per class) and {out / LABELS_FILE}", markup=False)


@app.command("check-motion")
def check_motion(
    data: Annotated[Path, typer.Argument(help="A labels.csv (path,class) or a folder of class folders (<class>/*.mp4).")],
    quiet: QuietOption = False,
    json_out: JsonOption = False,
) -> None:
    """Score videos with the learning-free motion-direction classifier against their class labels."""
    from vidtwin_cli.generation.synth import CLASSES, classify_video  # numpy, PyAV: not for --help

    rows = read_labels(data) if data.is_file() else labels_from_folders(data)
    unknown = sorted({name for _, name in rows} - set(CLASSES))
    if unknown:
        raise InputError(f"{data}: class(es) {', '.join(unknown)} are not synth-motion directions ({', '.join(CLASSES)})")
    confusion = [[0] * len(CLASSES) for _ in CLASSES]
    err = err_console()
    with progress_bar(err, quiet, unit="videos") as bar:
        task = bar.add_task("classify", total=len(rows))
        for path, name in rows:
            confusion[CLASSES.index(name)][classify_video(path)] += 1
            bar.advance(task)
    correct = sum(confusion[i][i] for i in range(len(CLASSES)))
    per_class = {c: confusion[i][i] / sum(confusion[i]) for i, c in enumerate(CLASSES) if sum(confusion[i])}
    result = {"data": str(data), "videos": len(rows), "correct": correct, "accuracy": correct / len(rows),
              "per_class": per_class, "classes": list(CLASSES), "confusion": confusion}  # fmt: skip
    if json_out:
        print_json(result)
    else:
        err.print(f"{correct}/{len(rows)} videos move in their labelled direction ({100 * result['accuracy']:.1f}%)",
                  markup=False)
