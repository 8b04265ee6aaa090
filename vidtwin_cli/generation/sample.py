"""Class-conditional generation: DDIM samples of a latent DiT, written as `.vtw` or decoded to video.

Every sample is one model clip of one tile. Its `.vtw` names the autoencoder the DiT was trained
for (so `vidtwin decode` works on it) and keeps the DiT id, class, seed and sampler settings in
its provenance. The initial and DDIM noise come from one CPU generator seeded with `seed`, so the
same seed and settings give the same noise on every device, and the same output on one device.
"""

from __future__ import annotations

import tempfile
from collections.abc import Collection
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from models import Latents
from models.diffusion import GaussianDiffusion

from vidtwin_cli.callbacks import Progress
from vidtwin_cli.atomic import STDIO
from vidtwin_cli.defaults import OUTPUT_FORMATS
from vidtwin_cli.vtw.container import ModelRef, VtwFile, VtwHeader, write_vtw
from vidtwin_cli.generation.weights import DEFAULT_DIT_SCRIPT, LoadedDiT
from vidtwin_cli.errors import ModelError, RuntimeFailure, UsageError
from vidtwin_cli.codec.options import VideoOutput
from vidtwin_cli.codec.pipeline import decode_vtw
from vidtwin_cli.codec.model_session import ModelSession
from vidtwin_cli.media import VIDEO_SUFFIXES
from vidtwin_cli.video.info import Geometry, VideoInfo
from vidtwin_cli.codec.weights import LoadedModel



@dataclass(frozen=True)
class SamplerSettings:
    """DDIM with classifier-free guidance (C.3 defaults: 50 steps, guidance 5)."""

    steps: int = 50
    eta: float = 0.0  # 0: deterministic DDIM; 1: DDPM-like noise at every step
    cfg: float = 5.0  # guidance scale; 1 = no guidance (conditional model only)
    seed: int = 0

    def __post_init__(self) -> None:
        limit = GaussianDiffusion().num_steps
        if not 1 <= self.steps <= limit:
            raise UsageError(f"--steps must be in 1..{limit}, got {self.steps}")
        if not 0 <= self.eta <= 1:
            raise UsageError(f"--eta must be in [0, 1], got {self.eta}")
        if not 0 <= self.cfg <= 100:
            raise UsageError(f"--cfg must be in [0, 100], got {self.cfg}")
        if not 0 <= self.seed < 2**63:
            raise UsageError(f"--seed must be in 0..2^63-1, got {self.seed}")


def check_autoencoder(dit: LoadedDiT, ae: LoadedModel) -> None:
    """Refuse an autoencoder other than the one the DiT was trained on (weights sha256)."""
    if dit.autoencoder is None:
        raise ModelError(f"DiT {dit.spec!r} is an untrained preset; train one with 'vidtwin train dit'")
    if ae.sha256 != dit.autoencoder.weights_sha256 and dit.source == "bundled" and ae.source == "bundled":
        raise ModelError(f"the default DiT was trained for another version of the bundled autoencoder "
                         f"(weights sha256 {dit.autoencoder.weights_sha256[:16]}…, bundled now {ae.sha256[:16]}…); "
                         f"remake it with {DEFAULT_DIT_SCRIPT}, or pass --dit FILE")
    if ae.sha256 != dit.autoencoder.weights_sha256:
        raise ModelError(f"DiT {dit.spec} was trained for autoencoder {dit.autoencoder.spec} "
                         f"(weights sha256 {dit.autoencoder.weights_sha256[:16]}…), but {ae.spec} has "
                         f"{ae.sha256[:16]}…; pass the matching --ae")


@torch.no_grad()
def sample_latents(
    dit: LoadedDiT,
    class_id: int,
    num: int,
    settings: SamplerSettings,
    device: torch.device,
    progress: Progress | None = None,
) -> Latents:
    """`num` samples of class `class_id`: float32 CPU Latents (num rows). `progress` gets 1 per DDIM step."""
    if num < 1:
        raise UsageError(f"--num must be >= 1, got {num}")
    if not 0 <= class_id < dit.config.num_classes:
        raise UsageError(f"class id {class_id} is outside 0..{dit.config.num_classes - 1}")
    model = dit.model.to(device).eval()
    labels = torch.full((num,), class_id, dtype=torch.long, device=device)
    generator = torch.Generator().manual_seed(settings.seed)
    y = GaussianDiffusion().ddim_sample(
        model, labels, model.tokens.target_size, dit.config.null_class,
        steps=settings.steps, eta=settings.eta, cfg=settings.cfg, generator=generator, progress=progress,
    )  # fmt: skip
    latents = model.tokens.unpack(y).to("cpu", torch.float32)
    if not all(torch.isfinite(t).all() for t in (latents.structure, latents.dynamics_x, latents.dynamics_y)):
        raise RuntimeFailure(f"DiT {dit.spec} produced non-finite latents")
    return latents


