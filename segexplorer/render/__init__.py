"""Captum-exact drawing of attribution maps as RGBA arrays (numpy + matplotlib colour maps).

No torch, Captum or Qt here: results are plain ``HxWx4`` uint8 arrays at the image's
native resolution, ready for a Qt canvas or a PNG.
"""

from .colormaps import (
    COLORMAP_CHOICES,
    apply_colormap,
    colorbar_rgba,
    colorbar_ticks,
    colormap_for,
    value_range,
)
from .composite import (
    METHODS,
    Rendered,
    alpha_scaling,
    blended_heat_map,
    changed_pixels_map,
    composite_over,
    heat_map,
    masked_image,
    original_image,
    prepare_image,
    render_attribution,
    segmentation_overlay,
)
from .multilabel import (
    LAYER_OPACITY,
    changed_pixels,
    class_outlines,
    mask_layers,
    multilabel_overlay,
)
from .normalize import (
    SIGNS,
    NormalizedAttr,
    canonical_sign,
    cumulative_sum_threshold,
    normalize_attr,
)
from .overlays import (
    ABLATION_VIEWS,
    VIEW_AFTER,
    VIEW_CHANGED,
    VIEW_INPUT,
    ablation_views,
    edge_mask,
    hide_target,
    outline_rgba,
    render_ablation_view,
    selection_outline,
    thumbnail_views,
    upscale_nearest,
)
from .palette import VOC_PALETTE, class_colors, decode_segmap

__all__ = [
    "ABLATION_VIEWS",
    "COLORMAP_CHOICES",
    "LAYER_OPACITY",
    "METHODS",
    "SIGNS",
    "VOC_PALETTE",
    "NormalizedAttr",
    "Rendered",
    "VIEW_AFTER",
    "VIEW_CHANGED",
    "VIEW_INPUT",
    "ablation_views",
    "alpha_scaling",
    "apply_colormap",
    "blended_heat_map",
    "canonical_sign",
    "changed_pixels",
    "changed_pixels_map",
    "class_colors",
    "class_outlines",
    "colorbar_rgba",
    "colorbar_ticks",
    "colormap_for",
    "composite_over",
    "cumulative_sum_threshold",
    "decode_segmap",
    "edge_mask",
    "heat_map",
    "hide_target",
    "mask_layers",
    "masked_image",
    "multilabel_overlay",
    "normalize_attr",
    "original_image",
    "outline_rgba",
    "prepare_image",
    "render_ablation_view",
    "render_attribution",
    "segmentation_overlay",
    "selection_outline",
    "thumbnail_views",
    "upscale_nearest",
    "value_range",
]
