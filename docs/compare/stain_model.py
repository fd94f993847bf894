"""The worked example of docs/compare.md: a small stain segmentation model with hand-set
weights (no training, no download), for scikit-image's immunohistochemistry photo
(``skimage/data/ihc.png``): brown DAB-stained tissue, blue haematoxylin nuclei, and the
bright background.

``features`` are three smoothed colour detectors (a 5 x 5 average of brown-ness, blue-ness
and brightness, then a ReLU): the layer Grad-CAM explains. ``head`` is the classifier,
one row per class: ``make_example.py`` writes a copy of the weights whose ``stain`` row is
scaled, the "second checkpoint" that ``segexplorer compare`` compares with this one.
"""

import torch
from torch import nn

CLASSES = ("background", "stain", "nuclei")


class StainNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 3, 5, padding=2), nn.ReLU())
        self.head = nn.Conv2d(3, len(CLASSES), 1)
        with torch.no_grad():
            # input: 0..1 RGB (the card's mean 0 and std 1); each detector averages 5 x 5
            colour = torch.tensor([[1.0, 0.0, -1.0],     # brown: red above blue
                                   [-1.0, 0.0, 1.0],     # blue: blue above red
                                   [1 / 3, 1 / 3, 1 / 3]])  # brightness
            self.features[0].weight.copy_(colour[:, :, None, None].expand(3, 3, 5, 5) / 25)
            self.features[0].bias.copy_(torch.tensor([-0.05, -0.05, -0.75]))
            self.head.weight.copy_(torch.tensor([[0.0, 0.0, 8.0],
                                                 [8.0, 0.0, 0.0],
                                                 [0.0, 8.0, 0.0]])[:, :, None, None])
            self.head.bias.copy_(torch.tensor([0.1, 0.0, 0.0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def build() -> StainNet:
    return StainNet()
