"""Opening images of any kind and preparing them exactly as the seed does.

``load_image`` returns an 8-bit RGB PIL image (EXIF orientation applied, alpha
composited over white, 16-bit and float data scaled) or raises :class:`UserError`
with one line. ``preprocess`` is the seed's ``Resize(size)``, ``ToTensor`` and
ImageNet ``Normalize``.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torchvision import transforms

from .catalog import DEFAULT_SIZE, IMAGENET_MEAN, IMAGENET_STD
from .errors import UserError, check_input_file, first_line

# Resize(size) scales the shorter side; this caps the longer one for extreme aspect
# ratios (a 100 x 20000 strip would otherwise become 640 x 128000).
MAX_ASPECT = 4
# Images beyond this many pixels are refused as possible decompression bombs (Pillow's own
# Image.MAX_IMAGE_PIXELS, about 89 Mpx, usually refuses them first).
MAX_PIXELS = 16384 * 16384
# ... and so are images with a side beyond this: a 1 x 80,000,000 PNG is under the pixel
# limit but takes seconds and gigabytes to decode (Pillow allocates per row).
MAX_SIDE = 65535


def load_image(source: str | Path | bytes) -> Image.Image:
    """Open ``source`` (a path or encoded bytes) as an 8-bit RGB image.

    Anything that goes wrong while decoding (the bytes are untrusted) becomes a
    one-line :class:`UserError` naming the file; nothing else escapes.
    """
    name = "<clipboard>" if isinstance(source, bytes) else str(source)
    if isinstance(source, bytes):
        if not source:
            raise UserError("The pasted or dropped image data is empty (0 bytes): copy it again.")
    else:
        path = Path(source).expanduser()
        check_input_file(path, noun="Image", what="an image", pick="an image file",
                         folder_hint="pick an image file",
                         empty_hint="pick another file or save it again", display=name)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            fp = io.BytesIO(source) if isinstance(source, bytes) else open(path, "rb")  # noqa: SIM115
            with fp, Image.open(fp) as img:
                if img.width * img.height > MAX_PIXELS or max(img.size) > MAX_SIDE:
                    raise UserError(
                        f"Image '{name}' is {img.width} x {img.height} pixels, too large to "
                        "open safely: downscale it first."
                    )
                img.seek(0)  # animated images: the first frame
                img.load()
                rgb = to_rgb(ImageOps.exif_transpose(img))
    except UserError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UserError(
            f"Image '{name}' declares an enormous size (a possible decompression bomb): "
            "refused; downscale it first if it is genuine."
        ) from None
    except UnidentifiedImageError:
        raise UserError(f"'{name}' is not an image SegExplorer can read: pick a PNG, JPEG, "
                        "TIFF, BMP, GIF or WebP file.") from None
    except PermissionError:
        raise UserError(f"Image '{name}' cannot be read (permission denied): check the "
                        "file's permissions.") from None
    except MemoryError:
        raise UserError(f"Image '{name}' is too large for the memory available: "
                        "downscale it first.") from None
    except Exception as exc:  # noqa: BLE001 - untrusted bytes: any decoder failure is the file's
        raise UserError(f"Image '{name}' is damaged or truncated ({first_line(exc, 120)}): "
                        "save it again or pick another file.") from None
    if rgb.width < 1 or rgb.height < 1:
        raise UserError(f"Image '{name}' has no pixels: pick another file.")
    return rgb


def to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode to 8-bit RGB: alpha over white, high bit depths scaled."""
    mode = img.mode
    if mode in ("I", "F") or mode.startswith("I;"):
        arr = np.asarray(img, dtype=np.float64)
        if mode.startswith("I;16"):
            arr = arr / 65535.0
        elif mode.startswith("I"):
            arr = arr / 65535.0 if arr.max(initial=0) > 255 else arr / 255.0
        else:  # float data: 0..1 as is, anything else stretched to its range
            finite = arr[np.isfinite(arr)]
            lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
            if (lo < 0.0 or hi > 1.0) and hi > lo:
                arr = (arr - lo) / (hi - lo)
            arr = np.nan_to_num(arr, nan=0.0, posinf=1.0, neginf=0.0)
        gray = np.clip(np.rint(arr * 255.0), 0, 255).astype(np.uint8)
        return Image.fromarray(gray, "L").convert("RGB")
    if mode in ("P", "L", "RGB") and "transparency" in img.info:
        img = img.convert("RGBA")  # palette or colour-key transparency (PNG tRNS)
    elif mode == "RGB":
        return img.copy()
    elif mode == "P":
        return img.convert("RGB")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV


