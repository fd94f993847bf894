"""Model cards: one small TOML file that says everything needed to explain a model.

Reading a card imports no torch (the window reads card names before torch has loaded)
and runs no code: the ``python`` source's factory runs only when the model is built,
and only because the card asks for it. Every mistake is a :class:`UserError` whose one
line names the card file and the key. Paths in a card are relative to the card.

See ``docs/models.md`` for a card per source.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .catalog import BINARY, DEFAULT_SIZE, MULTILABEL, OUTPUT_KINDS
from .errors import UserError, first_line

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

SOURCES = ("torchvision", "smp", "huggingface", "python")
CARD_SUFFIX = ".toml"

_MODEL_KEYS = {"name", "source", "architecture", "encoder", "weights", "classes", "labels",
               "palette", "factory", "options", "outputs", "threshold"}
_PREPROCESS_KEYS = {"size", "mean", "std"}
_EXPLAIN_KEYS = {"layer"}
_SECTIONS = {"model": _MODEL_KEYS, "preprocess": _PREPROCESS_KEYS, "explain": _EXPLAIN_KEYS}


@dataclass(frozen=True)
class ModelCard:
    """A parsed, checked model card (files resolved, nothing loaded yet)."""

    path: Path  # the card file
    name: str  # shown in the window's title and reports (default: the file's stem)
    source: str  # torchvision | smp | huggingface | python
    architecture: str | None = None  # torchvision builder / smp class name
    encoder: str | None = None  # smp encoder
    weights: Path | str | None = None  # a file, a folder (huggingface), or 'untrained'
    classes: tuple[str, ...] | None = None  # from `classes` or the labels file
    palette: tuple[tuple[int, int, int], ...] | None = None
    factory: tuple[Path, str] | None = None  # python: (file, function name)
    options: dict[str, Any] = field(default_factory=dict)  # keyword arguments of the builder
    size: int | None = None  # working size ([preprocess] size)
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    layer: str | None = None  # default Grad-CAM layer ([explain] layer)
    labels_file: Path | None = None  # where the classes came from, if from a labels file
    # softmax | multilabel | binary; None: softmax, or binary for a 1-channel model
    outputs: str | None = None
    threshold: float | None = None  # multilabel: a class is present where p > threshold

    def classes_origin(self) -> str:
        """How a message names where the class names came from."""
        return f"the labels file '{self.labels_file.name}'" if self.labels_file \
            else "[model] classes"

    @property
    def untrained(self) -> bool:
        return self.weights == "untrained"

    @property
    def runs_code(self) -> bool:
        """Whether building the model runs the user's own Python code."""
        return self.source == "python"

    def describe_weights(self) -> str:
        if self.weights is None:
            return "none (the factory's own)" if self.source == "python" else "none"
        return str(self.weights)


def is_card_path(text: str | Path) -> bool:
    """Whether ``text`` names a model card rather than a built-in architecture."""
    return str(text).lower().endswith(CARD_SUFFIX)


def _fail(card: Path, message: str) -> UserError:
    return UserError(f"Model card '{card}': {message}")


