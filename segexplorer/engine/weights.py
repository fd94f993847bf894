"""Where weights come from: torchvision's cache (downloaded once), a local file, or none.

Files are only ever read with ``torch.load(..., weights_only=True)``: a file that would
run code when unpickled is refused, never executed.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import re
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import Cancelled, UserError
from .jobs import JobState, check_cancelled, report
from .models import ARCHITECTURES, Architecture

_HASH = re.compile(r"-([a-f0-9]{6,})\.")  # torchvision file names carry a sha256 prefix


def cache_dir() -> Path:
    """torchvision's usual weights cache (respects TORCH_HOME)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def cached_weights_path(arch: Architecture) -> Path | None:
    name = arch.weights_filename
    return cache_dir() / name if name else None


@dataclass(frozen=True)
class WeightsInfo:
    model: str
    description: str
    filename: str | None
    url: str | None
    path: str | None
    cached: bool
    size_bytes: int | None


def weights_table() -> list[WeightsInfo]:
    """Each architecture, its weights file, whether it is cached, its size."""
    rows = []
    for arch in ARCHITECTURES.values():
        path = cached_weights_path(arch)
        cached = bool(path and path.is_file())
        size = path.stat().st_size if cached and path else _expected_size(arch)
        rows.append(WeightsInfo(arch.name, arch.description, arch.weights_filename,
                                arch.weights_url, str(path) if path else None, cached, size))
    return rows


def _expected_size(arch: Architecture) -> int | None:
    meta = getattr(arch.weights_enum, "meta", {}) or {}
    mb = meta.get("_file_size")
    return int(mb * 1024 * 1024) if mb else None


def load_state_dict_for(
    arch: Architecture,
    weights: str,
    *,
    allow_download: bool = True,
    state: JobState | None = None,
) -> dict:
    """The state dict named by ``weights``: 'default' (cache or download) or a file path."""
    if weights == "default":
        path = cached_weights_path(arch)
        if path is None:
            raise UserError(f"{arch.name} has no default weights: pass a weights file.")
        if not path.is_file():
            if not allow_download:
                raise UserError(_offline_message(arch, path, "downloads are switched off"))
            download_weights(arch, state=state)
        return read_state_dict(path)
    return read_state_dict(Path(weights).expanduser())


def _offline_message(arch: Architecture, path: Path, why: str) -> str:
    return (
        f"The {arch.name} weights are not cached and could not be downloaded ({why}): "
        f"copy {arch.weights_filename} from {arch.weights_url} to {path}, "
        "or pass --weights PATH to a local file (or --weights untrained for a demo)."
    )


def read_state_dict(path: Path) -> dict:
    """Load a state dict from ``path`` safely (``weights_only=True``), with clear errors."""
    if not path.exists():
        raise UserError(f"Weights file '{path}' does not exist: check the path.")
    if path.is_dir():
        raise UserError(f"'{path}' is a folder, not a weights file: pick the .pth file inside.")
    if path.stat().st_size == 0:
        raise UserError(f"Weights file '{path}' is empty (0 bytes): download or save it again.")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise UserError(_unpickling_message(path, str(exc))) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(
            f"Weights file '{path}' could not be read ({first[:160]}): it is truncated or "
            "not a PyTorch file; download or save it again."
        ) from None
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            inner = obj.get(key)
            if isinstance(inner, dict) and inner and all(isinstance(k, str) for k in inner):
                obj = inner
                break
    if not isinstance(obj, dict) or not obj:
        raise UserError(
            f"Weights file '{path}' holds a {type(obj).__name__}, not a state dict: "
            "save one with torch.save(model.state_dict(), path)."
        )
    if any(k.startswith("module.") for k in obj):  # saved from DataParallel
        obj = {k.removeprefix("module."): v for k, v in obj.items()}
    return obj


def _unpickling_message(path: Path, detail: str) -> str:
    if re.search(r"torch\.nn|torchvision\.models|segmentation\.\w+\.\w+", detail):
        return (
            f"Weights file '{path}' holds a whole pickled model, which SegExplorer does not "
            "unpickle (it could run code): load it where it was made and save "
            "torch.save(model.state_dict(), path) instead."
        )
    return (
        f"Weights file '{path}' contains Python objects that are not plain tensors; "
        "it was refused unread (loading it could run code). Use a state dict saved "
        "with torch.save(model.state_dict(), path)."
    )


def download_weights(arch: Architecture, *, state: JobState | None = None,
                     timeout: float = 30.0) -> Path:
    """Download ``arch``'s default weights into the cache, with progress and hash check.

    Written to a temporary file beside the target and renamed only once complete and
    verified, so an interrupted download never leaves a partial weights file.
    """
    url, path = arch.weights_url, cached_weights_path(arch)
    if not url or path is None:
        raise UserError(f"{arch.name} has no downloadable weights.")
    path.parent.mkdir(parents=True, exist_ok=True)
    match = _HASH.search(path.name)
    digest = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(prefix=path.name + ".", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                response = urllib.request.urlopen(url, timeout=timeout)  # noqa: S310
            except (urllib.error.URLError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                raise UserError(_offline_message(arch, path, f"no connection: {reason}")) \
                    from None
            with response:
                total = int(response.headers.get("Content-Length") or 0)
                done = 0
                while True:
                    check_cancelled(state)
                    chunk = response.read(1 << 20)
                    if not chunk:
                        break
                    out.write(chunk)
                    digest.update(chunk)
                    done += len(chunk)
                    report(state, done, total, f"Downloading {path.name}")
        if match and not digest.hexdigest().startswith(match.group(1)):
            raise UserError(
                f"The download of {path.name} is corrupt (hash mismatch): try again later."
            )
        os.replace(tmp_name, path)
    except (UserError, Cancelled):
        Path(tmp_name).unlink(missing_ok=True)
        raise
    except OSError as exc:
        Path(tmp_name).unlink(missing_ok=True)
        raise UserError(_offline_message(arch, path, str(exc))) from None
    return path
