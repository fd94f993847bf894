"""What one built-in architecture is: how to build it untrained, its default Grad-CAM
layer, its torchvision weights and its class names.

Its own module so that ``weights`` (which reads an architecture's weights file name) and
``models`` (which registers the architectures) both import it and neither imports the
other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn
from torchvision.models.segmentation import FCN_ResNet101_Weights

#: the 21 classes of torchvision's COCO-with-VOC-labels weights
VOC_CATEGORIES: tuple[str, ...] = tuple(
    FCN_ResNet101_Weights.COCO_WITH_VOC_LABELS_V1.meta["categories"])


@dataclass(frozen=True)
class Architecture:
    """How to build one architecture and what its defaults are."""

    name: str
    build: Callable[[int], nn.Module]  # num_classes -> untrained module without aux head
    default_layer: str
    weights_enum: object | None = None  # a torchvision WeightsEnum member, if any
    categories: tuple[str, ...] = VOC_CATEGORIES
    description: str = ""

    @property
    def weights_url(self) -> str | None:
        return getattr(self.weights_enum, "url", None)

    @property
    def weights_filename(self) -> str | None:
        url = self.weights_url
        return url.rsplit("/", 1)[-1] if url else None
