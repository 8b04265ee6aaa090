"""`vidtwin inspect`: what a .vtw file holds: model, video, latent tensors, sizes and bitrate."""

from __future__ import annotations

import json
import typer
from rich.table import Table

from vidtwin_cli.commands.options import JsonOption, VtwArgument
from vidtwin_cli.console import err_console, print_json


def command(file: VtwArgument, json_out: JsonOption = False) -> None:
    """Show a .vtw file's metadata, tensor sizes, bitrate equivalent and compression."""
    from models import PRESETS  # torch loads here, not when --help is built
    from vidtwin_cli import api

    info = api.inspect(file).to_json()
    if json_out:
        print_json(info)
        return
    video, geo, cfg = info["video"], info["geometry"], info["model"]["config"]
    fps = video["fps"][0] / video["fps"][1]
    pixels = f", pixel aspect {':'.join(map(str, video['sample_aspect']))}" if "sample_aspect" in video else ""
    sampling = f"posterior samples (seed {info['seed']})" if info["sampled"] else "posterior means"
    grid = (f"{geo['rows']}×{geo['cols']} tiles of {geo['tile']} px, "
            f"pad {geo['pad_right']} right {geo['pad_bottom']} bottom")
    bitrate = "n/a (zero duration)" if info["bitrate_bps"] is None else f"{info['bitrate_bps'] / 1000:,.2f} kbit/s"
    rows = [
        ("file", f"{info['file']} (vtw {info['format_version']})"),
        ("model", f"{info['model']['spec']}{' (an untrained preset: seeded random weights)' if info['model']['spec'] in PRESETS else ''}, "
                  f"weights sha256 {info['model']['weights_sha256'][:16]}…"),
        ("model clip", f"{cfg['frames']} frames of {cfg['image_size']}² "
                       f"(d_S {cfg['structure_dim']}, d_D {cfg['dynamics_dim']})"),
        ("video", f"{video['width']}×{video['height']}, {video['frame_count']} frames, {fps:.3f} fps, "
                  f"{video['duration']:.3f} s{', variable frame rate' if video['variable_frame_rate'] else ''}{pixels}"),
        ("fit", f"{geo['fit']}: {grid}" if geo["fit"] == "tile" else geo["fit"]),
        ("latents", f"{info['clips']} clips × {info['tiles_per_clip']} tiles = {info['rows']} rows, "
                    f"{info['latent_dtype']}, {sampling}"),
    ]
    rows += [(f"  {name}", f"{t['dtype']} {tuple(t['shape'])}, {t['bytes']:,} B") for name, t in info["tensors"].items()]
    if "coding" in info:
        rows.append(("coding", f"step {info['coding']['step']:.4g}, key clip every {info['key_interval']} clips "
                               f"({info['key_clips']} key clip{'' if info['key_clips'] == 1 else 's'})"))
        rows += [(f"  {name}", f"{s['bytes']:,} B, {s['bits_per_value']:.2f} bits/value") for name, s in info["streams"].items()]
        parts = ", ".join(f"{kind} {n:,} B" for kind, n in info["chunks"].items())
        rows.append(("size", f"{info['file_bytes']:,} B ({parts})"))
    else:
        rows.append(("size", f"{info['file_bytes']:,} B ({info['tensor_bytes']:,} B tensors + {info['overhead_bytes']:,} B header)"))
    rows += [(f"audio {i}", f"{t['codec']}, {t['sample_rate']} Hz, {t['layout']} (packets kept as they were)")
             for i, t in enumerate(info["audio"])]
    per_second = "n/a" if info["bytes_per_second"] is None else f"{info['bytes_per_second']:,.0f} B/s"
    rows += [
        ("rate", f"{info['bits_per_value']:.3f} bits/value (every byte of the file), {per_second}"),
        ("bitrate equivalent", bitrate),
        ("compression", f"{info['compression_vs_raw']:,.1f}× vs raw RGB24; "
                        f"paper rate {100 * info['compression_rate']:.3f}%"),
        ("created by", f"{info['created_by']['tool']} {info['created_by']['version']}"),
        ("checksum", f"sha256 {info['sha256']}"),
    ]
    if info["provenance"]:
        rows.append(("provenance", json.dumps(info["provenance"], sort_keys=True)))
    table = Table(show_header=False, box=None)
    table.add_column(no_wrap=True, style="bold")
    table.add_column(overflow="fold")  # checksums and paths are never cut short
    for key, value in rows:
        table.add_row(key, value)
    err_console().print(table)
