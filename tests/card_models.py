"""Users' own models, written as a user would: weights saved to disk and a model card each.

* ``tv5``: torchvision deeplabv3_resnet50 fine-tuned (seeded random) on 5 classes, its
  state dict saved with ``torch.save``; the card names the classes and a palette;
* ``smp``: segmentation_models_pytorch Unet with a resnet18 encoder, 3 classes,
  weights in safetensors, classes from a labels file;
* ``segformer``: a small Hugging Face SegFormer built from a config and saved with
  ``save_pretrained`` (class names from ``id2label``);
* ``binary``: a user's own one-output-channel network, built by a python factory;
* ``python``: the same factory idea with 4 classes and a state dict.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path

import torch

FACTORY = '''
import torch
from torch import nn


class BinaryNet(nn.Module):
    """A user's own mask model: one logit per pixel."""

    def __init__(self, width=8):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(width, width, 3, stride=2, padding=1), nn.ReLU())
        self.head = nn.Conv2d(width, 1, 1)

    def forward(self, x):
        return self.head(self.stem(x))  # half resolution: the adapter upsamples


class FourClassNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(inplace=True),
                                      nn.Conv2d(6, 6, 3, padding=1), nn.BatchNorm2d(6))
        self.classifier = nn.Conv2d(6, 4, 1)

    def forward(self, x):
        return (self.classifier(torch.relu(self.features(x))),)  # a tuple, logits first


def build_binary(width=8):
    return BinaryNet(width)


def build_four():
    return FourClassNet()


def build_broken():
    raise ValueError("the checkpoint folder is not mounted")


def build_not_a_module():
    return {"weights": 1}
'''


@dataclass(frozen=True)
class CardModels:
    root: Path
    tv5: Path
    smp: Path
    segformer: Path
    binary: Path
    python: Path
    factory: Path


SMP_CLASSES = ("background", "building", "water")
TV5_CLASSES = ("background", "road", "car", "person", "tree")
TV5_PALETTE = ((0, 0, 0), (128, 64, 128), (0, 0, 142), (220, 20, 60), (107, 142, 35))
SEGFORMER_LABELS = {0: "sky", 1: "road", 2: "car", 3: "tree"}


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def build_card_models(root: Path) -> CardModels:
    root.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(11)
    from torchvision.models.segmentation import deeplabv3_resnet50

    tv = deeplabv3_resnet50(weights=None, weights_backbone=None, num_classes=5, aux_loss=True)
    torch.save(tv.state_dict(), root / "deeplab5.pth")  # aux head included, as trained
    palette = ", ".join(f"[{r}, {g}, {b}]" for r, g, b in TV5_PALETTE)
    tv5 = write(root / "deeplab5.toml", f'''
        [model]
        name = "Roads (deeplabv3, 5 classes)"
        source = "torchvision"
        architecture = "deeplabv3_resnet50"
        weights = "deeplab5.pth"
        classes = {list(TV5_CLASSES)!r}
        palette = [{palette}]
        '''.replace("'", '"'))

    import segmentation_models_pytorch as smp
    from safetensors.torch import save_file

    torch.manual_seed(12)
    unet = smp.Unet(encoder_name="resnet18", encoder_weights=None, classes=3)
    (root / "smp").mkdir(exist_ok=True)
    save_file({k: v.contiguous() for k, v in unet.state_dict().items()},
              str(root / "smp" / "unet.safetensors"))
    (root / "smp" / "labels.txt").write_text("\n".join(SMP_CLASSES) + "\n", encoding="utf-8")
    smp_card = write(root / "smp" / "unet.toml", '''
        [model]
        source = "smp"
        architecture = "Unet"
        encoder = "resnet18"
        weights = "unet.safetensors"
        labels = "labels.txt"

        [preprocess]
        size = 45

        [explain]
        layer = "encoder.layer4.1.conv2"
        ''')

    from transformers import SegformerConfig, SegformerForSemanticSegmentation

    config = SegformerConfig(
        num_channels=3, num_encoder_blocks=2, depths=[1, 1], sr_ratios=[2, 1],
        hidden_sizes=[8, 16], patch_sizes=[7, 3], strides=[4, 2], num_attention_heads=[1, 2],
        mlp_ratios=[2, 2], decoder_hidden_size=16, num_labels=len(SEGFORMER_LABELS),
        id2label=SEGFORMER_LABELS, label2id={v: k for k, v in SEGFORMER_LABELS.items()})
    torch.manual_seed(13)
    SegformerForSemanticSegmentation(config).eval().save_pretrained(root / "segformer")
    (root / "segformer" / "preprocessor_config.json").write_text(
        '{"image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], '
        '"size": {"height": 48, "width": 48}, "do_normalize": true}', encoding="utf-8")
    segformer = write(root / "segformer.toml", '''
        [model]
        source = "huggingface"
        weights = "segformer"
        ''')

    factory = root / "user_models.py"
    factory.write_text(FACTORY, encoding="utf-8")
    binary = write(root / "binary.toml", '''
        [model]
        source = "python"
        factory = "user_models.py:build_binary"
        classes = ["crack"]
        options = { width = 6 }
        ''')
    import importlib.util

    spec = importlib.util.spec_from_file_location("card_models_user", factory)
    user = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(user)
    torch.manual_seed(14)
    torch.save(user.build_four().state_dict(), root / "four.pt")
    python = write(root / "four.toml", '''
        [model]
        source = "python"
        factory = "user_models.py:build_four"
        weights = "four.pt"
        classes = ["a", "b", "c", "d"]
        ''')
    return CardModels(root, tv5, smp_card, segformer, binary, python, factory)
