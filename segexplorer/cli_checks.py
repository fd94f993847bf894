"""The command line's checks that need no torch: a typo is refused in a fraction of a
second, in one line, before the engine (torch, seconds and hundreds of MB) is imported.

Each command function in ``cli.py`` calls :func:`check_model_arguments` (and, for a
command of one image, :func:`check_image`) first, then imports what it uses. A new
option whose value can be checked without a model gets its check here; anything that
needs the model (a class name for ``--target``, a ``--layer``, a CUDA ``--device``) is
still checked by the engine, before any image is explained.

Nothing here imports torch, numpy or Pillow (``tests/test_cli.py`` runs these checks in a
process where ``import torch`` fails).
"""

from __future__ import annotations

import argparse
import sys

from .engine.errors import UserError

MIN_SIZE = 16  # as engine.image.preprocess refuses smaller working sizes


def check_model_arguments(args: argparse.Namespace) -> None:
    """The options shared by explain, evaluate, ablate and batch, where present."""
    size = getattr(args, "size", None)
    if size is not None and size < MIN_SIZE:
        raise UserError(f"--size {size} is too small: use at least {MIN_SIZE} (default 640, "
                        "or the model card's [preprocess] size).")
    check_model(args.model)
    if hasattr(args, "gpu_memory"):  # --gpu-memory, or SEGEXPLORER_GPU_MEMORY when not given
        from .engine.budget import check_setting

        check_setting(args.gpu_memory)
    if getattr(args, "baseline", None) is not None:
        from .engine.baselines import parse_baseline

        parse_baseline(args.baseline)
    if getattr(args, "methods", None) is not None:
        from .engine.methods import parse_methods

        parse_methods(args.methods)


def check_model(name: str) -> None:
    """A built-in architecture's name, or a model card that reads (the card's own errors,
    a missing labels file, ... are told before torch loads)."""
    from .engine.cards import is_card_path, read_card
    from .engine.catalog import BUILTIN_ARCHITECTURES

    if is_card_path(name):
        read_card(name)
        return
    known_names = set(BUILTIN_ARCHITECTURES)
    models = sys.modules.get("segexplorer.engine.models")
    if models is not None:  # architectures registered in this process count too (tests
        known_names |= set(models.ARCHITECTURES)  # register tiny ones); no torch for it
    if name not in known_names:
        known = ", ".join(sorted(BUILTIN_ARCHITECTURES))
        # the words of engine.models.get_architecture, which says the same after loading
        raise UserError(f"Unknown model '{name}': choose one of {known}, or give a model "
                        "card (a .toml file; see docs/models.md).")


def check_image(path: str) -> None:
    """The image exists and is a non-empty regular file (its content is read later)."""
    from pathlib import Path

    from .engine.errors import check_input_file

    check_input_file(Path(path).expanduser(), noun="Image", what="an image",
                     pick="an image file", folder_hint="pick an image file",
                     empty_hint="pick another file or save it again", display=path)


def check_batch_arguments(args: argparse.Namespace) -> None:
    """``batch``'s own options, its input and its output folder (``run_batch`` checks them
    again, and the run record, once the request is built)."""
    from .batch.inputs import resolve_input
    from .export.atomic import check_folder

    resolve_input(args.input)
    check_folder(args.out)
    if args.actors is not None and args.actors < 1:
        raise UserError(f"--actors {args.actors}: use at least 1.")
    if args.actors is not None and args.engine != "ray":
        raise UserError("--actors is for --engine ray: add --engine ray, or leave --actors out.")
    if args.writers is not None and args.writers < 1:
        raise UserError(f"--writers {args.writers}: use at least 1.")
    if args.images_per_pass is not None and args.images_per_pass < 1:
        raise UserError(f"--images-per-pass {args.images_per_pass}: use at least 1.")
    check_with_arguments(args)


def check_with_arguments(args: argparse.Namespace) -> None:
    """``batch --with``: B's options need --with; B names a model; Ray is refused."""
    with_model = getattr(args, "with_model", None)
    if with_model is None:
        for flag in ("with_weights", "with_size", "with_layer"):
            if getattr(args, flag, None) is not None:
                name = "--" + flag.replace("_", "-")
                raise UserError(f"{name} is for model B: add --with MODEL, or leave {name} "
                                "out.")
        return
    if getattr(args, "engine", "local") != "local":
        raise UserError("--with runs on the local engine only: leave --engine ray out "
                        "(a comparison batch is not distributed over Ray).")
    size = getattr(args, "with_size", None)
    if size is not None and size < MIN_SIZE:
        raise UserError(f"--with-size {size} is too small: use at least {MIN_SIZE}.")
    check_model(with_model)
