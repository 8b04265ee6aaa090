"""`vidtwin info`: what a model is: parameters, latent sizes, compression rate, fingerprint."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from ..console import err_console, print_json
from ..model_info import describe
from ..weights import resolve_model

ModelOption = Annotated[
    str | None, typer.Option("--model", "-m", help="Preset name, .safetensors path or hub id org/name[@rev].")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print a JSON object on stdout.")]


def command(model: ModelOption = None, json_out: JsonOption = False) -> None:
    """Show a model's parameter count, latent shapes per clip and compression rate."""
    info = describe(resolve_model(model))
    if json_out:
        print_json(info)
        return
    table = Table(show_header=False, box=None)
    shapes = info["latent_shapes"]
    rows = [
        ("model", f"{info['model']} ({info['source']})"),
        ("parameters", f"{info['parameters']:,} ({info['parameters_used']:,} used in forward)"),
        ("clip (C, T, H, W)", str(tuple(info["clip_shape"]))),
        ("structure latent", str(tuple(shapes["structure"]))),
        ("dynamics latents", f"2 × {tuple(shapes['dynamics_x'])}"),
        ("values per clip", f"{info['latent_values_per_clip']:,}"),
        ("compression rate", f"{100 * info['compression_rate']:.3f}%"),
        ("weights sha256", info["weights_sha256"]),
    ]
    for k, v in rows:
        table.add_row(f"[bold]{k}[/]", v)
    err_console().print(table)
