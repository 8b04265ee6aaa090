"""`vidtwin info`: what a model is: parameters, latent sizes, compression rate, fingerprint."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from vidtwin_cli.console import err_console, print_json, progress_bar, stages
from vidtwin_cli.commands.options import JsonOption, ModelOption
from vidtwin_cli.errors import UsageError

if TYPE_CHECKING:  # torch loads with these: only in `command`, not for --help
    from vidtwin_cli.generation.info import DiTInfo

DitOption = Annotated[str | None, typer.Option("--dit", help="Describe a latent DiT instead: preset name or DiT file.")]


def command(model: ModelOption = None, json_out: JsonOption = False, dit: DitOption = None) -> None:
    """Show a model's parameter count, latent shapes per clip and compression rate."""
    from vidtwin_cli.codec.model_info import ModelInfo  # torch loads here, not for --help
    from vidtwin_cli.codec.weights import resolve_model
    from vidtwin_cli.generation.info import DiTInfo
    from vidtwin_cli.generation.weights import resolve_dit

    if dit is not None:
        if model is not None:
            raise UsageError("give --model or --dit, not both")
        _show_dit(DiTInfo.of(resolve_dit(dit)), json_out)
        return
    with progress_bar(err_console()) as bars:  # a hub model may download and convert first
        info = ModelInfo.of(resolve_model(model, progress=stages(bars)))
    if json_out:
        print_json(info.to_dict())
        return
    commit = f", commit {info.commit[:12]}" if info.commit else ""
    untrained = "" if info.trained else "; untrained: seeded random weights"
    _show([
        ("model", f"{info.model} ({info.source}{commit}{untrained})"),
        ("parameters", f"{info.parameters:,} ({info.parameters_used:,} used in forward)"),
        ("clip (C, T, H, W)", str(info.clip_shape)),
        ("structure latent", str(info.latent_shapes.structure)),
        ("dynamics latents", f"2 × {info.latent_shapes.dynamics_x}"),
        ("values per clip", f"{info.latent_values_per_clip:,}"),
        ("compression rate", f"{100 * info.compression_rate:.3f}%"),
        ("weights sha256", info.weights_sha256),
    ])


def _show_dit(info: DiTInfo, json_out: bool) -> None:
    if json_out:
        print_json(info.to_dict())
        return
    cfg, ae = info.config, info.autoencoder
    paper = f" (paper: {info.paper_parameters:,})" if info.paper_parameters else ""
    _show([
        ("dit", f"{info.dit} ({info.source})"),
        ("parameters", f"{info.parameters:,}{paper}"),
        ("blocks × width", f"{cfg['depth']} × {cfg['hidden_size']}, {cfg['num_heads']} heads, FFN {cfg['mlp_hidden']}"),
        ("tokens (count, values)", f"structure {info.tokens.structure}, dynamics {info.tokens.dynamics}"),
        ("classes", ", ".join(info.classes) if len(info.classes) <= 8 else f"{len(info.classes)} classes"),
        ("autoencoder", "none (untrained preset)" if ae is None else f"{ae['spec']} (sha256 {ae['weights_sha256'][:16]}…)"),
        ("weights sha256", info.weights_sha256),
    ])


def _show(rows: list[tuple[str, str]]) -> None:
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    for k, v in rows:
        table.add_row(k, v)
    err_console().print(table)
