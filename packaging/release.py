"""Turn a built bundle into release files: one archive per flavour, split so that no file is
over the hosts' 2 GiB limit, and a SHA-256 checksum file.

    python packaging/release.py --flavour cpu [--bundle dist/SegExplorer] [--out dist/release]
                                [--part-size 1900M]

Writes, for Linux (tar keeps the executable bits and the links)::

    dist/release/SegExplorer-0.1.0-linux-x86_64-cpu.tar.gz          (when it fits in one part)
    dist/release/SegExplorer-0.1.0-linux-x86_64-cuda.tar.gz.001 ... (when it does not)
    dist/release/SegExplorer-0.1.0-linux-x86_64-cuda.sha256         (the parts and the whole)

Windows gets a ``.zip`` of the folder; macOS a ``.zip`` of ``SegExplorer.app`` made by
``ditto`` (which keeps the app's links, signatures and attributes; Python's zipfile does not).
Joining parts is one line: ``cat NAME.tar.gz.001 NAME.tar.gz.002 > NAME.tar.gz`` (Linux, macOS) or
``copy /b NAME.zip.001+NAME.zip.002 NAME.zip`` (Windows ``cmd``); 7-Zip also opens ``.001``.
Then ``sha256sum -c --ignore-missing NAME.sha256`` checks the parts and the joined archive.
Uses only the standard library, so the same script runs on all three systems.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

APP_NAME = "SegExplorer"
GIB = 1024**3
DEFAULT_PART_SIZE = 1900 * 1024**2  # under 2 GiB with room to spare
CHUNK = 16 * 1024**2


def parse_size(text: str) -> int:
    """``1900M``, ``1.5G``, ``4096`` (bytes) -> bytes (binary units)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMG]?)i?B?\s*", text, re.IGNORECASE)
    if not match:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 1900M)")
    factor = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}[match.group(2).upper()]
    return int(float(match.group(1)) * factor)


def platform_tag(system: str | None = None, machine: str | None = None) -> str:
    """``linux-x86_64``, ``windows-x86_64``, ``macos-arm64``, ..."""
    system = (system or sys.platform).lower()
    machine = (machine or platform.machine()).lower()
    os_name = ("windows" if system.startswith("win") else "macos" if system == "darwin"
               else "linux" if system.startswith("linux") else system)
    arch = {"amd64": "x86_64", "x64": "x86_64", "aarch64": "arm64"}.get(machine, machine)
    if os_name == "linux" and arch == "arm64":
        arch = "aarch64"
    return f"{os_name}-{arch}"


def release_name(version: str, flavour: str, tag: str | None = None) -> str:
    return f"{APP_NAME}-{version}-{tag or platform_tag()}-{flavour}"


def project_version(root: Path) -> str:
    text = (root / "segexplorer" / "__init__.py").read_text(encoding="utf-8")
    match = re.search(r'__version__\s*=\s*"([^"]+)"', text)
    if not match:
        raise SystemExit("release.py: no __version__ in segexplorer/__init__.py")
    return match.group(1)


def make_tar_gz(folder: Path, archive: Path, compresslevel: int = 6) -> Path:
    """``folder`` as ``archive`` (a .tar.gz whose top folder is ``folder``'s name)."""
    with tarfile.open(archive, "w:gz", compresslevel=compresslevel) as tar:
        tar.add(folder, arcname=folder.name)  # links stay links, modes stay
    return archive


def make_zip(folder: Path, archive: Path) -> Path:
    """``folder`` as a deflated .zip (Windows: it has no links or modes to keep)."""
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_symlink():
                raise SystemExit(f"release.py: {path} is a link, which a .zip cannot keep: "
                                 "use a .tar.gz")
            zf.write(path, Path(folder.name) / path.relative_to(folder))
    return archive


