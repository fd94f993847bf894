"""Bad and unusual images never crash, hang or allocate blindly.

Every input either opens as an 8-bit RGB image of positive size or raises
:class:`UserError` with one line that names the file and says what to do. Fixtures are
made in ``tmp_path``; the real photos are the files shipped inside ``skimage.data``.
"""

from __future__ import annotations

import io
import os
import resource
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from torchvision import transforms

from segexplorer.engine.errors import UserError
from segexplorer.engine.image import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    MAX_ASPECT,
    PreparedImage,
    load_image,
    preprocess,
)

SKDATA = Path(skimage.data.__file__).parent
ASTRONAUT = SKDATA / "astronaut.png"  # 512 x 512 RGB photo
ROCKET = SKDATA / "rocket.jpg"  # 427 x 640 RGB JPEG photo


# --------------------------------------------------------------------------- helpers


def user_error(source, name: str | None = None) -> str:
    """load_image(source) must raise a one-line UserError naming the file; returns it."""
    with pytest.raises(UserError) as info:
        load_image(source)
    msg = str(info.value)
    assert "\n" not in msg and "\r" not in msg, msg
    assert msg.strip() == msg and msg, msg
    if name is None and not isinstance(source, bytes):
        name = Path(source).name
    if name:
        assert name in msg, msg
    return msg


