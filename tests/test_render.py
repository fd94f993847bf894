"""segexplorer.render against the seed tutorial and Captum's own drawing code."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from captum.attr import visualization as viz
from captum.attr._utils import visualization as cviz
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from segexplorer import render
from segexplorer.render import (
    VOC_PALETTE,
    alpha_scaling,
    blended_heat_map,
    changed_pixels_map,
    class_colors,
    colorbar_rgba,
    colorbar_ticks,
    colormap_for,
    composite_over,
    cumulative_sum_threshold,
    decode_segmap,
    heat_map,
    masked_image,
    normalize_attr,
    original_image,
    render_attribution,
    segmentation_overlay,
    value_range,
)
from segexplorer.render.palette import _pascal_colormap

H, W = 48, 64
SIGNS = ("all", "positive", "negative", "absolute_value")
METHODS = ("heat_map", "blended_heat_map", "masked_image", "alpha_scaling", "original_image")


# ----------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """The astronaut, downscaled to H x W uint8 RGB."""
    skdata = pytest.importorskip("skimage.data")
    full = skdata.astronaut()
    return np.asarray(Image.fromarray(full).resize((W, H), Image.BILINEAR))


def _segment_map(rng: np.random.Generator, h: int = H, w: int = W) -> np.ndarray:
    """A coarse label map: 8x8 blocks with random ids, like superpixels."""
    blocks = rng.integers(0, 12, size=(h // 8 + 1, w // 8 + 1))
    return np.kron(blocks, np.ones((8, 8), dtype=int))[:h, :w]


def _attributions(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    seg = _segment_map(rng)
    seg_values = rng.normal(size=seg.max() + 1)
    return {
        "mixed32": rng.normal(size=(H, W)).astype(np.float32),
        "mixed64": rng.normal(scale=1e-3, size=(H, W)),
        "all_positive": rng.gamma(2.0, size=(H, W)).astype(np.float32),
        # Feature ablation gives one value per segment: many exact ties.
        "per_segment": seg_values[seg].astype(np.float32),
        "gradcam_like": np.maximum(rng.normal(size=(H, W)), 0) * 3.0,
    }


ATTRS = _attributions()


def captum_draw(attr: np.ndarray, image, method: str, sign: str, **kwargs):
    """What Captum draws, rendered by Agg on a figure exactly the image's size."""
    dpi = 100
    fig = Figure(figsize=(W / dpi, H / dpi), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.axis("off")
    viz.visualize_image_attr(
        attr, image, method=method, sign=sign, plt_fig_axis=(fig, ax), use_pyplot=False, **kwargs
    )
    fig.canvas.draw()
    canvas = np.asarray(fig.canvas.buffer_rgba()).copy()
    passed = [np.asarray(im.get_array()) for im in ax.get_images()]
    return canvas, passed


def level_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a.astype(int) - b.astype(int)).max(axis=-1)


def assert_rgba(rgba: np.ndarray, h: int = H, w: int = W) -> None:
    assert rgba.dtype == np.uint8
    assert rgba.shape == (h, w, 4)
    assert rgba.flags.c_contiguous


# ------------------------------------------------------------------------ palette


def seed_decode_segmap(image: np.ndarray, nc: int = 21) -> np.ndarray:
    """The seed tutorial's per-class loop, verbatim in behaviour."""
    label_colors = np.array(
        [(0, 0, 0), (128, 0, 0), (0, 128, 0), (128, 128, 0), (0, 0, 128), (128, 0, 128),
         (0, 128, 128), (128, 128, 128), (64, 0, 0), (192, 0, 0), (64, 128, 0),
         (192, 128, 0), (64, 0, 128), (192, 0, 128), (64, 128, 128), (192, 128, 128),
         (0, 64, 0), (128, 64, 0), (0, 192, 0), (128, 192, 0), (0, 64, 128)]
    )  # fmt: skip
    r = np.zeros_like(image).astype(np.uint8)
    g = np.zeros_like(image).astype(np.uint8)
    b = np.zeros_like(image).astype(np.uint8)
    for label in range(nc):
        idx = image == label
        r[idx] = label_colors[label, 0]
        g[idx] = label_colors[label, 1]
        b[idx] = label_colors[label, 2]
    return np.stack([r, g, b], axis=2)


