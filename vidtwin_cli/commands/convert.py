"""`vidtwin convert`: an official Lightning checkpoint -> a vidtwin model file (safetensors)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from vidtwin_cli.atomic import Existing, check_writable
from vidtwin_cli.console import err_console, print_json, report_kept
from vidtwin_cli.commands.options import NoOverwriteOption, OverwriteOption
from vidtwin_cli.errors import InputError, UsageError
from vidtwin_cli.defaults import WEIGHT_DTYPES

if TYPE_CHECKING:
    from models import VidTwinConfig


def _config(spec: str) -> VidTwinConfig:
    """A preset name or a JSON file of VidTwinConfig fields."""
    from models import PRESETS, VidTwinConfig  # torch loads here, not when --help is built

    if spec in PRESETS:
        return PRESETS[spec]
    path = Path(spec)
    if not path.is_file():
        raise UsageError(f"--config {spec!r} is neither a preset ({', '.join(PRESETS)}) nor a JSON file")
    try:
        return VidTwinConfig.from_dict(json.loads(path.read_text()))
    except (ValueError, TypeError) as e:
        raise InputError(f"{path}: not a valid VidTwin config ({e})") from e


def command(
    checkpoint: Annotated[Path, typer.Argument(help="Official .ckpt (Lightning), bare state dict, or .safetensors.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Model file to write (.safetensors).")],
    config: Annotated[str, typer.Option("--config", "-c", help="Preset name or JSON file of config fields.")] = "release",
    dtype: Annotated[str, typer.Option("--dtype", help=f"Stored weight dtype: {', '.join(WEIGHT_DTYPES)}.")] = "fp32",
    overwrite: OverwriteOption = False,
    never: NoOverwriteOption = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print a JSON result on stdout.")] = False,
) -> None:
    """Convert official VidTwin weights (loss.* dropped, no pickle code run) to a vidtwin model file."""
    from vidtwin_cli.codec.weights import build_model, read_official_checkpoint, save_model

    if dtype not in WEIGHT_DTYPES:
        raise UsageError(f"--dtype must be one of {', '.join(WEIGHT_DTYPES)}")
    check_writable(output, (checkpoint,))
    if Existing(overwrite, never).skip(output):
        report_kept(output, json_out, False)
        return
    cfg = _config(config)
    model = build_model(cfg, read_official_checkpoint(checkpoint, cfg))
    sha = save_model(output, model, dtype, {"converted_from": checkpoint.name})
    result = {"input": str(checkpoint), "output": str(output), "config": config, "dtype": dtype,
              "parameters": sum(p.numel() for p in model.parameters()), "weights_sha256": sha,
              "bytes": output.stat().st_size}  # fmt: skip
    if json_out:
        print_json(result)
    else:
        err_console().print(f"wrote {output} ({result['bytes']:,} bytes, sha256 {sha[:16]}…)", markup=False)
