"""Shared fixtures: real photos shipped inside installed packages, small models."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("MPLBACKEND", "Agg")


def pytest_addoption(parser):
    parser.addoption(
        "--device", default="cpu",
        help="device for the parity tests and tests/gpu (default cpu; e.g. cuda on a GPU "
             "machine: benchmarks/gpu_session.sh runs them so)")


def pytest_configure(config):
    device = config.getoption("--device")
    if device.startswith("cuda"):
        import torch

        # Captum's reference calls run in the same strict fp32 as the engine's fp32 mode
        # (the engine switches TF32 off around its own calls: Session.numerics)
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False


def pytest_ignore_collect(collection_path, config):
    """tests/gpu needs a CUDA device: collected only with --device cuda[:N]."""
    if collection_path.name == "gpu" and collection_path.parent == Path(__file__).parent:
        return not config.getoption("--device").startswith("cuda")
    return None


@pytest.fixture(scope="session")
def device(request):
    """The torch device named by --device (checked: a clear error if absent)."""
    from segexplorer.engine.devices import resolve_device

    return resolve_device(request.config.getoption("--device"))


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


@pytest.fixture(scope="session")
def blocks_image(tmp_path_factory) -> Path:
    """Coloured blocks on grey, 96 x 128: the tiny model predicts several classes."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    img = np.full((96, 128, 3), 128, np.uint8)
    img[8:44, 8:56] = (220, 30, 30)
    img[8:44, 70:120] = (30, 200, 40)
    img[54:90, 8:56] = (30, 40, 220)
    img[54:90, 70:120] = (240, 230, 40)
    img = np.clip(img.astype(int) + rng.integers(-12, 12, img.shape), 0, 255).astype(np.uint8)
    path = tmp_path_factory.mktemp("images") / "blocks.png"
    Image.fromarray(img).save(path)
    return path


@pytest.fixture(scope="session", autouse=True)
def tiny_models():
    """'tiny', 'tiny_slow' and 'colour' architectures (see tests/tiny_models.py)."""
    from tiny_models import register_tiny_models

    register_tiny_models()


@pytest.fixture(scope="session")
def card_models(tmp_path_factory):
    """Users' own models on disk with a model card each (see tests/card_models.py)."""
    from card_models import build_card_models

    return build_card_models(tmp_path_factory.mktemp("cards"))


@pytest.fixture(scope="session")
def multilabel_cards(tmp_path_factory):
    """The known-answer multi-label models and their scene (see tests/multilabel_models.py)."""
    from multilabel_models import build_multilabel_cards

    return build_multilabel_cards(tmp_path_factory.mktemp("multilabel"))


@pytest.fixture(scope="session")
def ray_local():
    """A local Ray with 2 CPUs, started once per test session (Ray tests are marked
    ``ray``; without Ray installed they are skipped, with the reason)."""
    import logging

    ray = pytest.importorskip("ray", reason="Ray is not installed: pip install "
                                            "'segexplorer[ray]' to run the Ray tests")
    pytest.importorskip("ray.data", reason="Ray Data is not installed: pip install "
                                           "'segexplorer[ray]'")
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING,
             log_to_driver=False)
    yield ray
    ray.shutdown()