def read_card(path: str | Path) -> ModelCard:
    """Parse and check the card at ``path`` (no torch, no code run)."""
    card = Path(path).expanduser()
    if not card.exists():
        raise UserError(f"Model card '{card}' does not exist: check the path.")
    if card.is_dir():
        raise UserError(f"Model card '{card}' is a folder: pick the .toml file inside.")
    try:
        data = tomllib.loads(card.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise _fail(card, f"not valid TOML ({first_line(exc)}): fix the line it "
                          "names.") from None
    except UnicodeDecodeError:
        raise _fail(card, "not a UTF-8 text file: save it as UTF-8 TOML.") from None
    except OSError as exc:
        raise _fail(card, f"cannot be read ({first_line(exc)}).") from None
    return parse_card(data, card)


def parse_card(data: dict[str, Any], card: Path) -> ModelCard:
    """Check a card's parsed TOML (``card`` is where relative paths start)."""
    for section, value in data.items():
        if section not in _SECTIONS:
            raise _fail(card, f"unknown section [{section}]: use [model], [preprocess] and "
                              "[explain].")
        if not isinstance(value, dict):
            raise _fail(card, f"'{section}' must be a [{section}] table.")
        for key in value:
            if key not in _SECTIONS[section]:
                known = ", ".join(sorted(_SECTIONS[section]))
                raise _fail(card, f"unknown key [{section}] {key} (known keys: {known}).")
    model = data.get("model")
    if model is None:
        raise _fail(card, "no [model] section: add one with at least source = ...")
    base = card.parent

    def text(section: dict[str, Any], key: str, where: str = "model", required: bool = False) -> str | None:
        value = section.get(key)
        if value is None:
            if required:
                raise _fail(card, f"[{where}] {key} is missing.")
            return None
        if not isinstance(value, str) or not value.strip():
            raise _fail(card, f"[{where}] {key} must be a non-empty string.")
        return value.strip()

    source = text(model, "source")
    if source is None:
        raise _fail(card, f"[model] source is missing: use one of {', '.join(SOURCES)}.")
    if source not in SOURCES:
        raise _fail(card, f"[model] source '{source}' is unknown: use one of "
                          f"{', '.join(SOURCES)}.")
    architecture = text(model, "architecture", required=source in ("torchvision", "smp"))
    encoder = text(model, "encoder")
    if encoder is not None and source != "smp":
        raise _fail(card, "[model] encoder applies to source = \"smp\" only.")
    factory = None
    factory_text = text(model, "factory", required=source == "python")
    if factory_text is not None:
        if source != "python":
            raise _fail(card, "[model] factory applies to source = \"python\" only (it runs "
                              "your code).")
        file_part, sep, func = factory_text.rpartition(":")
        if not sep or not file_part or not func.isidentifier():
            raise _fail(card, f"[model] factory '{factory_text}' is not FILE.py:FUNCTION "
                              "(e.g. \"my_model.py:build\").")
        factory_file = (base / file_part).resolve()
        if not factory_file.is_file():
            raise _fail(card, f"[model] factory file '{factory_file}' does not exist.")
        factory = (factory_file, func)

    weights: Path | str | None = None
    weights_text = text(model, "weights", required=source in ("torchvision", "smp",
                                                              "huggingface"))
    if weights_text is not None:
        if weights_text in ("untrained", "default"):
            if weights_text == "default" and source != "torchvision":
                raise _fail(card, "[model] weights = \"default\" means torchvision's VOC "
                                  "weights: give a file or folder for this source.")
            weights = weights_text
        else:
            weights = (base / Path(weights_text).expanduser()).resolve()
            if not weights.exists():
                raise _fail(card, f"[model] weights '{weights}' does not exist.")
            if source == "huggingface" and not weights.is_dir():
                raise _fail(card, f"[model] weights '{weights}' must be the folder that "
                                  "save_pretrained wrote (config.json and the weights).")
            if source != "huggingface" and weights.is_dir():
                raise _fail(card, f"[model] weights '{weights}' is a folder: give the .pth, "
                                  ".pt or .safetensors file.")

    classes = _classes(model, card, base)
    labels = model.get("labels")
    labels_file = (base / labels).resolve() if isinstance(labels, str) else None
    # the palette's length is checked once the model's channel count is known (loading):
    # a labels file one line short must be reported as the labels file's mistake
    palette = _palette(model.get("palette"), card)
    outputs, threshold = _outputs(model, card, classes)
    options = model.get("options", {})
    if not isinstance(options, dict):
        raise _fail(card, "[model] options must be a table of keyword arguments.")

    pre = data.get("preprocess", {})
    size = pre.get("size")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 16):
        raise _fail(card, f"[preprocess] size must be a whole number of at least 16, not "
                          f"{size!r}.")
    mean = _triple(pre.get("mean"), card, "mean")
    std = _triple(pre.get("std"), card, "std")
    if std is not None and any(s <= 0 for s in std):
        raise _fail(card, "[preprocess] std values must be positive.")
    layer = text(data.get("explain", {}), "layer", where="explain")
    name = text(model, "name") or card.stem
    return ModelCard(path=card, name=name, source=source, architecture=architecture,
                     encoder=encoder, weights=weights, classes=classes, palette=palette,
                     factory=factory, options=dict(options), size=size, mean=mean, std=std,
                     layer=layer, labels_file=labels_file, outputs=outputs,
                     threshold=threshold)


