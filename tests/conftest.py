"""Shared fixtures: real photos shipped inside installed packages, small models."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("MPLBACKEND", "Agg")


def _skimage_file(name: str) -> Path:
    import skimage

    path = Path(skimage.__file__).parent / "data" / name
    if not path.is_file():  # pragma: no cover - skimage is a test dependency
        raise FileNotFoundError(path)
    return path


@pytest.fixture(scope="session")
def motorcycle_path() -> Path:
    """A real photo (scikit-image's motorcycle, 740 x 500)."""
    return _skimage_file("motorcycle_left.png")


@pytest.fixture(scope="session")
def astronaut_path() -> Path:
    return _skimage_file("astronaut.png")


@pytest.fixture(scope="session")
def coffee_path() -> Path:
    return _skimage_file("coffee.png")


@pytest.fixture(scope="session", autouse=True)
def tiny_models():
    """'tiny', 'tiny_slow' and 'colour' architectures (see tests/tiny_models.py)."""
    from tiny_models import register_tiny_models

    register_tiny_models()
