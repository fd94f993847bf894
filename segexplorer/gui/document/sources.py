"""Where an image comes from: a file, encoded bytes (the clipboard), the bundled sample."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL.Image import Image

SAMPLE_IMAGE = "sample_astronaut.jpg"
_source_ids = itertools.count(1)


@dataclass(frozen=True)
class ImageSource:
    """An opened image's origin; ``key`` is new for every opening."""

    key: int
    label: str
    path: str | None = None
    data: bytes | None = None

    def load(self) -> Image:
        from ...engine.image import load_image

        source = self.data if self.data is not None else self.path
        assert source is not None
        return load_image(source)

    @property
    def display_path(self) -> str:
        """The path for reports and titles (or the label of pasted data)."""
        return self.path or self.label


def file_source(path: str | Path) -> ImageSource:
    full = str(Path(path).expanduser())
    return ImageSource(next(_source_ids), Path(full).name, path=full)


def bytes_source(data: bytes, label: str = "<clipboard>") -> ImageSource:
    return ImageSource(next(_source_ids), label, data=bytes(data))


def sample_image_path() -> Path:
    """The bundled sample photo, found through importlib.resources (works when frozen)."""
    ref = resources.files("segexplorer") / "resources" / SAMPLE_IMAGE
    return Path(str(ref))


def sample_source() -> ImageSource:
    path = sample_image_path()
    if path.is_file():
        return file_source(path)
    # inside a zip or frozen archive: read the bytes instead
    data = (resources.files("segexplorer") / "resources" / SAMPLE_IMAGE).read_bytes()
    return bytes_source(data, SAMPLE_IMAGE)