def _outputs(model: dict[str, Any], card: Path, classes: tuple[str, ...] | None
             ) -> tuple[str | None, float | None]:
    """[model] outputs and threshold, checked against each other and the class names
    (the channel count is checked when the model is built)."""
    outputs = model.get("outputs")
    if outputs is not None and outputs not in OUTPUT_KINDS:
        raise _fail(card, f"[model] outputs = {outputs!r} is unknown: use "
                          + ", ".join(f'"{k}"' for k in OUTPUT_KINDS) + ".")
    threshold = model.get("threshold")
    if threshold is not None:
        if outputs != MULTILABEL:
            raise _fail(card, "[model] threshold applies to outputs = \"multilabel\" only "
                              "(each class's own sigmoid): add that, or remove threshold.")
        if (isinstance(threshold, bool) or not isinstance(threshold, (int, float))
                or not 0 < threshold < 1):
            raise _fail(card, f"[model] threshold must be a probability between 0 and 1 "
                              f"(exclusive), not {threshold!r}.")
        threshold = float(threshold)
    if outputs == BINARY and classes is not None and len(classes) > 2:
        raise _fail(card, f"[model] outputs = \"binary\" is one output channel "
                          f"(background / foreground) but {len(classes)} classes are named: "
                          "give 1 or 2 names, or use \"multilabel\" or \"softmax\".")
    return outputs, threshold


def _classes(model: dict[str, Any], card: Path, base: Path) -> tuple[str, ...] | None:
    classes, labels = model.get("classes"), model.get("labels")
    if classes is not None and labels is not None:
        raise _fail(card, "give [model] classes or labels, not both.")
    if classes is not None:
        if (not isinstance(classes, list) or not classes
                or not all(isinstance(c, str) and c.strip() for c in classes)):
            raise _fail(card, "[model] classes must be a list of non-empty names.")
        names = tuple(c.strip() for c in classes)
    elif labels is not None:
        if not isinstance(labels, str):
            raise _fail(card, "[model] labels must be the path of a text file.")
        path = (base / labels).resolve()
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            raise _fail(card, f"[model] labels file '{path}' does not exist.") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise _fail(card, f"[model] labels file '{path}' cannot be read "
                              f"({first_line(exc)}).") from None
        while lines and not lines[-1].strip():
            lines.pop()
        if not lines:
            raise _fail(card, f"[model] labels file '{path}' is empty: one class name per "
                              "line.")
        blank = next((i for i, line in enumerate(lines) if not line.strip()), None)
        if blank is not None:
            raise _fail(card, f"[model] labels file '{path}' has an empty line {blank + 1}: "
                              "one class name per line, in class-index order.")
        names = tuple(line.strip() for line in lines)
    else:
        return None
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise _fail(card, f"class name '{dupes[0]}' appears more than once.")
    return names


def _palette(value: object, card: Path) -> tuple[tuple[int, int, int], ...] | None:
    if value is None:
        return None
    if not (isinstance(value, list) and value and all(
            isinstance(c, list) and len(c) == 3
            and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in c)
            for c in value)):
        raise _fail(card, "[model] palette must be a list of [R, G, B] with values 0-255.")
    return tuple((int(c[0]), int(c[1]), int(c[2])) for c in value)


def _triple(value: object, card: Path, key: str) -> tuple[float, float, float] | None:
    if value is None:
        return None
    if (not isinstance(value, list) or len(value) != 3
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
        raise _fail(card, f"[preprocess] {key} must be three numbers (R, G, B), in 0..1 units.")
    return (float(value[0]), float(value[1]), float(value[2]))


def default_size(card: ModelCard) -> int:
    return card.size or DEFAULT_SIZE