def test_voc_palette_matches_seed_and_pascal_extension() -> None:
    assert VOC_PALETTE.shape == (21, 3) and VOC_PALETTE.dtype == np.uint8
    assert tuple(VOC_PALETTE[0]) == (0, 0, 0)
    assert tuple(VOC_PALETTE[20]) == (0, 64, 128)
    # The bit-interleave map is the VOC palette for 0..20, so the extension is seamless.
    np.testing.assert_array_equal(_pascal_colormap(21), VOC_PALETTE)
    colors = class_colors(256)
    assert colors.shape == (256, 3) and colors.dtype == np.uint8
    np.testing.assert_array_equal(colors[:21], VOC_PALETTE)
    assert len({tuple(c) for c in colors}) == 256
    assert tuple(colors[255]) == (224, 224, 192)  # PASCAL's "void" colour
    np.testing.assert_array_equal(class_colors(5), VOC_PALETTE[:5])
    with pytest.raises(ValueError):
        class_colors(-1)


@pytest.mark.parametrize("seed", range(3))
def test_decode_segmap_equals_seed_loop(seed: int) -> None:
    rng = np.random.default_rng(seed)
    class_map = rng.integers(0, 21, size=(H, W))
    out = decode_segmap(class_map)
    assert out.dtype == np.uint8 and out.shape == (H, W, 3) and out.flags.c_contiguous
    np.testing.assert_array_equal(out, seed_decode_segmap(class_map))


def test_decode_segmap_extension_and_errors() -> None:
    class_map = np.array([[0, 20, 21], [40, 255, 1]])
    out = decode_segmap(class_map)
    np.testing.assert_array_equal(out.reshape(-1, 3), class_colors(256)[class_map.ravel()])
    custom = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.uint8)
    np.testing.assert_array_equal(decode_segmap(np.array([[1, 0]]), custom)[0], custom[[1, 0]])
    with pytest.raises(ValueError):
        decode_segmap(np.array([[2]]), custom)  # no colour for id 2
    with pytest.raises(ValueError):
        decode_segmap(np.array([[-1, 0]]))
    with pytest.raises(ValueError):
        decode_segmap(np.zeros((2, 2, 2), dtype=int))
    with pytest.raises(ValueError):
        decode_segmap(np.zeros((2, 2), dtype=float))


# ---------------------------------------------------------------------- normalize


def _captum_normalize(attr: np.ndarray, sign: str, perc: float) -> np.ndarray | None:
    """Captum's output, or None where Captum's percentile-100 rounding raises IndexError."""
    try:
        return cviz._normalize_attr(attr, sign, perc)
    except IndexError:
        return None


@pytest.mark.parametrize("kind", sorted(ATTRS))
@pytest.mark.parametrize("sign", SIGNS)
@pytest.mark.parametrize("perc", [0, 2, 10, 50])
def test_normalize_attr_equals_captum(kind: str, sign: str, perc: float) -> None:
    attr = ATTRS[kind]
    ours = normalize_attr(attr, sign, perc)
    assert ours.sign == sign and ours.values.shape == attr.shape
    if kind in ("all_positive", "gradcam_like") and sign == "negative":
        # Nothing negative: Captum asserts on the zero threshold, we return zeros.
        with pytest.raises(AssertionError):
            cviz._normalize_attr(attr, sign, perc)
        assert ours.scale == 0.0 and not ours.values.any()
        return
    expected = _captum_normalize(attr, sign, perc)
    if expected is None:
        # Captum computes total * 0.01 * 100, which can round above the total and
        # find no index (IndexError); the intended threshold is the largest magnitude.
        assert perc == 0
        selected = {
            "all": attr,
            "positive": np.maximum(attr, 0),
            "negative": np.minimum(attr, 0),
            "absolute_value": np.abs(attr),
        }[sign]
        top = np.abs(selected).max()
        expected = np.clip(selected / (-top if sign == "negative" else top), -1, 1)
    assert ours.values.dtype == expected.dtype
    np.testing.assert_allclose(ours.values, expected, rtol=1e-6, atol=0)
    # scale is what maps to +-1: values * scale gives back the clipped attribution.
    assert ours.scale != 0
    assert (ours.scale < 0) == (sign == "negative")