def make_macos_zip(app: Path, archive: Path) -> Path:
    """``SegExplorer.app`` zipped with ditto, as Apple's notary service expects."""
    subprocess.run(["ditto", "-c", "-k", "--sequesterRsrc", "--keepParent", str(app),
                    str(archive)], check=True)
    return archive


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while block := stream.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def split_file(path: Path, part_size: int) -> list[Path]:
    """Cut ``path`` into ``path.001``, ``path.002``, ... of at most ``part_size`` bytes and
    remove it; a file that fits in one part is left as it is (returned alone)."""
    if part_size <= 0:
        raise ValueError("part_size must be positive")
    if path.stat().st_size <= part_size:
        return [path]
    parts: list[Path] = []
    with open(path, "rb") as source:
        while True:
            part = path.with_name(f"{path.name}.{len(parts) + 1:03d}")
            written = 0
            with open(part, "wb") as sink:
                while written < part_size:
                    block = source.read(min(CHUNK, part_size - written))
                    if not block:
                        break
                    sink.write(block)
                    written += len(block)
            if written == 0:
                part.unlink()
                break
            parts.append(part)
    path.unlink()
    return parts


def write_checksums(files: list[Path], checksum_file: Path,
                    extra: dict[str, str] | None = None) -> Path:
    """``sha256sum``'s format (``HEX  NAME``), names relative to the checksum file's folder;
    ``extra`` adds names that are not there (the joined archive)."""
    lines = [f"{sha256(f)}  {f.name}" for f in files]
    lines += [f"{digest}  {name}" for name, digest in (extra or {}).items()]
    checksum_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return checksum_file


def join_command(parts: list[Path], archive_name: str, windows: bool = False) -> str:
    """The one line that joins the parts again."""
    if windows:
        return f"copy /b {'+'.join(p.name for p in parts)} {archive_name}"
    return f"cat {' '.join(p.name for p in parts)} > {archive_name}"


def make_release(bundle: Path, out: Path, version: str, flavour: str,
                 part_size: int = DEFAULT_PART_SIZE, tag: str | None = None) -> dict:
    """Archive, split and checksum ``bundle``; return what was written."""
    tag = tag or platform_tag()
    name = release_name(version, flavour, tag)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob(f"{name}.*"):
        old.unlink()
    windows = tag.startswith("windows")
    if tag.startswith("macos") and bundle.with_suffix(".app").is_dir():
        archive = make_macos_zip(bundle.with_suffix(".app"), out / f"{name}.zip")
    elif windows:
        archive = make_zip(bundle, out / f"{name}.zip")
    else:
        archive = make_tar_gz(bundle, out / f"{name}.tar.gz")
    archive_size = archive.stat().st_size
    whole_digest = sha256(archive)
    parts = split_file(archive, part_size)
    checksums = out / f"{name}.sha256"
    split = parts != [archive]
    write_checksums(parts, checksums, {archive.name: whole_digest} if split else None)
    return {
        "archive": archive.name,
        "archive_bytes": archive_size,
        "sha256": whole_digest,
        "parts": [(p.name, p.stat().st_size) for p in parts],
        "checksums": checksums.name,
        "join": join_command(parts, archive.name, windows) if split else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--flavour", required=True, choices=("cpu", "cuda", "rocm"))
    parser.add_argument("--bundle", type=Path, default=Path("dist") / APP_NAME)
    parser.add_argument("--out", type=Path, default=Path("dist") / "release")
    parser.add_argument("--part-size", type=parse_size, default=DEFAULT_PART_SIZE,
                        help="largest release file (default 1900M; hosts allow 2 GiB)")
    args = parser.parse_args(argv)
    if not args.bundle.is_dir():
        print(f"release.py: {args.bundle} is not a built bundle: run packaging/build.sh",
              file=sys.stderr)
        return 1
    if args.part_size > 2 * GIB:
        print("release.py: --part-size over 2 GiB makes files the release hosts refuse",
              file=sys.stderr)
        return 2
    root = Path(__file__).resolve().parent.parent
    info = make_release(args.bundle, args.out, project_version(root), args.flavour,
                        args.part_size)
    print(f"release.py: {info['archive']}: {info['archive_bytes'] / 1024**2:,.0f} MiB, "
          f"sha256 {info['sha256']}")
    for part, size in info["parts"]:
        print(f"release.py:   {args.out / part}  {size / 1024**2:,.0f} MiB")
    print(f"release.py: checksums in {args.out / info['checksums']}")
    if info["join"]:
        print(f"release.py: join the parts with: {info['join']}")
    # the whole list on one line, for scripts and CI logs
    print("release.py: files " + " ".join(os.fspath(args.out / p) for p, _ in info["parts"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
