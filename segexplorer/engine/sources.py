"""Building the network a model card describes, from each source, offline.

* ``torchvision``: the six segmentation builders with any class count (read from the
  weights file when the card lists no classes);
* ``smp``: segmentation_models_pytorch, built with ``encoder_weights=None`` (no
  download), then the card's state dict loaded;
* ``huggingface``: transformers' ``AutoModelForSemanticSegmentation`` from a local folder
  with ``local_files_only=True`` (never a hub call), class names from ``id2label``,
  mean, std and size from the folder's ``preprocessor_config.json``;
* ``python``: the card's ``factory = "file.py:function"``: the user's own code, run only
  because the card asks for it.

Weights are state dicts read with ``torch.load(weights_only=True)`` or safetensors.
This module builds modules and facts; ``models.load_model`` turns them into a
:class:`~segexplorer.engine.models.LoadedModel`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchvision.models import segmentation as tv_seg

from .cards import ModelCard
from .errors import UserError, first_line
from .image import IMAGENET, Normalization
from .weights import infer_num_classes, load_into, read_state_dict

UNTRAINED_SEED = 0

# name: (builder, weights enum, has an aux head)
TORCHVISION_BUILDERS: dict[str, tuple[Callable[..., nn.Module], Any, bool]] = {
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

SMP_ARCHITECTURES = ("Unet", "UnetPlusPlus", "FPN", "PSPNet", "DeepLabV3", "DeepLabV3Plus",
                     "Linknet", "MAnet", "PAN", "UPerNet", "Segformer", "DPT")


def torchvision_builder(name: str, **options: Any) -> Callable[[int], nn.Module]:
    """num_classes -> the untrained torchvision model ``name`` (no aux head)."""
    fn, _weights, aux = TORCHVISION_BUILDERS[name]

    def build(num_classes: int) -> nn.Module:
        kwargs: dict[str, Any] = {"weights": None, "weights_backbone": None,
                                  "num_classes": num_classes, **options}
        if aux:
            kwargs["aux_loss"] = False  # the aux head only costs time: we never read it
        return fn(**kwargs)

    return build


def seeded(build: Callable[[], nn.Module]) -> nn.Module:
    """``build()`` with seeded random initialisation (same weights on every call)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(UNTRAINED_SEED)
        return build()


@dataclass
class CardBuild:
    """What building a card gives: the network and the facts the card and source tell."""

    module: nn.Module
    weights_label: str  # 'untrained', 'default', or the weights file / folder
    num_outputs: int | None  # output channels when known without running the model
    categories: tuple[str, ...] | None  # names the source knows (HF id2label)
    normalization: Normalization
    size: int | None  # the source's working size (HF processor), if any
    pad_multiple: int = 1
    default_layer: str | None = None  # the source's usual Grad-CAM layer, if it has one


@contextmanager
def _offline() -> Iterator[None]:
    """No hub access while a source builds: every file must be local."""
    saved = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    os.environ.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _fail(card: ModelCard, message: str) -> UserError:
    return UserError(f"Model card '{card.path}': {message}")


def _card_normalization(card: ModelCard, default: Normalization) -> Normalization:
    return Normalization(card.mean or default.mean, card.std or default.std)


def build_card(card: ModelCard, weights: str | Path | None) -> CardBuild:
    """Build ``card``'s network with ``weights`` (the card's unless overridden)."""
    with _offline():
        if card.source == "torchvision":
            return _torchvision(card, weights)
        if card.source == "smp":
            return _smp(card, weights)
        if card.source == "huggingface":
            return _huggingface(card, weights)
        return _python(card, weights)


def _weights_dict(card: ModelCard, weights: str | Path) -> dict[str, Any]:
    try:
        return read_state_dict(weights)
    except UserError as exc:
        raise _fail(card, str(exc)) from None


def _fit(card: ModelCard, build: Callable[[int], nn.Module], weights: str | Path | None,
         default_count: int, what: str) -> tuple[nn.Module, str, int]:
    """Build for the card's (or the weights file's) class count and load the weights.

    The count is the card's when it lists classes (a binary model may list 1 or 2 names
    for its 1 output channel), else the one the weights file was saved with: a model
    built for ``default_count`` classes is compared with the file, layer by layer.
    """
    classes = card.classes
    if weights in (None, "untrained"):
        count = len(classes) if classes else default_count
        return seeded(lambda: build(count)), "untrained", count
    state_dict = _weights_dict(card, weights)
    probe = seeded(lambda: build(default_count))
    found = infer_num_classes(probe.state_dict(), state_dict, default_count)
    count = found or default_count
    if classes is not None and len(classes) != count and not (count == 1 and len(classes) <= 2):
        raise _fail(card, f"{card.classes_origin()} has {len(classes)} classes but the "
                          f"weights '{weights}' predict {count}: fix the class names or the "
                          "weights.")
    module = probe if count == default_count else seeded(lambda: build(count))
    try:
        load_into(module, state_dict, what, str(weights), hint="architecture in the card")
    except UserError as exc:
        raise _fail(card, str(exc)) from None
    return module, str(weights), count