@pytest.mark.filterwarnings("ignore:Attempting to normalize by value approximately 0")
def test_normalize_attr_is_bit_identical_to_captum_on_many_maps() -> None:
    rng = np.random.default_rng(7)
    compared = 0
    for i in range(200):
        dtype = np.float32 if i % 2 else np.float64
        attr = (rng.normal(size=(6, 5)) * 10 ** rng.uniform(-4, 4)).astype(dtype)
        for sign in SIGNS:
            perc = float(rng.choice([0, 1, 2, 5, 10, 50, 99]))
            expected = _captum_normalize(attr, sign, perc)
            if expected is None:
                continue
            np.testing.assert_array_equal(normalize_attr(attr, sign, perc).values, expected)
            compared += 1
    assert compared > 700


def test_normalize_attr_channels_and_aliases() -> None:
    rng = np.random.default_rng(3)
    attr3 = rng.normal(size=(H, W, 3)).astype(np.float32)
    np.testing.assert_array_equal(
        normalize_attr(attr3, "all").values, cviz._normalize_attr(np.sum(attr3, axis=2), "all", 2)
    )
    a = normalize_attr(attr3, "absolute")
    assert a.sign == "absolute_value"
    np.testing.assert_array_equal(a.values, normalize_attr(attr3, "absolute_value").values)
    ints = rng.integers(-5, 6, size=(H, W))
    np.testing.assert_allclose(
        normalize_attr(ints, "all").values, cviz._normalize_attr(ints, "all", 2), rtol=1e-12
    )


def test_normalize_attr_zero_maps() -> None:
    for sign in SIGNS:
        n = normalize_attr(np.zeros((H, W), np.float32), sign)
        assert n.scale == 0.0 and n.values.shape == (H, W) and not n.values.any()
    n = normalize_attr(np.abs(ATTRS["mixed32"]), "negative")
    assert n.scale == 0.0 and not n.values.any()
    # A zero map still renders (blank heat map) instead of raising like Captum.
    assert_rgba(render_attribution(np.zeros((H, W)), None, "heat_map", "all").rgba)


def test_normalize_attr_scale_semantics() -> None:
    attr = np.array([[-4.0, -1.0], [1.0, 2.0]])
    n = normalize_attr(attr, "all", outlier_perc=0)
    assert n.scale == 4.0
    np.testing.assert_array_equal(n.values, attr / 4.0)
    neg = normalize_attr(attr, "negative", outlier_perc=0)
    assert neg.scale == -4.0
    np.testing.assert_array_equal(neg.values, [[1.0, 0.25], [0.0, 0.0]])


@pytest.mark.parametrize("perc", [0, 2, 37.5, 98, 100])
def test_cumulative_sum_threshold_equals_captum(perc: float) -> None:
    values = np.abs(ATTRS["per_segment"])
    assert cumulative_sum_threshold(values, perc) == pytest.approx(
        float(cviz._cumulative_sum_threshold(values, perc)), rel=0, abs=0
    )