def provenance(dit: LoadedDiT, class_id: int, settings: SamplerSettings, index: int, num: int) -> dict[str, Any]:
    """What a generated `.vtw` records about how it was made."""
    diffusion = GaussianDiffusion()
    return {
        "generated_by": "vidtwin generate",
        "dit": {"spec": dit.spec, "weights_sha256": dit.sha256, "config": dit.config.to_dict()},
        "class": dit.classes[class_id],
        "class_id": class_id,
        "sample": index,
        "num": num,
        "sampler": {"name": "ddim", **asdict(settings), "schedule": asdict(diffusion.config)},
    }


def generated_vtw(dit: LoadedDiT, latents: Latents, class_id: int, settings: SamplerSettings, index: int, num: int) -> VtwFile:
    """One generated clip (Latents with one row) as a `.vtw` of the DiT's autoencoder."""
    ae = dit.autoencoder
    if ae is None:
        raise ModelError(f"DiT {dit.spec!r} is an untrained preset; train one with 'vidtwin train dit'")
    cfg = ae.config
    size, frames = cfg.image_size, cfg.frames
    video = VideoInfo(size, size, dit.fps, 1 / dit.fps, frames, float(frames / dit.fps))
    header = VtwHeader(
        ModelRef(ae.spec, ae.weights_sha256, cfg), video, Geometry.plan(size, size, size, "tile"), clips=1,
        dtype="fp32", provenance=provenance(dit, class_id, settings, index, num),
    )  # fmt: skip
    return VtwFile(header, latents)


def output_paths(output: Path | str, num: int, class_name: str, fmt: str) -> tuple[list[Path | str], str]:
    """Where the `num` samples go and in which format ("vtw" or "video").

    A `.vtw` name, `-` (a `.vtw` on stdout) or a video name takes one sample; anything else is a
    folder (created if needed) that receives CLASS_0000.FMT, CLASS_0001.FMT, ...
    """
    if fmt not in OUTPUT_FORMATS:
        raise UsageError(f"--format must be one of {', '.join(OUTPUT_FORMATS)}, got {fmt!r}")
    out = Path(output)
    single = str(output) == STDIO or (not out.is_dir() and out.suffix.lower() in {".vtw", *VIDEO_SUFFIXES})
    if single:
        if num != 1:
            raise UsageError(f"-o {output} takes one sample; give a folder for --num {num}")
        kind = "vtw" if str(output) == STDIO or out.suffix.lower() == ".vtw" else "video"
        if kind == "video" and str(output) != STDIO and not out.parent.is_dir():
            raise UsageError(f"{out}: output directory {out.parent} does not exist")
        return [output], kind
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out}: exists and is neither a folder nor a .vtw/video name")
    if not out.parent.is_dir():
        raise UsageError(f"{out}: parent directory {out.parent} does not exist")
    return [out / f"{class_name}_{k:04d}.{fmt}" for k in range(num)], "vtw" if fmt == "vtw" else "video"


def write_samples(
    dit: LoadedDiT,
    latents: Latents,
    class_id: int,
    settings: SamplerSettings,
    paths: list[Path | str],
    kind: str,
    session: ModelSession | None = None,
    output: VideoOutput | None = None,
    progress: Progress | None = None,
    keep: Collection[Path | str] = (),
) -> list[str]:
    """Write sample k to paths[k]: a `.vtw`, or (kind "video") decoded by the session's autoencoder.

    Paths in `keep` are left as they are (their samples are drawn all the same, so the others do not change).

    Video goes through the codec's own `decode_vtw` on a temporary `.vtw`, so a generated clip
    decodes exactly as `vidtwin decode` would decode the `.vtw` output.
    """
    if kind == "video" and session is None:
        raise ValueError("video output needs an autoencoder session")
    written = []
    for k, path in enumerate(paths):
        if path in keep:
            continue
        vtw = generated_vtw(dit, latents.select(slice(k, k + 1)), class_id, settings, k, len(paths))
        if str(path) != STDIO:
            Path(path).parent.mkdir(exist_ok=True)
        if kind == "vtw":
            write_vtw(path, vtw)
        else:
            with tempfile.TemporaryDirectory(prefix="vidtwin-generate-") as tmp:
                latent_file = Path(tmp) / "sample.vtw"
                write_vtw(latent_file, vtw)
                decode_vtw(latent_file, path, session, output=output)
        written.append(str(path))
        if progress is not None:
            progress(1)
    return written
