"""Figures of a bench report (PNG). matplotlib is the optional extra `plot`: pip install 'vidtwin[plot]'."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vidtwin_cli.atomic import atomic_path
from vidtwin_cli.errors import UsageError

INSTALL_HINT = "--plot needs matplotlib: pip install 'vidtwin[plot]' (or pip install matplotlib)"
QUALITY_AXES = (("psnr", "PSNR (dB), higher is better"), ("ssim", "SSIM, higher is better"),
                ("lpips", "LPIPS, lower is better"))  # fmt: skip


def require_matplotlib() -> None:
    """Fail early, in one line, when the plot extra is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as e:
        raise UsageError(INSTALL_HINT) from e


def _pyplot() -> Any:
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    return plt


def _number(x: object) -> float | None:
    return float(x) if isinstance(x, (int, float)) else None  # "inf" and null are not plotted


def plot_report(report: dict, path: Path) -> None:
    """Write the figure for a bench report: speed per precision, and per video RD or matched-size quality."""
    plt = _pyplot()
    videos = report.get("inputs", [])
    fig, axes = plt.subplots(1 + len(videos), 3, figsize=(15, 4.2 * (1 + len(videos))), squeeze=False)
    _speed_panels(axes[0], report)
    for row, video in zip(axes[1:], videos):
        if "rd" in video:
            _rd_panels(row, video)
        else:
            _matched_panels(row, video)
    fig.tight_layout()
    with atomic_path(Path(path), suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def _speed_panels(axes: Any, report: dict) -> None:
    runs = report.get("speed") or [r for v in report.get("inputs", [])[:1] for r in v["runs"]]
    names = [r["precision"] for r in runs]
    ax = axes[0]
    enc = [r["encode_s"]["median"] for r in runs]
    dec = [r["decode_s"]["median"] for r in runs]
    ax.bar(names, enc, label="encode")
    ax.bar(names, dec, bottom=enc, label="decode")
    ax.set_ylabel("seconds (median)")
    ax.set_title(f"{report['model']['spec']}: encode + decode time")
    ax.legend()
    ax = axes[1]
    if runs and "gflops_per_s" in runs[0]:
        ax.bar(names, [r["gflops_per_s"]["median"] for r in runs], label="model (median)")
        ax.scatter(names, [r["matmul_peak_gflops_per_s"] for r in runs], color="black", marker="_", s=400,
                   label="matmul peak", zorder=3)  # fmt: skip
        ax.set_ylabel("GFLOP/s")
        ax.set_title("achieved vs matmul peak")
        ax.legend()
    else:
        ax.bar(names, [r["frames_per_s"]["decode"] for r in runs])
        ax.set_ylabel("decode frames/s")
        ax.set_title("decode speed")
    ax = axes[2]
    ax.bar(names, [r["peak_rss_mib"] for r in runs])
    ax.set_ylabel("peak RSS (MiB)")
    ax.set_title("memory")


def _rd_panels(axes: Any, video: dict) -> None:
    """RD curves per metric; the bicubic baseline (values, not bytes) as a level line; BD-rates in a corner."""
    bicubic = video.get("resample")
    for ax, (key, label) in zip(axes, QUALITY_AXES):
        for name, points in video["rd"].items():
            xy = [(p["kbit_per_s"], _number(p[key])) for p in points if _number(p[key]) is not None]
            if xy:
                xs, ys = zip(*sorted(xy))
                ax.plot(xs, ys, marker="o", label=name, linestyle="--" if name.startswith("libx") else "-")
        level = _number(_bicubic_value(bicubic, key)) if bicubic else None
        if level is not None:
            ax.axhline(level, color="gray", linestyle=":", label=f"bicubic, model's {bicubic['values']:,} values")
        ax.set_xscale("log")
        ax.set_xlabel("kbit/s (whole files)")
        ax.set_ylabel(label)
        ax.set_title(f"{Path(video['input']).name}: rate-distortion")
        ax.grid(True, which="both", alpha=0.3)
        if ax.lines:
            ax.legend(fontsize="small")
        if key in ("psnr", "lpips") and (text := _bd_text(video.get("bd_rate", {}), key)):
            ax.text(0.98, 0.02, text, transform=ax.transAxes, ha="right", va="bottom", fontsize="small",
                    bbox={"facecolor": "white", "alpha": 0.8})  # fmt: skip


def _bicubic_value(resample: dict, key: str) -> object:
    q = resample["quality"]
    return q["psnr"]["pooled"] if key == "psnr" else q[key]["mean"] if q.get(key) else None


def _bd_text(bd: dict, key: str) -> str:
    """'BD-rate (PSNR) vs libx264 medium' and one line per vidtwin curve."""
    lines = []
    for reference, curves in bd.items():
        rows = [f"  {name}: {v[key]:+.1f}%" for name, v in curves.items()
                if name.startswith("vidtwin") and _number(v[key]) is not None]  # fmt: skip
        if rows:
            lines += [f"BD-rate ({key.upper()}) vs {reference}", *rows]
    return "\n".join(lines)


def _matched_panels(axes: Any, video: dict) -> None:
    rows = [(f"vidtwin {r['precision']}", r["quality"]) for r in video["runs"]]
    rows += [(b["codec"], b["quality"]) for b in video["baselines"]]
    names = [n for n, _ in rows]
    values = {
        "psnr": [_number(q["psnr"]["pooled"]) or 0.0 for _, q in rows],
        "ssim": [q["ssim"]["mean"] for _, q in rows],
        "lpips": [q["lpips"]["mean"] if q["lpips"] else 0.0 for _, q in rows],
    }
    kbps = video["rate"][video["latent_dtype"]]["kbit_per_s"]
    for ax, (key, label) in zip(axes, QUALITY_AXES):
        ax.bar(names, values[key])
        ax.set_ylabel(label)
        ax.set_title(f"{Path(video['input']).name} at {kbps:.0f} kbit/s" if kbps else Path(video["input"]).name)
        ax.tick_params(axis="x", rotation=20)
