"""Segmentation architectures, their weights and their layers.

A :class:`LoadedModel` is an eval-mode module on a device with its class names, the
origin of its weights (``default``, ``untrained`` or a file path) and its default
Grad-CAM layer. Parameters never require grad: attribution code asks for gradients
only where it needs them (from the chosen layer onwards).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn
from torchvision.models import segmentation as tv_seg

from .catalog import BUILTIN_ARCHITECTURES, DEFAULT_ARCHITECTURE
from .devices import resolve_device
from .errors import UserError
from .jobs import JobState

VOC_CATEGORIES: tuple[str, ...] = tuple(
    tv_seg.FCN_ResNet101_Weights.COCO_WITH_VOC_LABELS_V1.meta["categories"]
)

UNTRAINED_SEED = 0


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


def _torchvision_builder(fn: Callable[..., nn.Module], aux: bool) -> Callable[[int], nn.Module]:
    def build(num_classes: int) -> nn.Module:
        kwargs: dict = {"weights": None, "weights_backbone": None, "num_classes": num_classes}
        if aux:
            kwargs["aux_loss"] = False  # the aux head only costs time: we never read it
        return fn(**kwargs)

    return build


ARCHITECTURES: dict[str, Architecture] = {}


def register_architecture(arch: Architecture) -> None:
    """Add an architecture (tests register tiny ones)."""
    ARCHITECTURES[arch.name] = arch


_TORCHVISION = {  # name: (builder, weights enum, has an aux head)
    "fcn_resnet50": (tv_seg.fcn_resnet50, tv_seg.FCN_ResNet50_Weights, True),
    "fcn_resnet101": (tv_seg.fcn_resnet101, tv_seg.FCN_ResNet101_Weights, True),
    "deeplabv3_resnet50": (tv_seg.deeplabv3_resnet50, tv_seg.DeepLabV3_ResNet50_Weights, True),
    "deeplabv3_resnet101": (tv_seg.deeplabv3_resnet101, tv_seg.DeepLabV3_ResNet101_Weights,
                            True),
    "deeplabv3_mobilenet_v3_large": (tv_seg.deeplabv3_mobilenet_v3_large,
                                     tv_seg.DeepLabV3_MobileNet_V3_Large_Weights, True),
    "lraspp_mobilenet_v3_large": (tv_seg.lraspp_mobilenet_v3_large,
                                  tv_seg.LRASPP_MobileNet_V3_Large_Weights, False),
}

for _info in BUILTIN_ARCHITECTURES.values():
    _fn, _weights, _aux = _TORCHVISION[_info.name]
    _member = _weights.COCO_WITH_VOC_LABELS_V1
    register_architecture(
        Architecture(
            name=_info.name,
            build=_torchvision_builder(_fn, _aux),
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
        raise UserError(f"Unknown model '{name}': choose one of {known}.") from None


@dataclass
class LoadedModel:
    """An eval-mode segmentation model ready for analysis."""

    arch: Architecture
    module: nn.Module
    device: torch.device
    weights: str  # 'default', 'untrained' or the path of a state-dict file
    categories: tuple[str, ...] = field(default=VOC_CATEGORIES)

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
    def weights_label(self) -> str:
        return "untrained (random, seeded: predictions are meaningless)" if self.untrained \
            else self.weights

    def logits(self, batch: torch.Tensor) -> torch.Tensor:
        """The model's per-pixel class scores, N x C x H x W."""
        return self.module(batch)["out"]

    def layer(self, path: str | None = None) -> nn.Module:
        return get_layer(self.module, path or self.arch.default_layer)


_INDEX = re.compile(r"\[(\d+)\]")


def normalize_layer_path(path: str) -> str:
    """'backbone.layer4[2].conv3' and 'backbone.layer4.2.conv3' name the same layer."""
    return _INDEX.sub(r".\1", path.strip()).strip(".")


def get_layer(module: nn.Module, path: str) -> nn.Module:
    dotted = normalize_layer_path(path)
    try:
        return module.get_submodule(dotted)
    except AttributeError:
        raise UserError(
            f"Layer '{path}' does not exist in this model: give a dotted path such as "
            "'backbone.layer4.2.conv3' (segexplorer layers MODEL lists them)."
        ) from None


def list_layers(module: nn.Module) -> list[tuple[str, str]]:
    """(dotted path, module type) for every named submodule, in definition order."""
    return [(name, type(sub).__name__) for name, sub in module.named_modules() if name]


