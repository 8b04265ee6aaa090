"""Where vidtwin keeps what it downloads or derives: one user cache folder, never the source checkout.

`$VIDTWIN_CACHE`, else the platform's user cache folder (`$XDG_CACHE_HOME/vidtwin` or `~/.cache/vidtwin`
on Linux, `~/Library/Caches/vidtwin` on macOS, `%LOCALAPPDATA%\\vidtwin\\Cache` on Windows). Inside it:
`models/` (converted hub checkpoints), `lpips/` (converted LPIPS weights) and `media/` (what
`scripts/fetch_media.py` fetches; `$VIDTWIN_MEDIA` overrides). Hub downloads themselves stay in
huggingface_hub's own cache (`HF_HOME`, `HF_HUB_CACHE`).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

APP = "vidtwin"


def user_cache_dir() -> Path:
    """The platform's per-user cache folder for vidtwin."""
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local") / APP / "Cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / APP
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / APP


def default_cache_dir() -> Path:
    """`$VIDTWIN_CACHE`, else `user_cache_dir()`."""
    return Path(os.environ["VIDTWIN_CACHE"]) if os.environ.get("VIDTWIN_CACHE") else user_cache_dir()


def default_media_dir() -> Path:
    """Where `scripts/fetch_media.py` puts downloads: `$VIDTWIN_MEDIA`, else `<cache>/media`."""
    return Path(os.environ["VIDTWIN_MEDIA"]) if os.environ.get("VIDTWIN_MEDIA") else default_cache_dir() / "media"
