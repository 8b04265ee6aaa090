"""vidtwin: a command-line video codec built on the VidTwin autoencoder, and its Python API.

The API (`vidtwin_cli.api`, docs/api.md) is re-exported here and imported on first use, so the
command line does not pay for torch before it needs it.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_API = frozenset({
    "ContainerError", "DecodeOptions", "DecodeResult", "EncodeOptions", "EncodeResult", "InputError", "Inspection",
    "ModelError", "ModelSession", "RuntimeFailure", "SAMPLE_CLIP", "SwapOptions", "SwapResult", "Trim", "UsageError",
    "VerifyReport", "VideoOutput", "VidtwinError", "VtwFile", "decode", "encode", "inspect", "load_model", "read",
    "swap", "verify", "write",
})  # fmt: skip
__all__ = ["__version__", *sorted(_API)]


def __getattr__(name: str) -> Any:
    if name in _API:
        from vidtwin_cli import api

        return getattr(api, name)
    raise AttributeError(f"module 'vidtwin_cli' has no attribute {name!r}")
