"""Segmentation models: the built-in architectures, model cards, and what a loaded model is.

A :class:`LoadedModel` is an eval-mode module on a device with its class names, its
palette, its input normalisation, the origin of its weights (``default``, ``untrained``,
a file, or a model card's) and its default Grad-CAM layer. Parameters never require
grad: attribution code asks for gradients only where it needs them (from the chosen
layer onwards).

:func:`load_model` takes a built-in name (torchvision's six VOC models, and the tiny
ones tests register) or the path of a model card (``engine.cards``, built by
``engine.sources``): both give the same :class:`LoadedModel`, so every method, view and
export works unchanged for torchvision, smp, Hugging Face and a user's own code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..render.palette import class_colors
from .architecture import VOC_CATEGORIES, Architecture
from .cards import ModelCard, is_card_path, read_card
from .catalog import (
    BINARY,
    BUILTIN_ARCHITECTURES,
    DEFAULT_ARCHITECTURE,
    DEFAULT_SIZE,
    MULTILABEL,
    SOFTMAX,
)
from .devices import resolve_device
from .errors import UserError
from .image import IMAGENET, Normalization
from .jobs import JobState
from .layers import (
    LayerInfo,
    audit_layers,
    check_layer,
    get_layer,
    guess_default_layer,
    layer_output_shapes,
    list_layers,
    normalize_layer_path,
)
from .outputs import LogitsAdapter, logit_threshold, output_channels
from .sources import TORCHVISION_BUILDERS, UNTRAINED_SEED, build_card, torchvision_builder
from .weights import (
    WeightsInfo,
    cached_weights_path,
    expected_size,
    infer_num_classes,
    load_into,
    load_state_dict_for,
)

__all__ = ["ARCHITECTURES", "DEFAULT_ARCHITECTURE", "UNTRAINED_SEED", "VOC_CATEGORIES",
           "Architecture", "LayerInfo", "LoadedModel", "audit_layers", "build_untrained",
           "get_architecture", "get_layer", "layer_output_shapes", "list_layers", "load_model",
           "normalize_layer_path", "register_architecture", "weights_table"]

ARCHITECTURES: dict[str, Architecture] = {}


def register_architecture(arch: Architecture) -> None:
    """Add an architecture (tests register tiny ones)."""
    ARCHITECTURES[arch.name] = arch


for _info in BUILTIN_ARCHITECTURES.values():
    _member = TORCHVISION_BUILDERS[_info.name][1].COCO_WITH_VOC_LABELS_V1
    register_architecture(
        Architecture(
            name=_info.name,
            build=torchvision_builder(_info.name),
            default_layer=_info.default_layer,
            weights_enum=_member,
            categories=tuple(_member.meta["categories"]),
            description=_info.description,
        )
    )


def get_architecture(name: str) -> Architecture:
    try:
        return ARCHITECTURES[name]
    except KeyError:
        known = ", ".join(sorted(ARCHITECTURES))
        raise UserError(f"Unknown model '{name}': choose one of {known}, or give a model "
                        "card (a .toml file; see docs/models.md).") from None


def weights_table() -> list[WeightsInfo]:
    """Each architecture, its weights file, whether it is cached, its size."""
    rows = []
    for arch in ARCHITECTURES.values():
        path = cached_weights_path(arch)
        cached = bool(path and path.is_file())
        size = path.stat().st_size if cached and path else expected_size(arch)
        rows.append(WeightsInfo(arch.name, arch.description, arch.weights_filename,
                                arch.weights_url, str(path) if path else None, cached, size))
    return rows


@dataclass
class LoadedModel:
    """An eval-mode segmentation model ready for analysis.

    ``module`` is the network itself (layer paths are relative to it); ``logits`` goes
    through the adapter that turns its output into N x C x H x W logits at input size
    (``engine.outputs``), so every method and every Captum call sees the same function.
    """

    arch: Architecture  # for a model card: one made from the card
    module: nn.Module
    device: torch.device
    weights: str  # 'default', 'untrained' or the path of a weights file or folder
    categories: tuple[str, ...] = field(default=VOC_CATEGORIES)
    adapter: LogitsAdapter | None = None  # None: made from the module (tensor or 'out')
    normalization: Normalization = IMAGENET
    default_size: int = DEFAULT_SIZE
    palette: np.ndarray | None = None  # C x 3 uint8 (None: VOC's, extended)
    card: ModelCard | None = None
    source: str = "torchvision"
    outputs: str = SOFTMAX  # softmax | multilabel | binary (engine.catalog.OUTPUT_KINDS)
    threshold: float = 0.5  # multilabel: class c is present where sigmoid(z_c) > this

    def __post_init__(self) -> None:
        if self.adapter is None:
            self.adapter = LogitsAdapter(self.module)
        if self.adapter.binary:
            self.outputs = BINARY

    @property
    def multilabel(self) -> bool:
        """Independent sigmoids, one per class: masks z_c > logit(threshold) may overlap."""
        return self.outputs == MULTILABEL

    @property
    def threshold_logit(self) -> float:
        """The multi-label threshold as a logit (float32): 0 at the default 0.5."""
        return logit_threshold(self.threshold)

    @property
    def name(self) -> str:
        return self.arch.name

    @property
    def untrained(self) -> bool:
        return self.weights == "untrained"

    @property
    def num_classes(self) -> int:
        return len(self.categories)

    @property
    def binary(self) -> bool:
        """One output channel, explained as background / foreground."""
        return bool(self.adapter is not None and self.adapter.binary)

    @property
    def default_layer(self) -> str:
        return self.arch.default_layer

    @property
    def colors(self) -> np.ndarray:
        """C x 3 uint8 class colours: the card's palette, else VOC's (extended beyond 21);
        a multi-label model's skip VOC's black (the colour of "no class")."""
        if self.palette is not None:
            return self.palette
        if self.multilabel:
            return class_colors(max(self.num_classes + 1, 21))[1:self.num_classes + 1]
        return class_colors(max(self.num_classes, 21))[: self.num_classes]

    @property
    def weights_label(self) -> str:
        return "untrained (random, seeded: predictions are meaningless)" if self.untrained \
            else self.weights

    def logits(self, batch: torch.Tensor) -> torch.Tensor:
        """The model's per-pixel class scores, N x C x H x W."""
        assert self.adapter is not None
        return self.adapter(batch)

    def layer(self, path: str | None = None) -> nn.Module:
        return get_layer(self.module, path or self.arch.default_layer)

    def audit_layers(self, size: int = 64) -> list[LayerInfo]:
        """Every layer, its last output shape for a ``size`` x ``size`` input, and whether
        Grad-CAM can use it (one forward and one backward pass)."""
        batch = torch.zeros(1, 3, size, size, device=self.device)
        return audit_layers(self.module, self.logits, batch)

    def check_layer(self, path: str | None = None) -> LayerInfo:
        """The layer's facts, or its one-line refusal if Grad-CAM cannot use it (cheap:
        a 32 x 32 pass)."""
        return check_layer(self.module, self.logits, path or self.default_layer,
                           device=self.device)

    def describe(self) -> dict[str, Any]:
        """Where the model comes from and how its input and output are handled (JSON)."""
        info: dict[str, Any] = {"source": self.source, "num_classes": self.num_classes,
                      "normalization": {"mean": list(self.normalization.mean),
                                        "std": list(self.normalization.std)},
                      "default_layer": self.default_layer}
        info["outputs"] = self.outputs
        if self.binary:
            info["binary"] = ("one output channel z, explained as two classes: "
                              "background = -z, foreground = z (foreground where z > 0)")
        if self.multilabel:
            info["threshold"] = self.threshold
            info["multilabel"] = (f"one sigmoid per class: class c is present where "
                                  f"z_c > {self.threshold_logit:g} (p > {self.threshold:g}); "
                                  "classes may overlap and a pixel may be in none")
        if self.adapter is not None and self.adapter.pad_multiple > 1:
            info["input_padding"] = (f"bottom and right padded with zeros up to a multiple "
                                     f"of {self.adapter.pad_multiple}, output cropped back")
        if self.card is not None:
            info["card"] = str(self.card.path)
            info["card_name"] = self.card.name
        return info


