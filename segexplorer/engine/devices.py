"""Device names as users type them: auto, cpu, cuda, cuda:N, mps."""

from __future__ import annotations

import re

import torch

from .errors import UserError

_CUDA = re.compile(r"^cuda(?::(\d+))?$")


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def available_devices() -> list[str]:
    """Devices present on this machine, best first ('cpu' is always last)."""
    found: list[str] = []
    if torch.cuda.is_available():
        count = torch.cuda.device_count()
        found.append("cuda")
        found.extend(f"cuda:{i}" for i in range(count) if count > 1)
    if _mps_available():
        found.append("mps")
    found.append("cpu")
    return found


def resolve_device(name: str | None) -> torch.device:
    """Turn a user's device name into a ``torch.device``, or explain why not."""
    text = (name or "auto").strip().lower()
    if text == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if text == "cpu":
        return torch.device("cpu")
    match = _CUDA.match(text)
    if match:
        if not torch.cuda.is_available():
            raise UserError(
                f"Device '{name}' was asked for, but no CUDA GPU is available here: "
                "use --device cpu (or auto)."
            )
        index = int(match.group(1) or 0)
        if index >= torch.cuda.device_count():
            raise UserError(
                f"Device '{name}' does not exist: this machine has "
                f"{torch.cuda.device_count()} CUDA device(s) (cuda:0 .. "
                f"cuda:{torch.cuda.device_count() - 1})."
            )
        return torch.device("cuda", index)
    if text == "mps":
        if not _mps_available():
            raise UserError(
                "Device 'mps' was asked for, but Apple's MPS backend is not available here: "
                "use --device cpu (or auto)."
            )
        return torch.device("mps")
    raise UserError(f"Unknown device '{name}': use auto, cpu, cuda, cuda:N or mps.")


def describe_device(device: torch.device) -> str:
    """A short human description, e.g. 'cuda:0 (NVIDIA H100)' or 'cpu (2 threads)'."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    return str(device)
