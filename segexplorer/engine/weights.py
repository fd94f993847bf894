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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .architecture import Architecture
from .errors import Cancelled, UserError, check_input_file, first_line
from .jobs import JobState, check_cancelled, report

_HASH = re.compile(r"-([a-f0-9]{6,})\.")  # torchvision file names carry a sha256 prefix


def cache_dir() -> Path:
    """torchvision's usual weights cache (respects TORCH_HOME)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def cached_weights_path(arch: Architecture) -> Path | None:
    name = arch.weights_filename
    return cache_dir() / name if name else None


AUX_PREFIXES = ("aux_classifier.",)  # torchvision's auxiliary head: trained, never used


def drop_aux_keys(state_dict: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in state_dict.items() if not k.startswith(AUX_PREFIXES)}


def infer_num_classes(expected: dict[str, torch.Tensor], state_dict: dict[str, Any],
                      default: int) -> int | None:
    """The class count a state dict was trained for, from the layers whose first
    dimension is the class count in a model built for ``default`` classes.

    None when every shape already fits (or nothing tells): then the count is ``default``.
    """
    counts = set()
    for key, tensor in expected.items():
        got = state_dict.get(key)
        if (not isinstance(got, torch.Tensor) or tensor.dim() == 0 or got.dim() != tensor.dim()
                or int(tensor.shape[0]) != default):
            continue
        if tuple(got.shape[1:]) == tuple(tensor.shape[1:]) and got.shape[0] != tensor.shape[0]:
            counts.add(int(got.shape[0]))
    return counts.pop() if len(counts) == 1 else None


def load_into(module: torch.nn.Module, state_dict: dict[str, Any], model_name: str, source: str,
              categories: tuple[str, ...] | None = None, *, hint: str = "--model") -> None:
    """Load ``state_dict`` into ``module`` strictly, with one clear line for every mismatch
    (missing or unknown keys, wrong shapes, non-tensors, NaN weights)."""
    expected = module.state_dict()
    state_dict = drop_aux_keys(state_dict)
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} expected key(s) missing (e.g. '{missing[0]}')")
        if unexpected:
            parts.append(f"{len(unexpected)} unknown key(s) (e.g. '{unexpected[0]}')")
        raise UserError(
            f"Weights file '{source}' is not a {model_name} state dict: "
            + "; ".join(parts)
            + f". Pick the matching {hint} or a file saved from this architecture."
        )
    for key, tensor in expected.items():
        got = state_dict[key]
        if not isinstance(got, torch.Tensor):
            raise UserError(f"Weights file '{source}' holds a non-tensor under '{key}'.")
        if tuple(got.shape) != tuple(tensor.shape):
            hint_text = ""
            if (categories is not None and got.dim() >= 1 and tensor.dim() >= 1
                    and got.shape[0] != tensor.shape[0] and tensor.shape[0] == len(categories)
                    and tuple(got.shape[1:]) == tuple(tensor.shape[1:])):
                hint_text = (f" The file predicts {got.shape[0]} classes; {model_name} here "
                             f"expects {tensor.shape[0]} ({len(categories)} classes: "
                             f"{', '.join(categories[:3])}, ...).")
            raise UserError(
                f"Weights file '{source}' does not fit {model_name}: '{key}' has shape "
                f"{tuple(got.shape)}, expected {tuple(tensor.shape)}.{hint_text}"
            )
        if got.is_floating_point() and not bool(torch.isfinite(got).all()):
            raise UserError(
                f"Weights file '{source}' is damaged: '{key}' contains NaN or infinite "
                "values (a diverged training run?). Use a checkpoint from before it diverged."
            )
    module.load_state_dict(state_dict, strict=True)


def load_state_dict_for(
    arch: Architecture,
    weights: str,
    *,
    allow_download: bool = True,
    state: JobState | None = None,
) -> dict[str, Any]:
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


@dataclass(frozen=True)
class WeightsInfo:
    model: str
    description: str
    filename: str | None
    url: str | None
    path: str | None
    cached: bool
    size_bytes: int | None


def expected_size(arch: Architecture) -> int | None:
    """The size in bytes torchvision's metadata gives for ``arch``'s default weights."""
    meta = getattr(arch.weights_enum, "meta", {}) or {}
    mb = meta.get("_file_size")
    return int(mb * 1024 * 1024) if mb else None


SAFETENSORS_SUFFIX = ".safetensors"


def read_state_dict(path: str | Path) -> dict[str, Any]:
    """Load a state dict from ``path`` safely, with clear errors.

    ``.safetensors`` files are read with safetensors (tensors only, by design); every
    other file with ``torch.load(..., weights_only=True)``.
    """
    path = Path(path).expanduser()
    check_input_file(path, noun="Weights file", what="a weights file", pick="a weights file",
                     folder_hint="pick the .pth file inside",
                     empty_hint="download or save it again")
    if path.suffix.lower() == SAFETENSORS_SUFFIX:
        return _read_safetensors(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise UserError(_unpickling_message(path, str(exc))) from None
    except PermissionError:
        raise UserError(f"Weights file '{path}' cannot be read (permission denied): check the "
                        "file's permissions.") from None
    except MemoryError:
        raise UserError(f"Weights file '{path}' is too large for the memory available: "
                        "close other programs or use a smaller model.") from None
    except Exception as exc:  # noqa: BLE001 - weights_only ran nothing: any failure is the file's
        raise UserError(
            f"Weights file '{path}' could not be read ({_read_detail(exc)}): it is truncated or "
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
            f"Weights file '{path}' holds a {type(obj).__name__}"
            f"{' (empty)' if isinstance(obj, dict) else ''}, not a state dict: "
            "save one with torch.save(model.state_dict(), path)."
        )
    if not all(isinstance(k, str) for k in obj):
        bad = next(k for k in obj if not isinstance(k, str))
        raise UserError(
            f"Weights file '{path}' is not a state dict (it has the key {bad!r}, not a "
            "parameter name): save one with torch.save(model.state_dict(), path)."
        )
    if any(k.startswith("module.") for k in obj):  # saved from DataParallel
        obj = {k.removeprefix("module."): v for k, v in obj.items()}
    return obj


def _read_safetensors(path: Path) -> dict[str, Any]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        obj = load_file(str(path), device="cpu")
    except PermissionError:
        raise UserError(f"Weights file '{path}' cannot be read (permission denied): check the "
                        "file's permissions.") from None
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise UserError(f"Weights file '{path}' is not a valid safetensors file "
                        f"({first_line(exc, 100)}): save it again with "
                        "safetensors.torch.save_file(model.state_dict(), path).") from None
    if not obj:
        raise UserError(f"Weights file '{path}' holds no tensors: save the model's state dict.")
    if any(k.startswith("module.") for k in obj):
        obj = {k.removeprefix("module."): v for k, v in obj.items()}
    return obj


def _read_detail(exc: BaseException) -> str:
    """What torch.load said, short: its first sentence, or what kind of failure it was."""
    if isinstance(exc, EOFError):
        return "the data ends too early"
    if not isinstance(exc, (RuntimeError, OSError, ValueError)):  # KeyError: 101 and the like
        return f"unexpected content, {type(exc).__name__}"
    return first_line(exc).split(". ")[0]


_GLOBAL = re.compile(r"GLOBAL ([A-Za-z_][\w.]*)")
# Modules whose functions a malicious pickle calls to run code when it is loaded.
_CODE_RUNNERS = {"os", "posix", "nt", "subprocess", "builtins", "__builtin__", "sys",
                 "shutil", "socket", "importlib", "runpy", "pty", "code", "codeop",
                 "webbrowser", "operator", "functools", "pickle", "_pickle", "marshal",
                 "types", "ctypes", "platform", "commands", "popen2", "pdb", "timeit"}


# Libraries whose pickled objects turn up in honest checkpoints (numpy scalars in the
# metadata, torch.nn modules in a whole-model pickle): refused, but not called malicious.
_DATA_LIBS = {"numpy", "torch", "torchvision", "collections", "copyreg", "_codecs",
              "pathlib", "argparse", "typing", "enum", "datetime", "decimal", "fractions"}


def _unpickling_message(path: Path, detail: str) -> str:
    match = _GLOBAL.search(detail)
    name = match.group(1).rstrip(".") if match else ""
    root, last = name.split(".")[0], name.rsplit(".", 1)[-1]
    if name and (root in _CODE_RUNNERS or (root not in _DATA_LIBS and not last[:1].isupper())):
        return (
            f"Weights file '{path}' would run code when loaded ({name}): it was refused "
            "unread. Do not trust this file; use a state dict saved with "
            "torch.save(model.state_dict(), path)."
        )
    if name and last[:1].isupper() and root != "numpy":
        return (
            f"Weights file '{path}' holds a pickled Python object ({name}), most likely a "
            "whole model saved with torch.save(model), which SegExplorer does not unpickle "
            "(it could run code): load it where it was made and save "
            "torch.save(model.state_dict(), path) instead."
        )
    if name:
        return (
            f"Weights file '{path}' holds Python objects besides tensors ({name}), which "
            "SegExplorer does not unpickle (they could run code): load it where it was made "
            "and save only the weights with torch.save(model.state_dict(), path)."
        )
    return (
        f"Weights file '{path}' is not a plain PyTorch state dict (it holds data that "
        "weights-only loading refuses, or it is damaged): it was not unpickled; use a state "
        "dict saved with torch.save(model.state_dict(), path)."
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
    match = _HASH.search(path.name)
    digest = hashlib.sha256()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=path.name + ".", suffix=".part",
                                        dir=path.parent)
    except OSError as exc:
        raise UserError(
            f"Cannot write {path.name} to the weights cache {path.parent} "
            f"({first_line(exc)}): set TORCH_HOME to a writable folder, or pass "
            "--weights PATH to a local file."
        ) from None
    complete = False
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
        if total and done != total:
            raise UserError(_offline_message(
                arch, path, f"the download stopped after {done} of {total} bytes"))
        if match and not digest.hexdigest().startswith(match.group(1)):
            raise UserError(
                f"The download of {path.name} is corrupt (hash mismatch): try again later, "
                f"or copy the file from {url} to {path} yourself."
            )
        os.replace(tmp_name, path)
        complete = True
    except (UserError, Cancelled):
        raise
    except Exception as exc:  # noqa: BLE001 - a broken connection, a full disk, a bad reply ...
        raise UserError(_offline_message(arch, path, first_line(exc))) from None
    finally:
        if not complete:  # never leave a partial file behind, whatever stopped us
            Path(tmp_name).unlink(missing_ok=True)
    return path