@pytest.mark.parametrize(
    "call",
    [
        lambda: normalize_attr(ATTRS["mixed32"], "sideways"),
        lambda: normalize_attr(ATTRS["mixed32"], "all", outlier_perc=-1),
        lambda: normalize_attr(ATTRS["mixed32"], "all", outlier_perc=101),
        lambda: normalize_attr(ATTRS["mixed32"], "all", outlier_perc="2"),
        lambda: normalize_attr(np.zeros(5), "all"),
        lambda: normalize_attr(np.zeros((0, 3)), "all"),
        lambda: normalize_attr(np.full((2, 2), np.nan), "all"),
        lambda: cumulative_sum_threshold(np.array([-1.0, 2.0]), 50),
        lambda: cumulative_sum_threshold(np.array([1.0]), 150),
    ],
)
def test_normalize_rejects_bad_arguments(call) -> None:
    with pytest.raises(ValueError):
        call()


# ----------------------------------------------------- drawing: against Captum/Agg

# Tolerances found (matplotlib 3.11, Agg, image shown 1:1): heat_map, blended_heat_map,
# masked_image and original_image are bit-identical to Captum's canvas. blended
# needs Agg's own integer "over" blend (composite_over), a float blend is 1 level off
# on ~90% of pixels. alpha_scaling's array equals the one Captum hands imshow; on the
# canvas matplotlib premultiplies/demultiplies it in float32 and truncates, so ~2-4%
# of pixels come out 1 level lower than composite_over(ours).


@pytest.mark.parametrize("sign", SIGNS)
@pytest.mark.parametrize("kind", ["mixed32", "per_segment", "gradcam_like"])
def test_heat_map_matches_captum_canvas(photo: np.ndarray, sign: str, kind: str) -> None:
    attr = ATTRS[kind]
    if kind == "gradcam_like" and sign == "negative":
        # Nothing negative: Captum asserts (zero threshold); we draw the cmap's 0 colour.
        with pytest.raises(AssertionError):
            captum_draw(attr, photo, "heat_map", sign)
        rgba = render_attribution(attr, photo, "heat_map", sign).rgba
        zero = render.apply_colormap(np.zeros((1, 1)), "negative")[0, 0]
        assert (rgba == zero).all()
        return
    canvas, _ = captum_draw(attr, photo, "heat_map", sign)
    ours = render_attribution(attr, photo, "heat_map", sign)
    assert_rgba(ours.rgba)
    np.testing.assert_array_equal(ours.rgba, canvas)
    np.testing.assert_array_equal(heat_map(ours.normalized), canvas)


@pytest.mark.parametrize("sign", SIGNS)
@pytest.mark.parametrize("image_kind", ["uint8", "float01"])
@pytest.mark.parametrize("alpha", [0.5, 0.3])
def test_blended_heat_map_matches_captum_canvas(
    photo: np.ndarray, sign: str, image_kind: str, alpha: float
) -> None:
    image = photo if image_kind == "uint8" else photo / 255.0
    attr = ATTRS["mixed32"]
    canvas, _ = captum_draw(attr, image, "blended_heat_map", sign, alpha_overlay=alpha)
    ours = render_attribution(attr, image, "blended_heat_map", sign, alpha_overlay=alpha)
    assert_rgba(ours.rgba)
    np.testing.assert_array_equal(ours.rgba, canvas)
    np.testing.assert_array_equal(
        blended_heat_map(normalize_attr(attr, sign), image, alpha), canvas
    )


def test_blended_grey_is_autoscaled_like_imshow() -> None:
    # A low-contrast image: matplotlib stretches its grey to full black..white.
    rng = np.random.default_rng(5)
    dull = rng.integers(100, 140, size=(H, W, 3)).astype(np.uint8)
    attr = ATTRS["mixed64"]
    canvas, _ = captum_draw(attr, dull, "blended_heat_map", "positive")
    np.testing.assert_array_equal(
        render_attribution(attr, dull, "blended_heat_map", "positive").rgba, canvas
    )


@pytest.mark.parametrize("sign", ["positive", "negative", "absolute_value"])
@pytest.mark.parametrize("image_kind", ["uint8", "float01"])
def test_masked_image_matches_captum(photo: np.ndarray, sign: str, image_kind: str) -> None:
    image = photo if image_kind == "uint8" else photo / 255.0
    attr = ATTRS["mixed32"]
    canvas, passed = captum_draw(attr, image, "masked_image", sign)
    ours = render_attribution(attr, image, "masked_image", sign)
    assert_rgba(ours.rgba)
    np.testing.assert_array_equal(ours.rgba[..., :3], passed[0])
    np.testing.assert_array_equal(ours.rgba, canvas)