def encode(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def pixels(img: Image.Image) -> np.ndarray:
    assert img.mode == "RGB"
    return np.asarray(img).astype(int)


def png_declaring(width: int, height: int) -> bytes:
    """A tiny valid PNG whose IHDR is patched to claim ``width`` x ``height`` (CRC fixed)."""
    data = bytearray(encode(Image.new("RGB", (4, 4), (10, 20, 30)), "PNG"))
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    return bytes(data)


@pytest.fixture(scope="module")
def astronaut() -> Image.Image:
    with Image.open(ASTRONAUT) as img:
        return img.convert("RGB")


# --------------------------------------------------------------------------- the real photos


def test_real_png_and_jpeg_open_as_rgb(astronaut):
    img = load_image(ASTRONAUT)
    assert img.mode == "RGB" and img.size == (512, 512)
    assert np.array_equal(np.asarray(img), np.asarray(astronaut))
    jpg = load_image(str(ROCKET))
    assert jpg.mode == "RGB" and jpg.size == (640, 427)


def test_bytes_input(astronaut):
    img = load_image(ASTRONAUT.read_bytes())
    assert np.array_equal(np.asarray(img), np.asarray(astronaut))
    msg = user_error(b"definitely not an image", name=None)
    assert "image" in msg.lower()


# --------------------------------------------------------------------------- broken files


def test_zero_byte_file(tmp_path):
    msg = user_error(write(tmp_path / "empty.png", b""))
    assert "empty" in msg


def test_zero_bytes_in_memory():
    user_error(b"")


@pytest.mark.parametrize("source", [ASTRONAUT, ROCKET], ids=["png", "jpeg"])
def test_truncated_file(tmp_path, source):
    data = source.read_bytes()
    path = write(tmp_path / f"half{source.suffix}", data[: len(data) // 2])
    msg = user_error(path)
    assert "truncated" in msg or "damaged" in msg
    user_error(data[: len(data) // 2])  # the same bytes in memory


def test_text_file_named_png(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("this is not a picture\nsecond line\n", encoding="utf-8")
    msg = user_error(path)
    assert "PNG" in msg  # says which formats would work


def test_directory(tmp_path):
    folder = tmp_path / "album.png"
    folder.mkdir()
    msg = user_error(folder)
    assert "folder" in msg


def test_missing_file(tmp_path):
    msg = user_error(tmp_path / "nowhere" / "ghost.jpg")
    assert "does not exist" in msg


@pytest.mark.parametrize("kind", ["fifo", "device", "long-name", "dangling-link", "through-file"])
def test_odd_paths_do_not_hang(tmp_path, kind):
    if kind == "fifo":
        path = tmp_path / "pipe.png"
        os.mkfifo(path)  # opening it for reading would block forever
    elif kind == "device":
        path = Path("/dev/zero")  # reading it would never end
        if not path.exists():
            pytest.skip("no /dev/zero here")
    elif kind == "long-name":
        path = tmp_path / ("x" * 300 + ".png")
    elif kind == "dangling-link":
        path = tmp_path / "link.png"
        path.symlink_to(tmp_path / "gone.png")
    else:
        (tmp_path / "file.png").write_bytes(b"x")
        path = tmp_path / "file.png" / "inner.png"
    start = time.perf_counter()
    user_error(path, name=path.name[:50])
    assert time.perf_counter() - start < 2.0


def test_path_with_spaces_and_non_ascii(tmp_path, astronaut):
    folder = tmp_path / "café ñ 写真"
    folder.mkdir()
    path = folder / "photo 1.png"
    astronaut.resize((32, 32)).save(path)
    for source in (path, str(path)):
        img = load_image(source)
        assert img.mode == "RGB" and img.size == (32, 32)
    bad = write(folder / "broken ñ.png", b"\x89PNG\r\n\x1a\n garbage")
    msg = user_error(bad)
    assert "café ñ 写真" in msg


# --------------------------------------------------------------------------- decompression bombs


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


@pytest.mark.parametrize("width,height", [(100_000, 100_000), (10_000, 10_000), (2**31 - 1, 1),
                                          (1, 80_000_000), (80_000_000, 1)])
def test_decompression_bomb_refused_fast(tmp_path, width, height):
    path = write(tmp_path / "bomb.png", png_declaring(width, height))
    before = _peak_rss_mib()
    start = time.perf_counter()
    msg = user_error(path)
    assert time.perf_counter() - start < 2.0
    assert _peak_rss_mib() - before < 200  # nothing near width x height was allocated
    assert "downscale" in msg


def test_long_thin_image_opens_but_is_too_thin_to_analyse():
    img = load_image(encode(Image.new("RGB", (1, 65535), (9, 9, 9)), "PNG"))
    assert img.size == (1, 65535)
    with pytest.raises(UserError, match="too thin"):
        preprocess(img, 640)


def test_bomb_refused_even_when_pillow_limit_is_off(tmp_path, monkeypatch):
    # Another library may switch Pillow's own guard off; ours still holds.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    path = write(tmp_path / "bomb.png", png_declaring(100_000, 100_000))
    start = time.perf_counter()
    user_error(path)
    assert time.perf_counter() - start < 2.0


# --------------------------------------------------------------------------- high bit depths


def test_16bit_grayscale_png_and_tiff(tmp_path):
    values = np.array([[65535, 32768, 0], [257, 65280, 1000]], dtype=np.uint16)
    expected = np.array([[255, 128, 0], [1, 254, 4]])
    for fmt, ext in (("PNG", "png"), ("TIFF", "tif")):
        path = tmp_path / f"gray16.{ext}"
        Image.fromarray(values).save(path, fmt)
        with Image.open(path) as raw:
            assert raw.mode.startswith("I")  # really 16-bit on disk
        out = pixels(load_image(path))
        assert out.shape == (2, 3, 3)
        for c in range(3):
            assert np.array_equal(out[..., c], expected), (fmt, out[..., c])


def test_16bit_tiff_from_tifffile(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    values = np.array([[65535, 32768], [0, 13107]], dtype=np.uint16)
    path = tmp_path / "tf16.tif"
    tifffile.imwrite(path, values)
    out = pixels(load_image(path))
    assert np.array_equal(out[..., 0], [[255, 128], [0, 51]])


def test_float32_tiff_in_unit_range(tmp_path):
    values = np.array([[0.0, 0.5, 1.0], [0.25, 0.75, 0.1]], dtype=np.float32)
    path = tmp_path / "float.tif"
    Image.fromarray(values).save(path)
    out = pixels(load_image(path))
    assert np.array_equal(out[..., 1], np.rint(values * 255))
    assert np.array_equal(out[..., 0], out[..., 2])


def test_float32_tiff_beyond_range_is_stretched(tmp_path):
    values = np.array([[-1.0, 0.5, 3.0], [np.nan, 1.0, np.inf]], dtype=np.float32)
    path = tmp_path / "float wide.tif"
    Image.fromarray(values).save(path)
    out = pixels(load_image(path))[..., 0]
    assert out[0, 0] == 0 and out[0, 2] == 255  # the finite range maps onto 0..255
    assert 0 < out[0, 1] < out[1, 1] < out[0, 2]  # order is kept
    assert out[1, 0] == 0 and out[1, 2] == 255  # NaN -> black, +inf -> white


def test_constant_float_image_out_of_range(tmp_path):
    for value, expected in ((300.0, 255), (-4.0, 0), (0.5, 128)):
        path = tmp_path / f"const{value}.tif"
        Image.fromarray(np.full((3, 3), value, dtype=np.float32)).save(path)
        assert np.all(pixels(load_image(path)) == expected), value


def test_32bit_integer_tiff(tmp_path):
    values = np.array([[0, 255], [128, 10]], dtype=np.int32)  # 8-bit data in an int file
    path = tmp_path / "int32.tif"
    Image.fromarray(values).save(path)
    assert np.array_equal(pixels(load_image(path))[..., 0], values)


# --------------------------------------------------------------------------- colour modes


def test_cmyk_jpeg_colours(tmp_path):
    colours = [(220, 30, 30), (30, 200, 40), (20, 40, 210), (240, 240, 240)]
    rgb = Image.new("RGB", (64, 16))
    for i, colour in enumerate(colours):
        rgb.paste(colour, (16 * i, 0, 16 * (i + 1), 16))
    path = tmp_path / "cmyk.jpg"
    rgb.convert("CMYK").save(path, "JPEG", quality=95)
    with Image.open(path) as raw:
        assert raw.mode == "CMYK"
    out = pixels(load_image(path))
    for i, colour in enumerate(colours):
        centre = out[8, 16 * i + 8]
        assert np.abs(centre - np.array(colour)).max() <= 12, (colour, centre)


def test_palette_png_with_transparency(tmp_path):
    pal = Image.new("P", (4, 2))
    pal.putpalette([0, 0, 0, 200, 10, 10, 10, 180, 20] + [0] * (253 * 3))
    pal.putdata([0, 1, 2, 0, 1, 1, 2, 0])
    path = tmp_path / "palette.png"
    pal.save(path, transparency=0)  # index 0 (black) is fully transparent
    with Image.open(path) as raw:
        assert raw.mode == "P" and "transparency" in raw.info
    out = pixels(load_image(path))
    assert out[0, 0].tolist() == [255, 255, 255]  # transparent -> white, not black
    assert out[0, 1].tolist() == [200, 10, 10]
    assert out[0, 2].tolist() == [10, 180, 20]


def test_rgba_png(tmp_path):
    arr = np.zeros((2, 3, 4), dtype=np.uint8)
    arr[0, 0] = (0, 0, 0, 0)  # transparent black -> white
    arr[0, 1] = (250, 0, 0, 255)  # opaque keeps its colour
    arr[0, 2] = (0, 0, 200, 0)  # transparent colour -> white too
    arr[1, 0] = (0, 0, 0, 128)  # half transparent black -> mid grey
    arr[1, 1] = (12, 34, 56, 255)
    path = tmp_path / "rgba.png"
    Image.fromarray(arr, "RGBA").save(path)
    out = pixels(load_image(path))
    assert out[0, 0].tolist() == [255, 255, 255]
    assert out[0, 1].tolist() == [250, 0, 0]
    assert out[0, 2].tolist() == [255, 255, 255]
    assert np.all(np.abs(out[1, 0] - 127) <= 1)
    assert out[1, 1].tolist() == [12, 34, 56]


def test_grayscale_with_alpha(tmp_path):
    arr = np.array([[[40, 0], [40, 255]]], dtype=np.uint8)
    path = tmp_path / "la.png"
    Image.fromarray(arr, "LA").save(path)
    out = pixels(load_image(path))
    assert out[0, 0].tolist() == [255, 255, 255] and out[0, 1].tolist() == [40, 40, 40]


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_colour_key_transparency(tmp_path, mode):
    # PNG tRNS for L / RGB images: one colour value means "transparent".
    key = 7 if mode == "L" else (7, 7, 7)
    img = Image.new(mode, (2, 1), key)
    img.putpixel((1, 0), 99 if mode == "L" else (99, 99, 99))
    path = tmp_path / f"key_{mode}.png"
    img.save(path, transparency=key)
    out = pixels(load_image(path))
    assert out[0, 0].tolist() == [255, 255, 255]
    assert out[0, 1].tolist() == [99, 99, 99]


def test_grayscale_and_one_bit(tmp_path):
    gray = Image.fromarray(np.array([[0, 77, 255]], dtype=np.uint8), "L")
    gray.save(tmp_path / "gray.png")
    out = pixels(load_image(tmp_path / "gray.png"))
    assert out[0, :, 0].tolist() == [0, 77, 255] and np.all(out[..., 0] == out[..., 2])

    bits = Image.new("1", (3, 1))
    bits.putpixel((1, 0), 1)
    for ext in ("png", "bmp", "tif"):
        bits.save(tmp_path / f"bits.{ext}")
        out = pixels(load_image(tmp_path / f"bits.{ext}"))
        assert out[0, :, 1].tolist() == [0, 255, 0], ext


def test_animated_gif_gives_first_frame(tmp_path):
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50, loop=0)
    with Image.open(path) as raw:
        assert raw.n_frames == 3
    out = pixels(load_image(path))
    assert out.shape == (8, 8, 3)
    assert np.all(out == [255, 0, 0])


@pytest.mark.parametrize(
    "orientation,size,corner",
    [
        (1, (40, 20), (0, 0)),
        (3, (40, 20), (39, 19)),  # 180 degrees
        (6, (20, 40), (19, 0)),  # rotate 90 clockwise to display: top-left -> top-right
        (8, (20, 40), (0, 39)),  # rotate 90 anticlockwise: top-left -> bottom-left
    ],
)
def test_exif_orientation(tmp_path, orientation, size, corner):
    stored = Image.new("RGB", (40, 20), (0, 0, 255))
    stored.paste((255, 0, 0), (0, 0, 10, 10))  # the stored top-left block is red
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"exif{orientation}.jpg"
    stored.save(path, "JPEG", quality=95, exif=exif.tobytes())
    img = load_image(path)
    assert img.size == size
    out = pixels(img)
    x, y = corner
    assert out[y, x, 0] > 200 and out[y, x, 2] < 60, out[y, x]  # red landed here
    # and the diagonally opposite corner is still blue
    assert out[size[1] - 1 - y, size[0] - 1 - x, 2] > 200


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow/torch on broken data
def test_every_format_pillow_writes(tmp_path):
    """A small sweep: each writable format/mode pair opens or is refused cleanly."""
    arr = (np.arange(6 * 5 * 3) % 256).astype(np.uint8).reshape(6, 5, 3)
    base = Image.fromarray(arr, "RGB")
    formats = ["PNG", "JPEG", "TIFF", "BMP", "GIF", "WEBP", "PPM", "TGA", "PCX", "ICO", "DIB",
               "SGI", "QOI", "EPS", "PDF", "JPEG2000"]
    modes = ["RGB", "RGBA", "L", "LA", "1", "P", "I;16", "I", "F", "CMYK", "YCbCr", "LAB", "HSV"]
    opened = 0
    for fmt in formats:
        for mode in modes:
            try:
                data = encode(base.convert(mode) if mode not in ("I;16",) else
                              Image.fromarray(arr[..., 0].astype(np.uint16) * 257), fmt)
            except Exception:  # noqa: BLE001 - Pillow cannot write this pair: nothing to test
                continue
            try:
                img = load_image(data)
            except UserError as exc:
                assert "\n" not in str(exc)
                continue
            assert img.mode == "RGB" and img.width > 0 and img.height > 0, (fmt, mode)
            opened += 1
    assert opened > 30


# --------------------------------------------------------------------------- property tests

_MODES = ["L", "RGB", "RGBA", "LA", "1", "P", "I;16", "I", "F", "CMYK"]
_FORMATS = ["PNG", "JPEG", "TIFF", "BMP", "GIF", "WEBP", "PPM", "TGA", "ICO"]


def _array_for(mode: str, data: st.DataObject, h: int, w: int) -> Image.Image:
    if mode == "F":
        floats = st.floats(allow_nan=True, allow_infinity=True, width=32)
        values = data.draw(st.lists(floats, min_size=h * w, max_size=h * w))
        return Image.fromarray(np.array(values, dtype=np.float32).reshape(h, w))
    if mode == "I;16":
        values = data.draw(st.lists(st.integers(0, 65535), min_size=h * w, max_size=h * w))
        return Image.fromarray(np.array(values, dtype=np.uint16).reshape(h, w))
    if mode == "I":
        values = data.draw(st.lists(st.integers(-(2**31), 2**31 - 1), min_size=h * w,
                                    max_size=h * w))
        return Image.fromarray(np.array(values, dtype=np.int32).reshape(h, w))
    raw = data.draw(st.binary(min_size=h * w * 4, max_size=h * w * 4))
    rgba = Image.fromarray(np.frombuffer(raw, np.uint8).reshape(h, w, 4).copy(), "RGBA")
    return rgba.convert(mode) if mode != "RGBA" else rgba


def _check_load(data: bytes) -> None:
    try:
        img = load_image(data)
    except UserError as exc:
        assert "\n" not in str(exc) and str(exc)
        return
    assert isinstance(img, Image.Image) and img.mode == "RGB"
    assert img.width > 0 and img.height > 0
    np.asarray(img)  # the pixels really are there


# SEGEXPLORER_FUZZ_EXAMPLES=5000 for a long local run; the default keeps the suite fast.
_FUZZ = settings(max_examples=int(os.environ.get("SEGEXPLORER_FUZZ_EXAMPLES", "120")),
                 deadline=None, database=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow/torch on broken data
@_FUZZ
@given(st.binary(max_size=2048))
def test_random_bytes_never_crash(data):
    _check_load(data)


_MAGICS = [b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF89a", b"II*\x00", b"MM\x00*", b"BM",
           b"RIFF\x00\x00\x00\x00WEBP", b"P6\n", b"\x00\x00\x01\x00", b"8BPS", b"\x0a\x05\x01"]


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow/torch on broken data
@_FUZZ
@given(st.sampled_from(_MAGICS), st.binary(max_size=512))
def test_random_bytes_behind_a_real_signature(magic, tail):
    _check_load(magic + tail)


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow/torch on broken data
@_FUZZ
@given(
    st.sampled_from(_MODES),
    st.sampled_from(_FORMATS),
    st.integers(1, 6),
    st.integers(1, 6),
    st.sampled_from(["none", "truncate", "flip"]),
    st.data(),
)
def test_random_arrays_in_random_formats(mode, fmt, h, w, damage, data):
    img = _array_for(mode, data, h, w)
    try:
        encoded = encode(img, fmt)
    except Exception:  # noqa: BLE001 - Pillow cannot write this mode in this format
        return
    if damage == "truncate":
        encoded = encoded[: data.draw(st.integers(0, max(0, len(encoded) - 1)))]
    elif damage == "flip":
        buf = bytearray(encoded)
        for _ in range(data.draw(st.integers(1, 8))):
            buf[data.draw(st.integers(0, len(buf) - 1))] = data.draw(st.integers(0, 255))
        encoded = bytes(buf)
    if damage == "none":
        out = load_image(encoded)  # an intact file must open
        assert out.mode == "RGB" and out.size == (w, h)
    else:
        _check_load(encoded)


# --------------------------------------------------------------------------- preprocess


def _seed_transform(size: int) -> transforms.Compose:
    return transforms.Compose([
        transforms.Resize(size),
        transforms.ToTensor(),
        transforms.Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD),
    ])


def test_preprocess_equals_torchvision_for_a_real_photo(astronaut):
    photo = load_image(ROCKET)
    for img, size in ((astronaut, 97), (photo, 64), (photo, 100)):
        prepared = preprocess(img, size)
        expected = _seed_transform(size)(img).unsqueeze(0)
        assert isinstance(prepared, PreparedImage)
        assert prepared.tensor.dtype == torch.float32
        assert torch.equal(prepared.tensor, expected)
        assert min(prepared.shape) == size
        assert np.array_equal(prepared.rgb, np.asarray(transforms.Resize(size)(img)))


@pytest.mark.parametrize("wh,size", [((333, 517), 97), ((517, 333), 97), ((31, 17), 16),
                                     ((640, 480), 640), ((1, 1), 16)])
def test_preprocess_shape_follows_resize(astronaut, wh, size):
    img = astronaut.resize(wh)
    prepared = preprocess(img, size)
    w, h = wh
    # torchvision: the shorter side becomes size, the longer int(size * long / short)
    expected = (int(size * h / w), size) if w <= h else (size, int(size * w / h))  # (H, W)
    assert prepared.shape == expected
    assert prepared.tensor.shape == (1, 3, *expected)
    assert prepared.rgb.shape == (*expected, 3) and prepared.rgb.dtype == np.uint8
    assert prepared.rgb.flags["C_CONTIGUOUS"] and prepared.tensor.is_contiguous()
    assert prepared.original_size == wh and prepared.size == size
    sx, sy = prepared.scale
    assert sx == pytest.approx(expected[1] / w) and sy == pytest.approx(expected[0] / h)
    assert torch.equal(prepared.tensor, _seed_transform(size)(img).unsqueeze(0))


@pytest.mark.parametrize("wh", [(20, 2000), (2000, 20), (64, 4000)])
def test_preprocess_caps_extreme_aspect_ratio(wh):
    size = 32
    img = Image.new("RGB", wh, (10, 200, 30))
    prepared = preprocess(img, size)
    assert max(prepared.shape) == size * MAX_ASPECT
    assert min(prepared.shape) >= 1
    assert prepared.tensor.shape[-2:] == prepared.shape


@pytest.mark.parametrize("wh", [(1, 5000), (5000, 1), (3, 100_000)])
def test_preprocess_too_thin_image_is_refused(wh):
    img = Image.new("RGB", wh)
    with pytest.raises(UserError) as info:
        preprocess(img, 640)
    msg = str(info.value)
    assert "\n" not in msg and f"{wh[0]} x {wh[1]}" in msg and "crop" in msg


@pytest.mark.parametrize("size", [15, 0, -5, 8.5, "640", None, True])
def test_preprocess_rejects_bad_sizes(astronaut, size):
    with pytest.raises(UserError) as info:
        preprocess(astronaut, size)
    assert "\n" not in str(info.value) and "16" in str(info.value)


def test_preprocess_smallest_allowed_size(astronaut):
    assert preprocess(astronaut, 16).shape == (16, 16)
