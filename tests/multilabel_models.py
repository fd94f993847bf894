"""Multi-label models with known answers (``tests/test_multilabel.py``).

* ``DETECTORS``: a python factory whose three channels are hand-built colour detectors,
  z_c = 8 (rgb_c - 0.5) plus a fifth of its 3 x 3 neighbourhood's mean (context, so that
  ablating one segment moves the others' scores a little). Every positive pixel has
  z_c >= 0.89 and every negative one z_c <= -2, so the masks z_c > 0 are exactly the
  pixels whose channel c is above 127, and at the 0.9 threshold (z_c > 2.197) those at 255.
* ``scene()``: a 30 x 40 image whose colour rectangles overlap: red, green and yellow
  (red + green), blue, white (all three), a dim red (only at the 0.5 threshold) and a
  second red square; the dark grey background is in no class.
* ``TRAINABLE``: a small network and the two ways it is trained on the scene, softmax
  cross-entropy (one class per pixel) and binary cross-entropy per channel (multi-label):
  what "a real softmax model" and "a real multi-label model" look like to the hint.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

DETECTORS = '''
import torch
from torch import nn


class ColourDetectors(nn.Module):
    """z_c = k (rgb_c - 0.5) + context x mean of its 3 x 3 neighbourhood (inputs in 0..1)."""

    def __init__(self, k=8.0, context=0.2):
        super().__init__()
        self.features = nn.Conv2d(3, 6, 3, padding=1)  # k (rgb - 0.5) and its negative
        self.relu = nn.ReLU()
        self.head = nn.Conv2d(6, 3, 1)  # relu(a) - relu(-a) = a
        self.context = nn.Conv2d(3, 3, 3, padding=1, groups=3, bias=False)
        with torch.no_grad():
            self.features.weight.zero_()
            self.head.weight.zero_()
            self.head.bias.zero_()
            for c in range(3):
                self.features.weight[2 * c, c, 1, 1] = k
                self.features.bias[2 * c] = -k / 2
                self.features.weight[2 * c + 1, c, 1, 1] = -k
                self.features.bias[2 * c + 1] = k / 2
                self.head.weight[c, 2 * c] = 1.0
                self.head.weight[c, 2 * c + 1] = -1.0
            self.context.weight.fill_(context / 9)

    def forward(self, x):
        d = self.head(self.relu(self.features(x)))
        return d + self.context(d)


def build(k=8.0, context=0.2):
    return ColourDetectors(k, context)
'''

TRAINABLE = '''
from torch import nn


def build(outputs=4):
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, outputs, 1))
'''

CLASSES = ("red", "green", "blue")
BACKGROUND = (64, 64, 64)
H, W = 30, 40
#: (rows, columns, colour), drawn in this order
RECTANGLES = (
    (slice(4, 18), slice(4, 22), (255, 0, 0)),  # red square
    (slice(10, 26), slice(14, 34), (0, 255, 0)),  # green square ...
    (slice(10, 18), slice(14, 22), (255, 255, 0)),  # ... over the red one: yellow
    (slice(20, 28), slice(2, 10), (0, 0, 255)),  # blue
    (slice(1, 6), slice(30, 38), (255, 255, 255)),  # white: all three classes
    (slice(27, 30), slice(30, 39), (255, 0, 0)),  # a second red square
    (slice(1, 5), slice(24, 28), (160, 0, 0)),  # dim red: p = 0.73
)
#: the label sets present and their pixels (the partition by label set, in id order)
LABEL_SETS = {(): 40 * 30 - 14 * 18 - 16 * 20 + 8 * 8 - 64 - 40 - 27 - 16,
              (0,): 14 * 18 - 64 + 27 + 16, (0, 1): 64, (0, 1, 2): 40,
              (1,): 16 * 20 - 64, (2,): 64}
PREPROCESS = "[preprocess]\nsize = 30\nmean = [0.0, 0.0, 0.0]\nstd = [1.0, 1.0, 1.0]\n"


def scene() -> np.ndarray:
    img = np.empty((H, W, 3), np.uint8)
    img[:] = BACKGROUND
    for rows, cols, colour in RECTANGLES:
        img[rows, cols] = colour
    return img


def known_masks(threshold: float = 0.5) -> np.ndarray:
    """C x H x W: what the detectors must find (see the module docstring)."""
    img = scene()
    cut = 254 if threshold == 0.9 else 127
    return np.moveaxis(img > cut, 2, 0)


@dataclass(frozen=True)
class MultilabelCards:
    root: Path
    image: Path  # the scene, a PNG
    multilabel: Path  # the detectors, outputs = "multilabel"
    strict: Path  # the same, threshold = 0.9
    softmax: Path  # the same model under a card that says nothing (softmax, the default)
    trained_softmax: Path  # the small network trained with cross-entropy (4 classes)
    trained_multilabel: Path  # trained with binary cross-entropy, under a softmax card


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def _train(outputs: int, multilabel: bool, steps: int = 150) -> dict[str, torch.Tensor]:
    """The small network trained on the scene (seeded): cross-entropy on one class per
    pixel (background, red, green, blue; the last colour wins), or binary cross-entropy on
    each channel's own mask."""
    from torch import nn

    img = torch.from_numpy(scene().astype(np.float32) / 255).permute(2, 0, 1)[None]
    present = torch.from_numpy(known_masks()[None].astype(np.float32))
    single = torch.zeros(1, H, W, dtype=torch.long)
    for c in range(3):
        single[0][present[0, c] > 0] = c + 1
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
                            nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, outputs, 1))
        opt = torch.optim.Adam(net.parameters(), 0.03)
        for _ in range(steps):
            opt.zero_grad()
            out = net(img)
            loss = (nn.functional.binary_cross_entropy_with_logits(out, present) if multilabel
                    else nn.functional.cross_entropy(out, single))
            loss.backward()
            opt.step()
    return net.state_dict()


def build_multilabel_cards(root: Path) -> MultilabelCards:
    root.mkdir(parents=True, exist_ok=True)
    image = root / "scene.png"
    Image.fromarray(scene()).save(image)
    (root / "detectors.py").write_text(DETECTORS, encoding="utf-8")
    (root / "trainable.py").write_text(TRAINABLE, encoding="utf-8")
    head = ('[model]\nsource = "python"\nfactory = "detectors.py:build"\n'
            'classes = ["red", "green", "blue"]\n')
    multilabel = write(root / "detectors.toml",
                       head + 'outputs = "multilabel"\n' + PREPROCESS
                       + '[explain]\nlayer = "features"\n')
    strict = write(root / "strict.toml", head + 'outputs = "multilabel"\nthreshold = 0.9\n'
                   + PREPROCESS)
    softmax = write(root / "softmax.toml", head + PREPROCESS + '[explain]\nlayer = "features"\n')
    torch.save(_train(4, False), root / "ce.pt")
    torch.save(_train(3, True), root / "bce.pt")
    trained_softmax = write(root / "trained_softmax.toml", textwrap.dedent('''
        [model]
        source = "python"
        factory = "trainable.py:build"
        weights = "ce.pt"
        classes = ["background", "red", "green", "blue"]
        ''') + PREPROCESS)
    trained_multilabel = write(root / "trained_bce_as_softmax.toml", textwrap.dedent('''
        [model]
        source = "python"
        factory = "trainable.py:build"
        options = { outputs = 3 }
        weights = "bce.pt"
        classes = ["red", "green", "blue"]
        ''') + PREPROCESS)
    return MultilabelCards(root, image, multilabel, strict, softmax, trained_softmax,
                           trained_multilabel)