def _torchvision(card: ModelCard, weights: str | Path | None) -> CardBuild:
    name = card.architecture or ""
    if name not in TORCHVISION_BUILDERS:
        raise _fail(card, f"[model] architecture '{name}' is not a torchvision segmentation "
                          f"builder: use one of {', '.join(TORCHVISION_BUILDERS)}.")
    build = torchvision_builder(name, **card.options)
    if weights == "default":
        from .weights import cached_weights_path

        _fn, enum, _aux = TORCHVISION_BUILDERS[name]
        member = enum.COCO_WITH_VOC_LABELS_V1
        path = cached_weights_path(_EnumArch(member))  # type: ignore[arg-type]  # duck-typed
        if path is None or not path.is_file():
            raise _fail(card, f"weights = \"default\" needs torchvision's {name} weights in "
                              f"its cache ({path}); give a weights file instead.")
        weights = path
    module, label, count = _fit(card, build, weights, 21, name)
    from .catalog import BUILTIN_ARCHITECTURES

    return CardBuild(module, label, count, None, _card_normalization(card, IMAGENET), card.size,
                     default_layer=BUILTIN_ARCHITECTURES[name].default_layer)


@dataclass(frozen=True)
class _EnumArch:
    """Just enough of an Architecture for ``cached_weights_path``."""

    weights_enum: Any

    @property
    def weights_filename(self) -> str | None:
        url = getattr(self.weights_enum, "url", None)
        return url.rsplit("/", 1)[-1] if url else None


def _smp(card: ModelCard, weights: str | Path | None) -> CardBuild:
    try:
        import segmentation_models_pytorch as smp
    except ImportError:
        raise _fail(card, "source = \"smp\" needs segmentation-models-pytorch: "
                          + _install_hint("segmentation-models-pytorch")) from None
    arch = card.architecture or ""
    cls = next((getattr(smp, a) for a in SMP_ARCHITECTURES
                if a.lower() == arch.lower() and hasattr(smp, a)), None)
    if cls is None:
        raise _fail(card, f"[model] architecture '{arch}' is not an smp model: use one of "
                          f"{', '.join(a for a in SMP_ARCHITECTURES if hasattr(smp, a))}.")
    encoder = card.encoder or "resnet34"
    options = dict(card.options)

    def build(num_classes: int) -> nn.Module:
        try:
            built: nn.Module = cls(encoder_name=encoder, encoder_weights=None,
                                   classes=num_classes, **options)
            return built
        except UserError:
            raise
        except Exception as exc:  # noqa: BLE001 - smp's own checks (unknown encoder, ...)
            raise _fail(card, f"smp could not build {arch} with encoder '{encoder}' "
                              f"({type(exc).__name__}: {first_line(exc, 120)}).") from None

    module, label, count = _fit(card, build, weights, 1, f"smp {arch} ({encoder})")
    pad = 1
    if getattr(module, "requires_divisible_input_shape", True):
        pad = int(getattr(getattr(module, "encoder", None), "output_stride", 1) or 1)
    return CardBuild(module, label, count, None, _card_normalization(card, IMAGENET),
                     card.size, pad_multiple=pad)


def _install_hint(package: str) -> str:
    if getattr(sys, "frozen", False):  # the application bundle ships without it
        return ("this application bundle does not include it; install SegExplorer with "
                "pip (pip install 'segexplorer[models]') to explain such models.")
    return f"pip install {package} (or pip install 'segexplorer[models]')."


