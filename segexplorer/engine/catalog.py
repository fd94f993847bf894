"""Torch-free facts about the engine, for code that must not wait for torch to import.

The window is painted before torch has loaded (that takes seconds); it is built from
these facts. ``models.py`` builds its registry from the same table, so they cannot drift.
"""

from __future__ import annotations

from dataclasses import dataclass

# the methods' registry (torch-free too): engine.methods
from . import methods as _methods

DEFAULT_METHODS = _methods.DEFAULT_METHODS
ALL_METHODS = _methods.METHODS  # every method the engine computes (its vocabulary)

#: the methods computed unless asked otherwise (the seed's three), under the name callers
#: from before the registry use; every method the engine knows is ALL_METHODS
METHODS = DEFAULT_METHODS

DEFAULT_ARCHITECTURE = "fcn_resnet101"  # the seed's model
DEFAULT_SIZE = 640  # the seed's Resize(640)
# The options of the methods, as the engine spells them (the window's labels are keyed
# by these; engine modules that check them import them from here).
SCORE_AGGREGATIONS = ("argmax", "sum")  # the seed's wrapper, and its plain-sum variant
UPSAMPLE_MODES = ("nearest", "bilinear")
SEGMENT_KINDS = ("class", "component")
#: what a model's output channels are (a model card's [model] outputs): softmax classes
#: (argmax), one logit explained as background / foreground (binary), or independent
#: sigmoids whose classes may overlap (multilabel); see engine.outputs and docs/models.md
SOFTMAX, MULTILABEL, BINARY = "softmax", "multilabel", "binary"
OUTPUT_KINDS = (SOFTMAX, MULTILABEL, BINARY)
BASELINE_CHOICES = ("zero", "black", "blur")  # and any colour, #RRGGBB or R,G,B
PRECISIONS = ("fp32", "bf16")  # exact, and fast mode (bf16 autocast)
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # the seed's Normalize
IMAGENET_STD = (0.229, 0.224, 0.225)

RESNET_LAYER = "backbone.layer4.2.conv3"  # the seed's fcn.backbone.layer4[2].conv3
MOBILENET_LAYER = "backbone.16.0"  # the last backbone convolution (960 channels)


@dataclass(frozen=True)
class ArchInfo:
    name: str
    description: str
    default_layer: str


BUILTIN_ARCHITECTURES: dict[str, ArchInfo] = {
    a.name: a for a in (
        ArchInfo("fcn_resnet50", "FCN, ResNet-50 backbone", RESNET_LAYER),
        ArchInfo("fcn_resnet101", "FCN, ResNet-101 backbone (the seed's model)", RESNET_LAYER),
        ArchInfo("deeplabv3_resnet50", "DeepLabV3, ResNet-50 backbone", RESNET_LAYER),
        ArchInfo("deeplabv3_resnet101", "DeepLabV3, ResNet-101 backbone", RESNET_LAYER),
        ArchInfo("deeplabv3_mobilenet_v3_large", "DeepLabV3, MobileNetV3-Large backbone",
                 MOBILENET_LAYER),
        ArchInfo("lraspp_mobilenet_v3_large", "LR-ASPP, MobileNetV3-Large backbone (fastest)",
                 MOBILENET_LAYER),
    )
}
