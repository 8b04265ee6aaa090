"""What a `.vtw` says about itself: magic, version, the JSON header and the tensors it implies.

docs/vtw-format.md sections 2-4 and 7. `container.py` reads and writes files with these rules;
`bytes.py` handles the safetensors framing around them.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from models import Latents, VidTwinConfig

from vidtwin_cli import __version__
from vidtwin_cli.defaults import ENTROPY
from vidtwin_cli.vtw.bytes import Entries, Layout, short, strict_json
from vidtwin_cli.errors import ContainerError, UsageError
from vidtwin_cli.video.info import FIT_MODES, MAX_FRAMES, MAX_SIDE, Geometry, VideoInfo

MAGIC = "vidtwin.vtw"
VERSION = (1, 2)  # (major, minor): readers reject another major, accept a newer minor
MAX_CONFIG_INT = 1 << 16  # no plausible model size exceeds this; bounds the work a hostile config causes

LatentDtype = Literal["fp16", "bf16", "fp32", "int8", "entropy"]
LATENT_DTYPES: dict[str, str] = {"fp16": "F16", "bf16": "BF16", "fp32": "F32", "int8": "I8"}  # raw: -> safetensors dtype
MAX_KEYINT = 1 << 16
MAX_STEP = float(1 << 20)  # symbol · step must stay finite in float32 for every symbol below 2^15
CHANNEL_AXIS = {"structure": -1, "dynamics_x": 1, "dynamics_y": 1}  # the latent tensors; d_S is last, d_D is dim 1
MAX_TEXT = 4096  # characters in any header string (a path is at most PATH_MAX)
MAX_RATIONAL = (1 << 31) - 1  # fps, time_base, sample_aspect terms: what FFmpeg's 32-bit AVRational holds
SEED_RANGE = (-(1 << 63), (1 << 64) - 1)  # what torch.Generator.manual_seed accepts
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
COMMIT_HEX = re.compile(r"^[0-9a-f]{40}$")
VERSION_TEXT = re.compile(r"^(\d{1,6})\.(\d{1,6})$")


def check_latent_dtype(dtype: str) -> None:
    """The one check of a requested latent storage dtype (`--dtype`: entropy, or a raw dtype)."""
    if dtype not in LATENT_DTYPES and dtype != ENTROPY:
        raise UsageError(f"--dtype must be one of {', '.join([ENTROPY, *LATENT_DTYPES])}")


@dataclass(frozen=True)
class ModelRef:
    """The model that made the latents: what was asked for, the weights fingerprint, the full config."""

    spec: str  # preset name, file path or hub id as the user gave it
    weights_sha256: str  # `weights.tensors_sha256` of the weights, 64 lowercase hex digits
    config: VidTwinConfig
    commit: str | None = None  # hub models: the commit the id resolved to (format 1.2)


@dataclass(frozen=True)
class VtwHeader:
    """Everything a `.vtw` holds besides the latents; inconsistent values raise ValueError.

    The latents have rows = clips × tiles_per_clip, clip-major, then tile row-major:
    row = clip · tiles_per_clip + r · cols + c.
    """

    model: ModelRef
    video: VideoInfo
    geometry: Geometry
    clips: int  # clips of T frames: ceil(frame_count / T), the last one padded
    dtype: LatentDtype = "fp16"  # how latents are stored; reading always gives float32
    sampled: bool = False  # posterior samples (True) or posterior means (False)
    seed: int | None = None  # the sampling seed, when sampled
    tool: str = "vidtwin"
    tool_version: str = __version__
    provenance: dict[str, Any] = field(default_factory=dict)  # free JSON, e.g. the generator's settings
    step: float | None = None  # entropy: the quantisation step (latent value = symbol · step)
    keyint: int | None = None  # entropy: a key clip every keyint clips, the others coded from the clip before

    def __post_init__(self) -> None:
        cfg, video, geo = self.model.config, self.video, self.geometry
        needed = -(-video.frame_count // cfg.frames)
        coded = self.dtype == ENTROPY
        problems = [
            (self.dtype not in LATENT_DTYPES and not coded,
             f"latent dtype {short(self.dtype)} is not one of {', '.join([*LATENT_DTYPES, ENTROPY])}"),
            (coded and not (type(self.step) is float and 0 < self.step <= MAX_STEP),
             f"entropy coding needs a step in (0, {MAX_STEP:g}], got {short(self.step)}"),
            (coded and not (type(self.keyint) is int and 1 <= self.keyint <= MAX_KEYINT),
             f"entropy coding needs keyint in 1..{MAX_KEYINT}, got {short(self.keyint)}"),
            (not coded and (self.step, self.keyint) != (None, None), f"step and keyint apply to {ENTROPY} latents only"),
            (not SHA256_HEX.match(str(self.model.weights_sha256)),
             f"weights sha256 {short(self.model.weights_sha256)} is not 64 lowercase hex digits"),
            (self.model.commit is not None and not COMMIT_HEX.match(str(self.model.commit)),
             f"model commit {short(self.model.commit)} is not 40 lowercase hex digits"),
            (geo.tile != cfg.image_size,
             f"geometry tile {geo.tile} differs from the model's image_size {cfg.image_size}"),
            ((geo.width, geo.height) != (video.width, video.height),
             f"geometry {geo.width}x{geo.height} differs from the video's {video.width}x{video.height}"),
            (not video.duration >= 0, f"video duration {video.duration} is negative"),
            (type(self.sampled) is not bool or not (self.seed is None or type(self.seed) is int),
             f"sampled must be true/false and seed an integer or null, got {short(self.sampled)}, {short(self.seed)}"),
            (self.clips != needed,
             f"{short(self.clips)} clips, but {video.frame_count} frames in clips of {cfg.frames} need {needed}"),
        ]
        for failed, message in problems:
            if failed:
                raise ValueError(message)

    @property
    def version(self) -> tuple[int, int]:
        """The oldest format version that describes this file, so 1.0 readers keep reading most files.

        1.1 added `video.sample_aspect` (anamorphic video); files of square-pixel video are 1.0.
        1.2 added `model.commit` (the resolved commit of a hub model).
        Entropy-coded latents need 2.0 (docs/vtw-format.md, part 2).
        """
        if self.dtype == ENTROPY:
            return (2, 0)
        if self.model.commit is not None:
            return (1, 2)
        return (1, 1) if self.video.sample_aspect != 1 else (1, 0)

    @property
    def tiles_per_clip(self) -> int:
        return self.geometry.tiles_per_clip

    @property
    def rows(self) -> int:
        """N: latent rows (clips × tiles)."""
        return self.clips * self.tiles_per_clip

    def layout(self) -> Layout:
        """Every tensor the file holds: name -> (safetensors dtype, shape) (docs/vtw-format.md §4)."""
        return tensor_layout(self.model.config, self.rows, self.dtype,
                             None if self.video.pts is None else self.video.frame_count)

    def to_dict(self) -> dict[str, Any]:
        """The JSON header (timestamps excluded: they are the `pts` tensor)."""
        return {
            "model": {"spec": self.model.spec, "weights_sha256": self.model.weights_sha256,
                      "config": self.model.config.to_dict(),
                      **({"commit": self.model.commit} if self.model.commit else {})},
            "video": {k: v for k, v in self.video.to_dict().items() if k != "pts"},
            "geometry": self.geometry.to_dict(),
            "latent_dtype": self.dtype,
            "clips": self.clips,
            "tiles_per_clip": self.tiles_per_clip,
            "sampled": self.sampled,
            "seed": self.seed,
            "created_by": {"tool": self.tool, "version": self.tool_version},
            "provenance": self.provenance,
        } | ({"coding": {"step": self.step, "keyint": self.keyint}} if self.dtype == ENTROPY else {})

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> VtwHeader:
        """Parse untrusted header JSON (without timestamps); raises ValueError with the reason."""
        h = strict_json(text)
        validate_header(h)
        model, video, created = h["model"], h["video"], h["created_by"]
        geometry = Geometry.from_dict(h["geometry"])
        if h["tiles_per_clip"] != geometry.tiles_per_clip:
            raise ValueError(f"tiles_per_clip {h['tiles_per_clip']} differs from the "
                             f"{geometry.rows}x{geometry.cols} tile grid")
        coding = h.get("coding", {})
        return cls(
            ModelRef(model["spec"], model["weights_sha256"], _config(model["config"]), model.get("commit")),
            VideoInfo.from_dict({**video, "pts": None}), geometry, h["clips"], h["latent_dtype"], h["sampled"],
            h.get("seed"), created["tool"], created["version"], h.get("provenance", {}),
            coding.get("step"), coding.get("keyint"),
        )  # fmt: skip


def tensor_layout(config: VidTwinConfig, rows: int, dtype: str, pts_frames: int | None) -> Layout:
    """The tensors of a file with `rows` latent rows: name -> (safetensors dtype, shape)."""
    shapes = {
        "structure": (rows, *config.structure_shape),
        "dynamics_x": (rows, *config.dynamics_shape),
        "dynamics_y": (rows, *config.dynamics_shape),
    }
    layout = {key: (LATENT_DTYPES[dtype], shape) for key, shape in shapes.items()}
    if dtype == "int8":
        layout |= {f"{key}_scale": ("F32", (rows, shape[CHANNEL_AXIS[key]])) for key, shape in shapes.items()}
    if pts_frames is not None:
        layout["pts"] = ("I64", (pts_frames,))
    return layout

def check_latents(config: VidTwinConfig, latents: Latents) -> int:
    """Rows of `latents` after checking their shapes against the model config (ValueError if not)."""
    rows = latents.structure.shape[0]
    expected = {"structure": config.structure_shape, "dynamics_x": config.dynamics_shape,
                "dynamics_y": config.dynamics_shape}
    for key, shape in expected.items():
        got = tuple(getattr(latents, key).shape)
        if got != (rows, *shape):
            raise ValueError(f"latents.{key} has shape {got}, the model config needs {(rows, *shape)}")
    return rows


def check_identity(name: str, meta: dict[str, Any] | None) -> int:
    """Magic, version and the other two metadata keys of an untrusted file; returns its minor version."""
    if meta is None or "magic" not in meta:
        said = f"; its metadata says format={short(meta['format'])}" if meta and "format" in meta else ""
        raise ContainerError(f"{name}: not a .vtw file: a safetensors file without the {MAGIC!r} magic{said}")
    if meta["magic"] != MAGIC:
        raise ContainerError(f"{name}: bad magic {short(meta['magic'])} (expected {MAGIC!r})")
    version = meta.get("version")
    match = VERSION_TEXT.match(version) if type(version) is str else None
    if match is None:
        raise ContainerError(f"{name}: unreadable format version {short(version)} (expected MAJOR.MINOR)")
    major, minor = int(match[1]), int(match[2])
    if major != VERSION[0]:
        why = "written by a newer vidtwin; upgrade to read it" if major > VERSION[0] else "unknown"
        raise ContainerError(f"{name}: .vtw format version {major}.{minor} is not supported "
                             f"(this vidtwin reads {VERSION[0]}.x; {why})")
    if type(meta.get("header")) is not str or type(meta.get("sha256")) is not str or not SHA256_HEX.match(meta["sha256"]):
        raise ContainerError(f"{name}: metadata 'header' or 'sha256' is missing or malformed")
    return minor


def check_tensor_table(name: str, header: VtwHeader, entries: Entries, minor: int) -> Layout:
    """Every tensor the header implies is present with exactly its dtype and shape; no strays.

    Returns that layout (with `pts` when the file has timestamps)."""
    pts_frames = header.video.frame_count if "pts" in entries else None
    layout = tensor_layout(header.model.config, header.rows, header.dtype, pts_frames)
    for key, (dtype, shape) in layout.items():
        entry = entries.get(key)
        if entry is None:
            raise ContainerError(f"{name}: tensor {key!r} is missing")
        if entry["dtype"] != dtype or tuple(entry["shape"]) != shape:
            raise ContainerError(f"{name}: tensor {key!r} is {entry['dtype']} {entry['shape']}, but the header "
                                 f"({header.clips} clips × {header.tiles_per_clip} tiles, {header.dtype}, model config) "
                                 f"needs {dtype} {list(shape)}")
    unknown = sorted(set(entries) - set(layout))
    if unknown and minor <= VERSION[1]:  # a newer minor version may add tensors; ours has no strays
        raise ContainerError(f"{name}: unexpected tensor(s) {', '.join(map(repr, unknown))}")
    return layout


def _config(d: dict) -> VidTwinConfig:
    """VidTwinConfig from untrusted JSON: every field present, of its type, integers bounded."""
    kinds = {f.name: type(f.default) for f in dataclasses.fields(VidTwinConfig)}
    missing = sorted(set(kinds) - set(d))
    if missing:
        raise ValueError(f"model.config lacks {', '.join(missing)}")
    for key, kind in kinds.items():
        v = d[key]
        if kind is bool:
            ok = type(v) is bool
        elif kind is int:
            ok = type(v) is int and 0 <= v <= MAX_CONFIG_INT
        else:
            ok = type(v) in (int, float) and math.isfinite(v)
        if not ok:
            raise ValueError(f"model.config.{key} = {short(v)} is not a plausible {kind.__name__}")
    return VidTwinConfig.from_dict(d)  # unknown fields and inconsistent sizes raise ValueError


# --------------------------------------------------------------------------- header validation
# The JSON type and range of every header field of docs/vtw-format.md section 3, checked before any
# value is used. Consistency between fields (clips vs frames, geometry vs model) is `VtwHeader`'s job.

Check = Callable[[object], bool]


def _integer(low: int, high: int) -> Check:
    return lambda v: type(v) is int and low <= v <= high  # `type is`: true/false are not integers


def _number(v: object) -> bool:
    return type(v) in (int, float) and math.isfinite(v) and v >= 0


def _text(choices: tuple[str, ...] | None = None) -> Check:
    return lambda v: type(v) is str and len(v) <= MAX_TEXT and (choices is None or v in choices)


def _rational(v: object) -> bool:
    return type(v) is list and len(v) == 2 and all(type(x) is int and 1 <= x <= MAX_RATIONAL for x in v)


def _object(v: object) -> bool:
    return type(v) is dict


def _boolean(v: object) -> bool:
    return type(v) is bool


def _seed(v: object) -> bool:
    return v is None or _integer(*SEED_RANGE)(v)


def _step(v: object) -> bool:
    return type(v) is float and 0 < v <= MAX_STEP


SIDE, COUNT = _integer(1, MAX_SIDE), _integer(1, MAX_FRAMES)
# dotted key -> (what it must be, in words; the check; whether it may be absent)
HEADER_FIELDS: dict[str, tuple[str, Check, bool]] = {
    "model": ("an object", _object, False),
    "model.spec": (f"a string of at most {MAX_TEXT} characters", _text(), False),
    "model.weights_sha256": ("64 lowercase hex digits", lambda v: type(v) is str and bool(SHA256_HEX.match(v)), False),
    "model.config": ("an object", _object, False),
    "model.commit": ("40 lowercase hex digits", lambda v: type(v) is str and bool(COMMIT_HEX.match(v)), True),
    "video": ("an object", _object, False),
    "video.width": (f"an integer in 1..{MAX_SIDE}", SIDE, False),
    "video.height": (f"an integer in 1..{MAX_SIDE}", SIDE, False),
    "video.fps": (f"[numerator, denominator], integers in 1..{MAX_RATIONAL}", _rational, False),
    "video.time_base": (f"[numerator, denominator], integers in 1..{MAX_RATIONAL}", _rational, False),
    "video.frame_count": (f"an integer in 1..{MAX_FRAMES}", COUNT, False),
    "video.duration": ("a finite number of seconds >= 0", _number, False),
    "video.codec": (f"a string of at most {MAX_TEXT} characters", _text(), False),
    "video.sample_aspect": (f"[numerator, denominator], integers in 1..{MAX_RATIONAL}", _rational, True),
    "geometry": ("an object", _object, False),
    "geometry.fit": (" or ".join(FIT_MODES), _text(FIT_MODES), False),
    "geometry.tile": (f"an integer in 1..{MAX_CONFIG_INT}", _integer(1, MAX_CONFIG_INT), False),
    "geometry.width": (f"an integer in 1..{MAX_SIDE}", SIDE, False),
    "geometry.height": (f"an integer in 1..{MAX_SIDE}", SIDE, False),
    "geometry.rows": (f"an integer in 1..{MAX_SIDE}", SIDE, False),
    "geometry.cols": (f"an integer in 1..{MAX_SIDE}", SIDE, False),
    "geometry.pad_right": (f"an integer in 0..{MAX_CONFIG_INT}", _integer(0, MAX_CONFIG_INT), False),
    "geometry.pad_bottom": (f"an integer in 0..{MAX_CONFIG_INT}", _integer(0, MAX_CONFIG_INT), False),
    "latent_dtype": (" or ".join([*LATENT_DTYPES, ENTROPY]), _text((*LATENT_DTYPES, ENTROPY)), False),
    "clips": (f"an integer in 1..{MAX_FRAMES}", COUNT, False),
    "tiles_per_clip": (f"an integer in 1..{MAX_SIDE ** 2}", _integer(1, MAX_SIDE**2), False),
    "sampled": ("true or false", _boolean, False),
    "seed": ("an integer (64-bit) or null", _seed, True),
    "created_by": ("an object", _object, False),
    "created_by.tool": (f"a string of at most {MAX_TEXT} characters", _text(), False),
    "created_by.version": (f"a string of at most {MAX_TEXT} characters", _text(), False),
    "provenance": ("an object", _object, True),
    "coding": ("an object", _object, True),  # entropy latents only: VtwHeader requires it there
    "coding.step": (f"a number in (0, {MAX_STEP:g}] written with a decimal point", _step, False),
    "coding.keyint": (f"an integer in 1..{MAX_KEYINT}", _integer(1, MAX_KEYINT), False),
}


def validate_header(h: object) -> None:
    """Every field of an untrusted, parsed header has its documented JSON type and range (ValueError if not).

    Parents come before their children in HEADER_FIELDS, so a child is only looked up in an object;
    the children of an absent optional object are not looked for.
    """
    if type(h) is not dict:
        raise ValueError("not a JSON object")
    for dotted, (expected, check, optional) in HEADER_FIELDS.items():
        *parents, key = dotted.split(".")
        node = h
        for parent in parents:
            node = node.get(parent, {})
        if parents and not node and parents[0] not in h:
            continue
        if key not in node:
            if optional:
                continue
            raise ValueError(f"{dotted!r} is missing")
        if not check(node[key]):
            raise ValueError(f"{dotted} must be {expected}, got {short(node[key])}")
