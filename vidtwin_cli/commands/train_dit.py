"""`vidtwin train dit`: a class-conditional latent DiT on the latents of labelled videos (docs/generation.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from vidtwin_cli.console import err_console, print_json, progress_bar, warner
from vidtwin_cli.commands.options import JsonOption, QuietOption


def command(
    out: Annotated[Path, typer.Option("--out", "-o", help="Run directory: config, metrics.jsonl, checkpoints, model.safetensors.")],
    data: Annotated[list[str] | None, typer.Option("--data", "-d", help="Folder of class folders (with --labels-from-folders). Repeatable.")] = None,
    labels: Annotated[Path | None, typer.Option("--labels", help="CSV 'path,class' (paths relative to the CSV).")] = None,
    labels_from_folders: Annotated[bool, typer.Option("--labels-from-folders", help="Class = name of the folder under --data.")] = False,
    ae: Annotated[str | None, typer.Option("--ae", help="Autoencoder whose latents the DiT learns (preset, .safetensors, hub id).")] = None,
    preset: Annotated[str | None, typer.Option("--preset", help="DiT size: small (default), tiny, pseudo, paper.")] = None,
    steps: Annotated[int | None, typer.Option("--steps", help="Total optimisation steps.")] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", "-b", help="Clips per process and step.")] = None,
    lr: Annotated[float | None, typer.Option("--lr", help="Peak learning rate (constant after warm-up).")] = None,
    warmup: Annotated[int | None, typer.Option("--warmup", help="Linear warm-up steps.")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed of initialisation, batches and noise.")] = None,
    log_every: Annotated[int | None, typer.Option("--log-every", help="Write train metrics every N steps.")] = None,
    checkpoint_every: Annotated[int | None, typer.Option("--checkpoint-every", help="Checkpoint every N steps (0: at the end).")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Any training field: field=value (JSON value). Repeatable.")] = None,
    fit: Annotated[str, typer.Option("--fit", help="How frames become one model tile: crop, resize or tile.")] = "crop",
    cache: Annotated[Path | None, typer.Option("--cache", help="Latent cache folder (default OUT/latents; reused across runs).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --out from its latest checkpoint.")] = False,
    device: Annotated[str, typer.Option("--device", help="cpu, cuda, cuda:N or auto; under torchrun each rank takes its LOCAL_RANK GPU.")] = "auto",
    threads: Annotated[int, typer.Option("--threads", help="torch CPU threads per process (0: torch's default).")] = 0,
    json_out: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Train a class-conditional DiT on autoencoder latents of labelled videos (encoded once, cached)."""
    from vidtwin_cli.training.config import parse_set  # torch: not for --help
    from vidtwin_cli.training.dit_run import DitRequest, train_dit

    flags: dict[str, Any] = {"preset": preset, "steps": steps, "batch_size": batch_size, "lr": lr, "warmup_steps": warmup,
                             "seed": seed, "log_every": log_every, "checkpoint_every": checkpoint_every}  # fmt: skip
    overrides = {k: v for k, v in flags.items() if v is not None} | parse_set(set_ or [])
    request = DitRequest(out, list(data or []), labels, labels_from_folders, ae, overrides, resume, device, threads, cache, fit)
    err = err_console()
    with progress_bar(err, quiet, unit="steps") as bar:
        task = bar.add_task("train dit", total=None)

        def progress(step: int, total: int, logs: dict[str, float]) -> None:
            shown = f" loss {logs['loss']:.4g}" if "loss" in logs else ""
            bar.update(task, completed=step, total=total, description=f"train dit{shown}")

        def report(message: str) -> None:
            if not quiet:
                bar.console.print(message, markup=False, highlight=False)

        warn = warner(bar.console)
        result = train_dit(request, progress, report, warn)
    if result is None:  # not rank 0 of a torchrun job
        return
    if json_out:
        print_json(result.to_json())
    else:
        loss = result.train.get("loss")
        err.print(f"trained {result.steps} steps in {result.seconds:.0f} s on {result.clips} clips"
                  f"{f', loss {loss:.4g}' if loss is not None else ''} -> {result.model}", markup=False)
