"""Compare autoencoders on the same held-out tiles: which training run is better, and by how much.

Every model reconstructs the same clips (evenly spaced through each video, a fixed pseudo-random
native-size tile of each, drawn from --seed), from the posterior means in fp32, without the .vtw
quantisation; PSNR and SSIM are averaged over frames per video. The trainer's own validation figure
cannot be compared across runs (each run draws its tiles from its own seed); this can.

By default clips are consecutive frames, as `vidtwin encode` cuts them; `--sample-fps 8` takes the
training sampler's stride instead. `--quality 9` decodes the latents rounded as `encode --quality 9`
stores them (the default .vtw), instead of the raw means.

    python scripts/compare_models.py --video bikes.mp4 --video box.mp4 --model default --model runs/s/model.safetensors
    python scripts/compare_models.py ... --clips 32 --seed 0 --json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from vidtwin_cli.codec.weights import resolve_model
from vidtwin_cli.training.ae_step import reconstruction_scores
from vidtwin_cli.training.config import DataConfig
from vidtwin_cli.training.data import probe_videos, validation_clips
from vidtwin_cli.vtw.entropy import QUALITIES

CONSECUTIVE = 1000.0  # a sample rate above any video's: stride 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, action="append", required=True, help="held-out video (repeatable)")
    parser.add_argument("--model", action="append", required=True,
                        help="default, a .safetensors path or hub id (repeatable; the first is the reference)")
    parser.add_argument("--clips", type=int, default=32, help="clips per video")
    parser.add_argument("--seed", type=int, default=0, help="draws the tiles")
    parser.add_argument("--sample-fps", type=float, default=CONSECUTIVE,
                        help="frame stride as in training (default: consecutive frames)")
    parser.add_argument("--quality", type=int, default=0, choices=[0, *QUALITIES],
                        help="round the latents as `encode --quality N` does (0: raw posterior means)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--json", action="store_true", help="print JSON only")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    models = [resolve_model(spec) for spec in args.model]
    frames, tile = models[0].config.frames, models[0].config.image_size
    if any((m.config.frames, m.config.image_size) != (frames, tile) for m in models):
        raise SystemExit("the models cut clips differently (frames or tile size); compare them with `vidtwin bench`")
    data = DataConfig(resize="native", val_clips=args.clips, sample_fps=args.sample_fps)
    rows = []
    for entry in probe_videos(args.video):
        clips = validation_clips([entry], data, frames, tile, args.seed)
        results = [(r["psnr"], r["ssim"]) for r in (reconstruction_scores(m.model, clips, 8, quality=args.quality) for m in models)]
        rows.append({"video": entry.path, "clips": len(clips),
                     "models": [{"model": m.spec, "sha256": m.sha256[:12], "psnr": round(p, 3), "ssim": round(s, 4),
                                 "delta_psnr": round(p - results[0][0], 3)} for m, (p, s) in zip(models, results)]})
        if not args.json:
            for m in rows[-1]["models"]:
                print(f"{Path(entry.path).name:<24} {m['model']:<48} {m['psnr']:7.3f} dB  SSIM {m['ssim']:.4f}  "
                      f"{m['delta_psnr']:+.3f} dB")
    if args.json:
        print(json.dumps({"seed": args.seed, "sample_fps": args.sample_fps, "quality": args.quality, "results": rows}, indent=1))


if __name__ == "__main__":
    main()