@dataclass(frozen=True)
class Normalization:
    """The per-channel mean and std (in 0..1 units) a model's input is normalised with."""

    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def describe(self) -> str:
        def fmt(v: tuple[float, float, float]) -> str:
            return "(" + ", ".join(f"{x:g}" for x in v) + ")"

        return f"mean {fmt(self.mean)}, std {fmt(self.std)}"


IMAGENET = Normalization()  # the seed's Normalize


@dataclass(frozen=True)
class PreparedImage:
    """An image at the working resolution, as the model sees it and as people see it."""

    rgb: np.ndarray  # H x W x 3 uint8: the resized image (what the seed displays)
    tensor: torch.Tensor  # 1 x 3 x H x W float32, normalised, on the CPU
    original_size: tuple[int, int]  # (width, height) of the opened image
    size: int  # the Resize argument
    normalization: Normalization = IMAGENET

    def with_normalization(self, normalization: Normalization) -> PreparedImage:
        """The same working image normalised for another model (exactly as
        :func:`preprocess` would have: ToTensor of the resized pixels, then Normalize)."""
        if normalization == self.normalization:
            return self
        # a writable copy, as ToTensor takes (the working pixels are read-only)
        to_tensor = torch.from_numpy(np.array(self.rgb, copy=True)).permute(2, 0, 1).float().div(255)
        tensor = transforms.Normalize(mean=normalization.mean, std=normalization.std)(to_tensor)
        return PreparedImage(self.rgb, tensor.unsqueeze(0).contiguous(), self.original_size,
                             self.size, normalization)

    @property
    def shape(self) -> tuple[int, int]:
        return self.rgb.shape[0], self.rgb.shape[1]

    @property
    def scale(self) -> tuple[float, float]:
        """(sx, sy) mapping original-image pixel coordinates to working coordinates."""
        w, h = self.original_size
        return self.rgb.shape[1] / w, self.rgb.shape[0] / h


def working_transform(size: int) -> transforms.Resize:
    return transforms.Resize(size, max_size=size * MAX_ASPECT)


def working_shape(width: int, height: int, size: int) -> tuple[int, int]:
    """(H, W) that ``working_transform(size)`` gives a ``width`` x ``height`` image."""
    short, long = sorted((width, height))
    new_short, new_long = size, int(size * long / short)
    max_size = size * MAX_ASPECT
    if new_long > max_size:
        new_short, new_long = int(max_size * new_short / new_long), max_size
    return (new_long, new_short) if width <= height else (new_short, new_long)


def preprocess(image: Image.Image, size: int = DEFAULT_SIZE,
               normalization: Normalization = IMAGENET) -> PreparedImage:
    """The seed's preprocessing: Resize(size), ToTensor, Normalize (ImageNet's by default;
    a model card may give its own mean and std)."""
    if not isinstance(size, int) or isinstance(size, bool) or size < 16:
        raise UserError(f"Working size {size!r} is too small: use at least 16 (default 640).")
    if image.mode != "RGB":
        image = to_rgb(image)
    w, h = image.size
    if min(working_shape(w, h, size)) < 1:
        raise UserError(
            f"The image is {w} x {h} pixels, too thin to analyse at working size {size} "
            f"(sides more than {size * MAX_ASPECT}:1 apart): crop it to a less extreme shape."
        )
    resized = working_transform(size)(image)
    to_tensor = transforms.ToTensor()(resized)
    normalized = transforms.Normalize(mean=normalization.mean, std=normalization.std)(to_tensor)
    return PreparedImage(
        rgb=np.ascontiguousarray(np.asarray(resized, dtype=np.uint8)),
        tensor=normalized.unsqueeze(0).contiguous(),
        original_size=image.size,
        size=size,
        normalization=normalization,
    )


def normalize_colour(rgb01: torch.Tensor, normalization: Normalization = IMAGENET
                     ) -> torch.Tensor:
    """0..1 RGB (... x 3 x H x W or 3 values) to the model's normalised space."""
    mean = torch.tensor(normalization.mean, dtype=rgb01.dtype).view(3, 1, 1)
    std = torch.tensor(normalization.std, dtype=rgb01.dtype).view(3, 1, 1)
    return (rgb01 - mean.to(rgb01.device)) / std.to(rgb01.device)


def denormalize(tensor: torch.Tensor, normalization: Normalization = IMAGENET) -> np.ndarray:
    """A normalised 1 x 3 x H x W (or 3 x H x W) tensor back to H x W x 3 uint8 for display."""
    t = tensor.detach().float().cpu()
    if t.dim() == 4:
        t = t[0]
    mean = torch.tensor(normalization.mean).view(3, 1, 1)
    std = torch.tensor(normalization.std).view(3, 1, 1)
    rgb = (t * std + mean).clamp(0, 1)
    return np.ascontiguousarray((rgb.permute(1, 2, 0).numpy() * 255.0 + 0.5).astype(np.uint8))
