"""The defaults and choices that `--help` shows, kept apart from the modules that use them.

Building the command line reads these for every option's default and help text; the modules that
own the work (codec/runtime.py, vtw/entropy.py, ...) import torch, av and numpy, which take seconds.
Each value lives here once and its owner imports it from here, so `vidtwin --help` loads none of them.
"""

from __future__ import annotations

AUTO = "auto"  # the default device and precision: what the machine at hand runs best
ENTROPY = "entropy"  # quantised, temporally predicted, range-coded symbols: a 2.0 file (vtw/entropy.py)
DEFAULT_QUALITY = 9  # measured: the coarsest level within 0.3 dB of unquantised (docs/vtw-format.md §18)
DEFAULT_KEYINT = 8  # a key clip every 8 clips
DEFAULT_MAX_SIDE = 8192  # decoded frames beyond this many pixels a side need --max-side (docs/cli.md)
OUTPUT_FORMATS = ("mp4", "vtw")  # what a `generate` folder output holds
WEIGHT_DTYPES = ("fp32", "fp16", "bf16")  # what model files may store their weights as