@pytest.mark.parametrize("sign", ["positive", "negative", "absolute_value"])
@pytest.mark.parametrize("image_kind", ["uint8", "float01"])
def test_alpha_scaling_matches_captum(photo: np.ndarray, sign: str, image_kind: str) -> None:
    image = photo if image_kind == "uint8" else photo / 255.0
    attr = ATTRS["per_segment"]
    canvas, passed = captum_draw(attr, image, "alpha_scaling", sign)
    ours = render_attribution(attr, image, "alpha_scaling", sign)
    assert_rgba(ours.rgba)
    # Exactly the RGBA array Captum passes to imshow ...
    np.testing.assert_array_equal(ours.rgba, passed[0])
    norm = cviz._normalize_attr(attr, sign, 2)
    img255 = photo.astype(int)
    helper = np.concatenate([img255, cviz._prepare_image(norm[:, :, None] * 255)], axis=2)
    np.testing.assert_array_equal(ours.rgba, helper)
    # ... and, flattened over the white axes, within 1 level of the canvas (see above).
    diff = level_diff(composite_over(ours.rgba), canvas)
    assert diff.max() <= 1
    assert (diff == 0).mean() >= 0.9


def test_original_image_matches_captum(photo: np.ndarray) -> None:
    for image in (photo, photo / 255.0, photo.astype(np.float32) / 255.0):
        canvas, _ = captum_draw(ATTRS["mixed32"], image, "original_image", "all")
        np.testing.assert_array_equal(original_image(image), canvas)
        np.testing.assert_array_equal(
            render_attribution(ATTRS["mixed32"], image, "original_image", "all").rgba, canvas
        )


def test_brief_tolerance_holds_for_every_method(photo: np.ndarray) -> None:
    """The brief's acceptance bar (<= 2 levels on >= 99% of pixels) for every combination."""
    attr = ATTRS["gradcam_like"] - 1.0
    for method in METHODS:
        for sign in SIGNS:
            if sign == "all" and method in ("masked_image", "alpha_scaling"):
                continue
            canvas, _ = captum_draw(attr, photo, method, sign)
            rgba = render_attribution(attr, photo, method, sign).rgba
            if method == "alpha_scaling":
                rgba = composite_over(rgba)
            assert (level_diff(rgba, canvas) <= 2).mean() >= 0.99, (method, sign)


# ------------------------------------------------------------------ errors, shapes


def test_sign_all_rejected_where_captum_asserts(photo: np.ndarray) -> None:
    norm = normalize_attr(ATTRS["mixed32"], "all")
    for func in (masked_image, alpha_scaling):
        with pytest.raises(ValueError, match="sign"):
            func(norm, photo)
    for method in ("masked_image", "alpha_scaling"):
        with pytest.raises(ValueError):
            render_attribution(ATTRS["mixed32"], photo, method, "all")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"method": "heatmap", "sign": "all"},
        {"method": "heat_map", "sign": "pos"},
        {"method": "heat_map", "sign": None},
        {"method": "blended_heat_map", "sign": "all", "alpha_overlay": 1.5},
        {"method": "heat_map", "sign": "all", "outlier_perc": 200},
    ],
)
def test_render_attribution_rejects_bad_arguments(photo: np.ndarray, kwargs) -> None:
    with pytest.raises(ValueError):
        render_attribution(ATTRS["mixed32"], photo, **kwargs)


def test_render_attribution_checks_image(photo: np.ndarray) -> None:
    with pytest.raises(ValueError, match="image"):
        render_attribution(ATTRS["mixed32"], None, "blended_heat_map", "all")
    with pytest.raises(ValueError):
        render_attribution(ATTRS["mixed32"][:-1], photo, "blended_heat_map", "all")
    with pytest.raises(ValueError):
        render_attribution(ATTRS["mixed32"], photo[..., :2], "original_image", "all")


