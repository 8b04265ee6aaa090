"""`vidtwin generate`: sample videos of a class from a latent DiT (DDIM + classifier-free guidance)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vidtwin_cli.atomic import STDIO, Existing
from vidtwin_cli.console import err_console, print_json, progress_bar, report_kept
from vidtwin_cli.defaults import AUTO, OUTPUT_FORMATS
from vidtwin_cli.errors import ModelError, UsageError
from vidtwin_cli.interrupts import Interrupted
from vidtwin_cli.commands.options import (
    CodecOption, CrfOption, DeviceOption, JsonOption, NoOverwriteOption, OverwriteOption, PrecisionOption, QuietOption,
)  # fmt: skip


def command(
    class_name: Annotated[str, typer.Option("--class", "-c", help="Class name or id to generate.")],
    output: Annotated[str, typer.Option("--output", "-o", help="OUT.vtw, OUT.mp4 (one sample), '-' (.vtw on stdout) or a folder.")],
    num: Annotated[int, typer.Option("--num", help="Number of samples.")] = 1,
    seed: Annotated[int, typer.Option("--seed", help="Noise seed: same seed + settings + device = same output.")] = 0,
    steps: Annotated[int, typer.Option("--steps", help="DDIM steps (of the 1000-step schedule).")] = 50,
    cfg: Annotated[float, typer.Option("--cfg", help="Classifier-free guidance scale (1 = none).")] = 5.0,
    eta: Annotated[float, typer.Option("--eta", help="DDIM noise: 0 deterministic, 1 DDPM-like.")] = 0.0,
    fmt: Annotated[str, typer.Option("--format", help=f"File type written into a folder: {', '.join(OUTPUT_FORMATS)}.")] = "mp4",
    dit: Annotated[str, typer.Option("--dit", help="DiT file from 'vidtwin train dit' (default: the bundled synth-motion DiT).")] = "default",
    ae: Annotated[str | None, typer.Option("--ae", help="Autoencoder for decoding (default: the one the DiT records).")] = None,
    device: DeviceOption = AUTO,
    precision: PrecisionOption = AUTO,
    codec: CodecOption = "libx264",
    crf: CrfOption = None,
    quiet: QuietOption = False,
    overwrite: OverwriteOption = False,
    never: NoOverwriteOption = False,
    json_out: JsonOption = False,
) -> None:
    """Generate NUM clips of one class as .vtw latents or decoded videos."""
    from vidtwin_cli.codec.model_session import ModelSession  # torch and PyAV load here, not for --help
    from vidtwin_cli.codec.options import VideoOutput
    from vidtwin_cli.generation.sample import (
        SamplerSettings, check_autoencoder, output_paths, sample_latents, write_samples,
    )  # fmt: skip
    from vidtwin_cli.generation.weights import resolve_dit

    if json_out and output == STDIO:
        raise UsageError("--json and -o - both want stdout; write to a file or a folder")
    settings = SamplerSettings(steps, eta, cfg, seed)
    loaded = resolve_dit(dit)
    if loaded.autoencoder is None:
        raise ModelError(f"DiT {dit!r} is an untrained preset; train one with 'vidtwin train dit'")
    class_id = loaded.class_id(class_name)
    paths, kind = output_paths(output, num, loaded.classes[class_id], fmt)
    existing = Existing(overwrite, never)
    kept = [p for p in paths if existing.skip(p)]
    if len(kept) == len(paths):
        report_kept(output, json_out, quiet)
        return
    session = ModelSession(ae, device, precision)  # without --ae: the DiT's autoencoder, if it is local
    if kind == "video" or ae is not None:  # a .vtw needs no autoencoder, but a named one is checked
        check_autoencoder(loaded, session.load(loaded.autoencoder, recorded_in=f"DiT {dit!r}", flag="--ae")[0])
    err = err_console()
    with progress_bar(err, quiet, unit="steps") as bar:
        task = bar.add_task("sampling", total=settings.steps)
        latents = sample_latents(loaded, class_id, num, settings, session.device, lambda n: bar.advance(task, n))
        task = bar.add_task("writing", total=num)
        try:
            written = write_samples(loaded, latents, class_id, settings, paths, kind, session, VideoOutput(codec, crf),
                                    lambda n: bar.advance(task, n), keep=kept)  # fmt: skip
        except Interrupted as stop:
            done = [p for p in paths if p not in kept and str(p) != STDIO and Path(p).exists()]
            raise (stop.keeping(f"kept {len(done)} finished sample(s) in {output}") if done else stop) from None
    result = {"dit": loaded.spec, "dit_sha256": loaded.sha256, "class": loaded.classes[class_id], "class_id": class_id,
              "num": num, "seed": seed, "steps": steps, "cfg": cfg, "eta": eta, "device": str(session.device),
              "precision": session.precision, "format": kind, "outputs": written, "kept": [str(p) for p in kept]}  # fmt: skip
    if json_out:
        print_json(result)
    elif not quiet:
        where = output if num == 1 else f"{Path(output)}/"
        err.print(f"generated {num} × {result['class']} ({kind}) -> {where} on {result['device']} "
                  f"({result['precision']})", markup=False)