def build_untrained(arch: Architecture, num_classes: int | None = None) -> nn.Module:
    """The architecture with seeded random weights (same weights on every call)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(UNTRAINED_SEED)
        return arch.build(num_classes or len(arch.categories))


def generic_names(count: int) -> tuple[str, ...]:
    return tuple(f"class {i}" for i in range(count))


def load_model(
    name: str | Path | ModelCard = DEFAULT_ARCHITECTURE,
    weights: str | None = None,
    device: str | torch.device | None = "auto",
    *,
    allow_download: bool = True,
    state: JobState | None = None,
) -> LoadedModel:
    """Build ``name`` on ``device``: a built-in architecture or a model card.

    ``weights``: for a built-in, 'default' (torchvision's cache, downloaded if allowed),
    'untrained' or a weights file (its class count may differ from the architecture's:
    the classes are then called 'class 0', 'class 1', ...); for a card, None or
    'default' mean the card's own weights, and 'untrained' or a file overrides them.
    """
    torch_device = device if isinstance(device, torch.device) else resolve_device(device)
    if isinstance(name, ModelCard) or is_card_path(name):
        card = name if isinstance(name, ModelCard) else read_card(name)
        return _load_card(card, None if weights == "default" else weights, torch_device)
    arch = get_architecture(str(name))
    weights = weights or "default"
    categories = arch.categories
    if weights == "untrained":
        module = build_untrained(arch)
    else:
        state_dict = load_state_dict_for(arch, weights, allow_download=allow_download,
                                         state=state)
        module = build_untrained(arch)
        count = None
        if weights != "default":
            count = infer_num_classes(module.state_dict(), state_dict, len(categories))
        if count is not None:  # a fine-tuned copy with its own classes
            module = build_untrained(arch, count)
            categories = generic_names(count)
        load_into(module, state_dict, arch.name, weights, categories)
    label = weights if weights in ("default", "untrained") else str(weights)
    return _finish(LoadedModel(arch=arch, module=module, device=torch_device, weights=label,
                               categories=categories), torch_device)


def _finish(model: LoadedModel, device: torch.device) -> LoadedModel:
    model.module.eval().requires_grad_(False)
    try:
        model.module.to(device)
    except (RuntimeError, AssertionError) as exc:
        raise UserError(f"Could not move the model to {device}: {exc}. "
                        "Try --device cpu.") from None
    # cuDNN autotuning (torch.backends.cudnn.benchmark) is left as the process has it
    # (PyTorch's default: off). Measured on an H200 (docs/performance.md): its search for
    # a batch of ablated images offered cuDNN all free memory as workspace (a 134 GB
    # peak) and took 7 to 12 s, and it runs again for every new shape (and tensor
    # alignment), for 20 % on later passes: not a trade for an interactive tool.
    return model


def _load_card(card: ModelCard, weights: str | None, device: torch.device) -> LoadedModel:
    built = build_card(card, weights if weights is not None else card.weights)
    module = built.module.eval().requires_grad_(False)
    channels = built.num_outputs
    if channels is None:  # the user's own code: ask the model
        try:
            channels = output_channels(LogitsAdapter(module, built.pad_multiple))
        except UserError as exc:
            raise UserError(f"Model card '{card.path}': {exc}") from None
        except Exception as exc:  # noqa: BLE001 - the user's model failed on a test input
            raise UserError(f"Model card '{card.path}': the model failed on a 64 x 64 test "
                            f"image ({type(exc).__name__}: {str(exc)[:160]}).") from None
    outputs = _card_outputs(card, channels)
    binary = outputs == BINARY
    categories = _card_categories(card, built.categories, channels, binary)
    palette = None
    if card.palette is not None:
        if len(card.palette) != len(categories):
            raise UserError(f"Model card '{card.path}': [model] palette has "
                            f"{len(card.palette)} colours for {len(categories)} classes: "
                            "give one [R, G, B] per class.")
        palette = np.array(card.palette, dtype=np.uint8)
    adapter = LogitsAdapter(module, built.pad_multiple, binary=binary)
    layer = card.layer or built.default_layer
    if layer is not None:
        try:  # fail now, naming the card, if it does not exist or cannot be used
            check_layer(module, adapter, layer)
        except UserError as exc:
            raise UserError(f"Model card '{card.path}': [explain] {exc}") from None
        layer = normalize_layer_path(layer)
    else:
        layer = guess_default_layer(module, channels, adapter,
                                    torch.zeros(1, 3, 64, 64))
    arch = Architecture(name=card.name, build=lambda n: module, default_layer=layer,
                        categories=categories,
                        description=f"{card.source} model card {card.path.name}")
    model = LoadedModel(arch=arch, module=module, device=device, weights=built.weights_label,
                        categories=categories, adapter=adapter,
                        normalization=built.normalization,
                        default_size=built.size or DEFAULT_SIZE, palette=palette, card=card,
                        source=card.source, outputs=outputs,
                        threshold=card.threshold if card.threshold is not None else 0.5)
    return _finish(model, device)


def _card_outputs(card: ModelCard, channels: int) -> str:
    """The card's ``outputs`` (default: binary for one channel, else softmax), refused in
    one line when the model's channel count contradicts it."""
    outputs = card.outputs or (BINARY if channels == 1 else SOFTMAX)
    if outputs == BINARY and channels != 1:
        raise UserError(f"Model card '{card.path}': [model] outputs = \"binary\" but the "
                        f"model outputs {channels} channels: a binary model has one; use "
                        "\"multilabel\" (one sigmoid per channel) or \"softmax\".")
    if outputs == SOFTMAX and channels == 1:
        raise UserError(f"Model card '{card.path}': [model] outputs = \"softmax\" but the "
                        "model outputs 1 channel (a softmax over one class is always 1): use "
                        "\"binary\" or \"multilabel\", or leave outputs out.")
    return outputs


def _card_categories(card: ModelCard, known: tuple[str, ...] | None,
                     channels: int, binary: bool = False) -> tuple[str, ...]:
    if binary:  # binary: background / foreground
        names = card.classes or known
        if names is None or len(names) == 1 and names[0].lower() in ("class 0", "label_0"):
            return ("background", "foreground")
        if len(names) == 1:
            return ("background", names[0])
        if len(names) == 2:
            return (names[0], names[1])
        raise UserError(f"Model card '{card.path}': the model outputs 1 channel (a binary "
                        f"model) but {card.classes_origin()} has {len(names)} classes: give "
                        "1 or 2 names.")
    names = card.classes or known
    if names is None:
        return generic_names(channels)
    if len(names) != channels:
        raise UserError(f"Model card '{card.path}': {card.classes_origin()} has {len(names)} "
                        f"classes but the model outputs {channels} channels: fix the class "
                        "names.")
    return names