def test_every_output_is_contiguous_rgba(photo: np.ndarray) -> None:
    attr = ATTRS["mixed64"]
    for method in METHODS:
        for sign in ("positive", "absolute"):
            out = render_attribution(attr, photo, method, sign)
            assert_rgba(out.rgba)
            assert out.method == method and out.sign == canonical(sign)
            if method != "alpha_scaling":
                assert (out.rgba[..., 3] == 255).all()
    # Non-contiguous inputs (views) are fine too.
    view = render_attribution(attr[:, ::-1], photo[:, ::-1], "blended_heat_map", "all")
    assert_rgba(view.rgba)
    grey = render_attribution(attr, photo[..., 0], "blended_heat_map", "all")
    assert_rgba(grey.rgba)


def canonical(sign: str) -> str:
    return "absolute_value" if sign == "absolute" else sign


# --------------------------------------------------------------------- colour bars


def test_colormaps_are_captums() -> None:
    for sign in SIGNS:
        cmap, vmin, vmax = cviz._initialize_cmap_and_vmin_vmax(sign)
        ours = colormap_for(sign)
        assert (vmin, vmax) == value_range(sign)
        assert ours.name == (cmap if isinstance(cmap, str) else cmap.name)
        ramp = np.linspace(0, 1, 300)
        theirs = cmap if not isinstance(cmap, str) else colormap_for(sign)
        np.testing.assert_array_equal(ours(ramp, bytes=True), theirs(ramp, bytes=True))
    assert colormap_for("all") is not colormap_for("all")  # copies: the shared one stays put
    assert tuple(render.apply_colormap(np.array([[-5.0]]), "all")[0, 0]) == (255, 0, 0, 255)


def test_colorbar_ticks_and_strip() -> None:
    attr = ATTRS["mixed32"]
    n_all = normalize_attr(attr, "all")
    ticks = colorbar_ticks(n_all)
    assert len(ticks) == 5
    assert ticks[0] == (0.0, -n_all.scale)
    assert ticks[-1] == (1.0, n_all.scale)
    assert ticks[2] == (0.5, 0.0)
    n_neg = normalize_attr(attr, "negative")
    neg_ticks = colorbar_ticks(n_neg, n=3)
    assert neg_ticks[0] == (0.0, 0.0) and neg_ticks[-1] == (1.0, n_neg.scale) and n_neg.scale < 0
    with pytest.raises(ValueError):
        colorbar_ticks(n_all, n=1)

    strip = colorbar_rgba("all", length=100, thickness=7)
    assert_rgba(strip, 7, 100)
    np.testing.assert_array_equal(
        strip[0, 0], render.apply_colormap(np.array([[-1.0]]), "all")[0, 0]
    )
    np.testing.assert_array_equal(
        strip[-1, -1], render.apply_colormap(np.array([[1.0]]), "all")[0, 0]
    )
    tall = colorbar_rgba("positive", length=50, thickness=4, horizontal=False)
    assert_rgba(tall, 50, 4)
    assert tall[0, 0, 1] < tall[-1, 0, 1]  # darkest green (vmax) on top
    with pytest.raises(ValueError):
        colorbar_rgba("all", length=0)


# ----------------------------------------------------------- segmentation views


def test_segmentation_overlay(photo: np.ndarray) -> None:
    rng = np.random.default_rng(11)
    class_map = rng.integers(0, 21, size=(H, W))
    np.testing.assert_array_equal(segmentation_overlay(photo, class_map, 0.0)[..., :3], photo)
    np.testing.assert_array_equal(
        segmentation_overlay(photo, class_map, 1.0)[..., :3], decode_segmap(class_map)
    )
    half = segmentation_overlay(photo / 255.0, class_map, 0.5)
    assert_rgba(half)
    expected = np.rint(photo * 0.5 + decode_segmap(class_map) * 0.5)
    assert np.abs(half[..., :3] - expected).max() == 0
    with pytest.raises(ValueError):
        segmentation_overlay(photo, class_map[:-1])
    with pytest.raises(ValueError):
        segmentation_overlay(photo, class_map, opacity=2)


