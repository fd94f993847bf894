"""From whatever a segmentation network returns to N x C x H x W logits at input size.

Every method and the Captum calls the tests compare against go through
:class:`LogitsAdapter`, so they all see one function of the input. It accepts the
output shapes models come with:

* a tensor; a dict with ``out`` (torchvision) or ``logits``; an object with ``.logits``
  (Hugging Face's ``SemanticSegmenterOutput``); a tuple or list (its first element);
* logits at a lower resolution (SegFormer predicts at 1/4 size) are upsampled
  bilinearly to the input size (``align_corners=False``), as the transformers
  documentation does;
* one output channel is a binary model: ``z`` becomes the two classes
  ``[-z, z]`` (background, foreground): the foreground wins exactly where ``z > 0``,
  the foreground's score is the model's own logit, and the background's is its negative;
* a multi-label model (``[model] outputs = "multilabel"``) is returned as it is: each
  channel is an independent logit z_c (its own sigmoid), and class c is present where
  z_c > logit(threshold) (z_c > 0 at the default 0.5); classes may overlap and a pixel
  may be in none (``engine.aggregation`` builds the masks, ``results.Prediction`` keeps
  them);
* inputs whose sides the network cannot take (smp encoders need multiples of their
  output stride) are padded with zeros on the bottom and right (zero is the mean colour
  after normalisation) and the output cropped back, so the function's input and output
  keep the image's size.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .errors import UserError


def extract_logits(output: object) -> torch.Tensor:
    """The logits tensor inside a model's output (see the module docstring)."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, Mapping):
        for key in ("out", "logits"):
            value = output.get(key)
            if isinstance(value, torch.Tensor):
                return value
        keys = ", ".join(repr(k) for k in list(output)[:5])
        raise UserError(f"The model returned a dict without 'out' or 'logits' (keys: {keys}): "
                        "return the logits tensor, or a dict with 'out'.")
    value = getattr(output, "logits", None)
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    raise UserError(f"The model returned a {type(output).__name__}, not logits: return a "
                    "tensor N x C x H x W, a dict with 'out', an object with .logits, or a "
                    "tuple whose first element is the logits.")


@dataclass
class LogitsAdapter:
    """Calls ``module`` and returns N x C x H x W logits at the input's size."""

    module: nn.Module
    pad_multiple: int = 1  # input sides are padded up to a multiple of this
    binary: bool = False  # one output channel, explained as two classes

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        h, w = int(batch.shape[-2]), int(batch.shape[-1])
        x = batch
        m = self.pad_multiple
        if m > 1 and (h % m or w % m):
            x = F.pad(batch, (0, (-w) % m, 0, (-h) % m))  # zeros: the mean colour
        logits = extract_logits(self.module(x))
        if logits.dim() != 4:
            shape = " x ".join(str(int(d)) for d in logits.shape)
            raise UserError(f"The model's output is {shape}; a segmentation model must "
                            "output N x C x H x W logits.")
        if tuple(logits.shape[-2:]) != tuple(x.shape[-2:]):
            logits = F.interpolate(logits, size=x.shape[-2:], mode="bilinear",
                                   align_corners=False)
        if x is not batch:
            logits = logits[..., :h, :w]
        if self.binary:
            logits = torch.cat([-logits, logits], dim=1)
        return logits


def output_channels(adapter: LogitsAdapter, size: int = 64) -> int:
    """How many channels the network outputs, from one forward pass on a grey image."""
    module = adapter.module
    param = next(module.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    probe = LogitsAdapter(module, adapter.pad_multiple, binary=False)
    with torch.inference_mode():
        logits = probe(torch.zeros(1, 3, size, size, device=device))
    return int(logits.shape[1])


def logit_threshold(probability: float) -> float:
    """The logit of a probability threshold, rounded to float32: ``z > t`` then gives the
    same pixels on the device (float32 logits) and in numpy (the prediction's copy)."""
    if not 0 < probability < 1:
        raise UserError(f"A threshold must be a probability between 0 and 1, not "
                        f"{probability!r}.")
    return float(np.float32(math.log(probability / (1 - probability))))


# -- the guard for softmax cards on multi-label models -------------------------------------
#: a pixel "in no class" for the hint: every channel's logit below logit(0.25), i.e. every
#: sigmoid below 25 %
HINT_LOGIT = logit_threshold(0.25)
#: the hint is given when at least this share of the image is such pixels
HINT_SHARE = 0.05


def multilabel_hint(max_logits: torch.Tensor) -> str:
    """A one-line hint when a softmax model's logits look like independent sigmoids' ("" if
    not), from each pixel's largest logit (what the argmax computes anyway: no extra pass).

    Why this test: softmax cross-entropy's gradient sums to zero over the classes, so
    training leaves the class-mean logit where initialisation put it (near 0) and moves
    the winner above it: a trained softmax model's largest logit is positive almost
    everywhere. A model trained with one sigmoid per class (binary cross-entropy or Dice
    in multi-label mode) pushes every absent class's logit below 0, so wherever no class
    is present (the paper around a text, the brain around a tumour) *every* logit is
    clearly negative. Untrained weights tell nothing about training: callers skip them.
    """
    if max_logits.numel() == 0:
        return ""
    share = float((max_logits < HINT_LOGIT).float().mean())
    if share < HINT_SHARE:
        return ""
    return (f"every class's logit is below {HINT_LOGIT:.1f} (sigmoid < 25 %) at "
            f"{share:.0%} of the pixels, as in a model with one sigmoid per class: if its "
            "classes may overlap, set outputs = \"multilabel\" in its model card's [model] "
            "section (the argmax shown now gives every pixel a class).")