def _huggingface(card: ModelCard, weights: str | Path | None) -> CardBuild:
    folder = Path(str(weights)) if weights not in (None, "untrained") else None
    if folder is None or not folder.is_dir():
        raise _fail(card, "source = \"huggingface\" needs [model] weights = the folder that "
                          "save_pretrained wrote.")
    if not (folder / "config.json").is_file():
        raise _fail(card, f"the folder '{folder}' has no config.json: give the folder that "
                          "save_pretrained wrote.")
    try:
        from transformers import AutoModelForSemanticSegmentation
    except ImportError:
        raise _fail(card, "source = \"huggingface\" needs transformers: "
                          + _install_hint("transformers")) from None
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # no progress bars
    hf_logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    try:
        model = AutoModelForSemanticSegmentation.from_pretrained(
            folder, local_files_only=True, trust_remote_code=False)
        config = model.config
    except Exception as exc:  # noqa: BLE001 - transformers' errors name the problem
        raise _fail(card, f"transformers could not load '{folder}' as a semantic-"
                          f"segmentation model ({type(exc).__name__}: "
                          f"{first_line(exc, 160)}).") from None
    id2label = getattr(config, "id2label", None) or {}
    count = int(getattr(config, "num_labels", len(id2label)) or len(id2label))
    names = tuple(str(id2label.get(i, id2label.get(str(i), f"class {i}")))
                  for i in range(count)) if id2label else None
    if card.classes is not None and len(card.classes) != count \
            and not (count == 1 and len(card.classes) <= 2):
        raise _fail(card, f"{card.classes_origin()} has {len(card.classes)} classes but the "
                          f"model in '{folder}' predicts {count} (config.json num_labels).")
    normalization, size = _hf_preprocessing(folder)
    return CardBuild(model, str(folder), count, names, _card_normalization(card, normalization),
                     card.size or size)


def _hf_preprocessing(folder: Path) -> tuple[Normalization, int | None]:
    """Mean, std and size from the folder's image-processor config (ImageNet's if none)."""
    path = folder / "preprocessor_config.json"
    if not path.is_file():
        return IMAGENET, None
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return IMAGENET, None
    mean, std = config.get("image_mean"), config.get("image_std")
    normalization = IMAGENET
    if (config.get("do_normalize", True) and isinstance(mean, list) and isinstance(std, list)
            and len(mean) == 3 and len(std) == 3):
        normalization = Normalization(tuple(float(v) for v in mean),  # type: ignore[arg-type]
                                      tuple(float(v) for v in std))  # type: ignore[arg-type]
    size = config.get("size")
    side = None
    if isinstance(size, dict):
        side = size.get("shortest_edge") or (min(size["height"], size["width"])
                                             if "height" in size and "width" in size else None)
    elif isinstance(size, int):
        side = size
    return normalization, int(side) if side else None


def _python(card: ModelCard, weights: str | Path | None) -> CardBuild:
    assert card.factory is not None
    file, func_name = card.factory
    label = f"{file.name}:{func_name}"
    digest = hashlib.sha1(str(file).encode()).hexdigest()[:10]
    module_name = f"segexplorer_user_{file.stem}_{digest}"
    sys.path.insert(0, str(file.parent))  # the factory may import its neighbours
    try:
        spec = importlib.util.spec_from_file_location(module_name, file)
        if spec is None or spec.loader is None:
            raise _fail(card, f"[model] factory file '{file}' cannot be imported.")
        user_module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = user_module
        try:
            spec.loader.exec_module(user_module)
            factory = getattr(user_module, func_name, None)
            if not callable(factory):
                raise _fail(card, f"[model] factory: '{file.name}' has no function "
                                  f"'{func_name}'.")
            module = seeded(lambda: factory(**card.options))
        except UserError:
            raise
        except Exception as exc:  # noqa: BLE001 - the user's code: say what it raised
            raise _fail(card, f"the factory {label} raised {type(exc).__name__}: "
                              f"{first_line(exc, 160)}") from None
    finally:
        with suppress(ValueError):
            sys.path.remove(str(file.parent))
    if isinstance(module, torch.jit.ScriptModule):
        raise _fail(card, f"the factory {label} returned a TorchScript module, which cannot "
                          "be explained (its layers take no hooks and no gradients switch): "
                          "return the torch.nn.Module it was scripted from.")
    if not isinstance(module, nn.Module):
        raise _fail(card, f"the factory {label} returned a {type(module).__name__}, not a "
                          "torch.nn.Module.")
    weights_label = f"{label} (the factory's own weights)"
    if weights not in (None, "untrained"):
        state_dict = _weights_dict(card, weights)
        try:
            load_into(module, state_dict, label, str(weights), hint="factory in the card")
        except UserError as exc:
            raise _fail(card, str(exc)) from None
        weights_label = str(weights)
    elif weights == "untrained":
        weights_label = "untrained"
    return CardBuild(module, weights_label, None, None, _card_normalization(card, IMAGENET),
                     card.size)