def test_changed_pixels_map(photo: np.ndarray) -> None:
    rng = np.random.default_rng(12)
    before = rng.integers(0, 21, size=(H, W))
    after = before.copy()
    after[10:20, 5:9] = (after[10:20, 5:9] + 1) % 21
    out = changed_pixels_map(before, after, photo)
    assert_rgba(out)
    changed = before != after
    assert (out[changed][:, :3] == (255, 0, 255)).all()
    rest = out[~changed][:, :3]
    assert (rest[:, 0] == rest[:, 1]).all() and (rest[:, 1] == rest[:, 2]).all()  # grey
    assert (out[..., 3] == 255).all()
    # the grey is Captum's (the channels' mean) dimmed to 3/4, rounded
    grey = np.rint(np.mean(photo, axis=2) * 0.75).astype(np.uint8)
    np.testing.assert_array_equal(out[~changed][:, 0], grey[~changed])
    with pytest.raises(ValueError):
        changed_pixels_map(before, after[:-1], photo)


def test_changed_pixels_grey_table_equals_the_mean_for_every_colour() -> None:
    from segexplorer.render.composite import dimmed_grey

    levels = np.arange(256, dtype=np.uint8)
    every = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), axis=-1)
    every = every.reshape(4096, 4096, 3)  # all 2^24 colours
    np.testing.assert_array_equal(dimmed_grey(every),
                                  np.rint(np.mean(every, axis=2) * 0.75).astype(np.uint8))


# --------------------------------------------------------------------- hygiene


def test_render_imports_no_torch_captum_or_qt() -> None:
    code = (
        "import sys, segexplorer.render\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('torch', 'torchvision', 'captum', 'PySide6', 'superqt', 'qtpy')"
        " or m.startswith(('segexplorer.engine', 'segexplorer.gui'))]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1])


def test_no_warnings_on_normal_use(photo: np.ndarray) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for method in METHODS:
            render_attribution(ATTRS["mixed32"], photo, method, "positive")


@pytest.mark.parametrize("method", ["heat_map", "blended_heat_map"])
@pytest.mark.parametrize("sign,cmap", [("all", "coolwarm"), ("positive", "viridis"),
                                       ("absolute_value", "magma")])
def test_a_chosen_colour_map_draws_as_captums_cmap_argument(photo: np.ndarray, method: str,
                                                            sign: str, cmap: str) -> None:
    attr = ATTRS["mixed32"]
    canvas, _ = captum_draw(attr, photo, method, sign, cmap=cmap)
    ours = render_attribution(attr, photo, method, sign, cmap=cmap)
    np.testing.assert_array_equal(ours.rgba, canvas)
    assert render.colorbar_rgba(sign, 16, 2, cmap=cmap).shape == (2, 16, 4)
    with pytest.raises(ValueError, match="unknown colour map"):
        render_attribution(attr, photo, method, sign, cmap="no-such-map")


def test_hide_target_takes_the_class_map_and_class_or_the_targets_own_mask():
    from segexplorer.render import hide_target

    attr = np.arange(12, dtype=np.float32).reshape(3, 4) + 1
    class_map = np.array([[0, 1, 1, 0], [2, 1, 0, 0], [2, 2, 2, 1]])
    by_class = hide_target(attr, class_map, 1)
    np.testing.assert_array_equal(by_class == 0, class_map == 1)
    np.testing.assert_array_equal(hide_target(attr, class_map == 1), by_class)
    # a multi-label mask may cover pixels the class map gives another class
    mask = (class_map == 1) | (class_map == 2)
    hidden = hide_target(attr, mask)
    np.testing.assert_array_equal(hidden == 0, mask)
    np.testing.assert_array_equal(hidden[~mask], attr[~mask])