def build_untrained(arch: Architecture, num_classes: int | None = None) -> nn.Module:
    """The architecture with seeded random weights (same weights on every call)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(UNTRAINED_SEED)
        return arch.build(num_classes or len(arch.categories))


def load_model(
    name: str = DEFAULT_ARCHITECTURE,
    weights: str = "default",
    device: str | torch.device | None = "auto",
    *,
    allow_download: bool = True,
    state: JobState | None = None,
) -> LoadedModel:
    """Build ``name`` with ``weights`` ('default', 'untrained' or a file path) on ``device``."""
    from .weights import load_state_dict_for  # avoids a cycle: weights needs Architecture

    arch = get_architecture(name)
    torch_device = device if isinstance(device, torch.device) else resolve_device(device)
    module = build_untrained(arch)
    if weights != "untrained":
        state_dict = load_state_dict_for(arch, weights, allow_download=allow_download,
                                         state=state)
        _load_into(module, state_dict, arch, weights)
    module.eval().requires_grad_(False)
    try:
        module.to(torch_device)
    except (RuntimeError, AssertionError) as exc:
        raise UserError(f"Could not move the model to {torch_device}: {exc}. "
                        "Try --device cpu.") from None
    # cuDNN autotuning (torch.backends.cudnn.benchmark) is left as the process has it
    # (PyTorch's default: off). Measured on an H200 (docs/performance.md): its search for
    # a batch of ablated images offered cuDNN all free memory as workspace (a 134 GB
    # peak) and took 7 to 12 s, and it runs again for every new shape (and tensor
    # alignment), for 20 % on later passes: not a trade for an interactive tool.
    label = weights if weights in ("default", "untrained") else str(weights)
    return LoadedModel(arch=arch, module=module, device=torch_device, weights=label,
                       categories=arch.categories)


def _load_into(module: nn.Module, state_dict: dict, arch: Architecture, source: str) -> None:
    expected = module.state_dict()
    # The aux head is trained with the model but never used for prediction: drop it.
    state_dict = {k: v for k, v in state_dict.items() if not k.startswith("aux_classifier.")}
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} expected key(s) missing (e.g. '{missing[0]}')")
        if unexpected:
            parts.append(f"{len(unexpected)} unknown key(s) (e.g. '{unexpected[0]}')")
        raise UserError(
            f"Weights file '{source}' is not a {arch.name} state dict: "
            + "; ".join(parts)
            + ". Pick the matching --model or a file saved from this architecture."
        )
    for key, tensor in expected.items():
        got = state_dict[key]
        if not isinstance(got, torch.Tensor):
            raise UserError(f"Weights file '{source}' holds a non-tensor under '{key}'.")
        if tuple(got.shape) != tuple(tensor.shape):
            hint = ""
            if key.startswith("classifier.") and got.dim() >= 1 and tensor.dim() >= 1 \
                    and got.shape[0] != tensor.shape[0] and key.endswith(("weight", "bias")):
                hint = (f" The file predicts {got.shape[0]} classes; {arch.name} here expects "
                        f"{tensor.shape[0]} ({len(arch.categories)} classes: "
                        f"{', '.join(arch.categories[:3])}, ...).")
            raise UserError(
                f"Weights file '{source}' does not fit {arch.name}: '{key}' has shape "
                f"{tuple(got.shape)}, expected {tuple(tensor.shape)}.{hint}"
            )
        if got.is_floating_point() and not bool(torch.isfinite(got).all()):
            raise UserError(
                f"Weights file '{source}' is damaged: '{key}' contains NaN or infinite "
                "values (a diverged training run?). Use a checkpoint from before it diverged."
            )
    module.load_state_dict(state_dict, strict=True)


def layer_output_shapes(module: nn.Module, batch: torch.Tensor) -> dict[str, tuple[int, ...]]:
    """``{dotted path: output shape}`` for every submodule that outputs one tensor.

    One forward pass with hooks on every layer (for the window's layer picker).
    """
    shapes: dict[str, tuple[int, ...]] = {}
    handles = []
    for name, sub in module.named_modules():
        if not name:
            continue

        def hook(_module, _inputs, output, name=name):
            if isinstance(output, torch.Tensor) and name not in shapes:
                shapes[name] = tuple(int(d) for d in output.shape)

        handles.append(sub.register_forward_hook(hook))
    try:
        with torch.inference_mode():
            module(batch)
    finally:
        for handle in handles:
            handle.remove()
    return shapes
