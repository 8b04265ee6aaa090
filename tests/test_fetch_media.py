"""scripts/fetch_media.py --list: every file's package and role, and no recipe trains on a held-out clip."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "fetch_media.py"


@pytest.fixture(scope="module")
def listing(tmp_path_factory) -> list[tuple[str, str, str, str]]:
    """(name, package, role, state) per file, listed against an empty media directory (no network)."""
    dest = tmp_path_factory.mktemp("media")
    done = subprocess.run([sys.executable, str(SCRIPT), "--list", "--dest", str(dest)],
                          capture_output=True, text=True, check=True, timeout=60)
    rows = [line.split("\t") for line in done.stdout.splitlines()]
    assert rows and all(len(row) == 4 for row in rows), done.stdout
    return [(str(Path(path).relative_to(dest)), package, role, state) for path, package, role, state in rows]


def held_out(listing) -> set[str]:
    return {name for name, _, role, _ in listing if role == "held-out"}


def test_every_file_has_a_known_role_and_nothing_is_fetched(listing):
    assert {role for _, _, role, _ in listing} == {"train", "held-out", "weights"}
    assert {state for *_, state in listing} == {"missing"}
    assert len({name for name, *_ in listing}) == len(listing)


def test_the_evaluation_clips_are_held_out(listing):
    assert {"bikes.mp4", "Megamind.avi", "box.mp4"} <= held_out(listing)
    assert {"carphone_pristine.mp4", "cityCC0.mpg", "dancer.avi"} <= {n for n, _, r, _ in listing if r == "train"}


def test_the_default_set_ci_fetches_is_unchanged(listing):
    default = {name for name, package, _, _ in listing if not package.endswith("(--all)")}
    assert default == {"bikes.mp4", "carphone_pristine.mp4", "bigbuckbunny.mp4", "cityCC0.mpg",
                       "lpips/alexnet.ckpt", "lpips/vgg16.ckpt"}


def test_no_documented_recipe_trains_on_a_held_out_clip(listing):
    recipes = [*REPO.glob("docs/*.md"), *REPO.glob("scripts/*.sh"), REPO / "README.md"]
    trained = {Path(arg).name: path.name for path in recipes
               for arg in re.findall(r"--data[ =](\S+)", path.read_text())}
    assert trained, "no --data argument found in the docs: the pattern no longer matches them"
    leaked = {clip: doc for clip, doc in trained.items() if clip in held_out(listing)}
    assert not leaked, f"held-out clips passed to --data: {leaked}"
