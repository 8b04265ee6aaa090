"""Option types shared by several commands (one definition each)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

ModelOption = Annotated[
    str | None, typer.Option("--model", "-m", help="default, preset, .safetensors path or hub id org/name[@rev][:file].")
]
DeviceOption = Annotated[str, typer.Option("--device", help="auto (CUDA when present, else CPU), cpu, cuda or cuda:N.")]
PrecisionOption = Annotated[str, typer.Option(
    "--precision", help="auto (fp16 on CUDA, bf16 on a CPU with native bf16, else fp32), fp32, bf16 or fp16 (CUDA).")]
BatchOption = Annotated[int, typer.Option("--batch-size", min=1, help="Tiles per model call.")]
CompileOption = Annotated[bool, typer.Option(
    "--compile", help="torch.compile the transformer blocks: slower start; not faster on CPU fp32 (docs/bench.md).")]
RefineOption = Annotated[int, typer.Option("--refine", help=(
    "Search N steps for latents that decode closer to the input: better quality, slower encoding only "
    "(about 3N decodes' work; docs/model-card.md)."))]
FitOption = Annotated[str, typer.Option("--fit", help="tile (exact size), resize, or crop (official centre crop).")]
QualityOption = Annotated[int, typer.Option(
    "--quality", help="Entropy coding quality 1..12: higher is finer and larger.")]
StepOption = Annotated[float | None, typer.Option(
    "--step", help="Quantisation step in latent units (instead of --quality).")]
KeyintOption = Annotated[int, typer.Option(
    "--keyint", help="A key clip every N clips; the others code their change from the clip before.")]
DtypeOption = Annotated[str, typer.Option(
    "--dtype", help="entropy (.vtw 2.0), or raw latents: fp16, bf16, fp32, int8 (.vtw 1.x).")]
BenchFitOption = Annotated[str, typer.Option("--fit", help="tile or resize (quality is measured at source size).")]
BenchDtypeOption = Annotated[str, typer.Option(
    "--dtype", help="Latent storage measured: entropy (default quality) or fp16, bf16, fp32, int8.")]
NoAudioOption = Annotated[bool, typer.Option("--no-audio", help="Leave the source's audio out.")]
SampleOption = Annotated[bool, typer.Option("--sample", help="Store posterior samples instead of means.")]
SeedOption = Annotated[int | None, typer.Option("--seed", help="Seed for --sample.")]
StrictOption = Annotated[bool, typer.Option(
    "--strict", help="A damaged or cut input is an error (default: a warning naming the frames kept).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print a JSON result object on stdout.")]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or summary on stderr.")]
ForceOption = Annotated[bool, typer.Option("--force", help="Decode even if the weights differ from the file's (warns).")]
CodecOption = Annotated[str, typer.Option("--codec", help="Output video encoder (libx264, libx265, libvpx-vp9, ...).")]
CrfOption = Annotated[int | None, typer.Option("--crf", help="Output quality for CRF encoders (default 18).")]
FormatOption = Annotated[
    str | None, typer.Option("--format", "-f", help="Container format for piped video (nut, matroska, mp4).")
]
OnlyOption = Annotated[
    str | None, typer.Option("--only", help="Decode one latent alone: structure or dynamics.")
]
VtwArgument = Annotated[Path, typer.Argument(metavar="FILE.vtw", help="A .vtw file, or - for stdin.")]
OverwriteOption = Annotated[bool, typer.Option("--overwrite", "-y", help="Replace outputs that already exist.")]
NoOverwriteOption = Annotated[
    bool, typer.Option("--no-overwrite", "-n", help="Never replace an existing output: leave it and skip that work.")
]
StartOption = Annotated[float, typer.Option("--start", "-ss", help="Skip the first SECONDS of each input (like ffmpeg -ss).")]
DurationOption = Annotated[
    float | None, typer.Option("--duration", "-t", help="Use only SECONDS of each input from --start (like ffmpeg -t).")
]
FramesOption = Annotated[int | None, typer.Option("--frames", help="Use at most N frames of each input from --start.")]
MaxSideOption = Annotated[int, typer.Option(
    "--max-side", help="Largest decoded frame side in pixels; larger .vtw files are refused (format limit 16384).")]
RANGE_SYNTAX = "START:END in seconds (2.5:4), START-END as [HH:]MM:SS[.ms] (00:01:02.5-00:01:10) or frames (48f-96f); END is left out"
