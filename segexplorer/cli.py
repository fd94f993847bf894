"""The command line: ``segexplorer explain | ablate | batch | compare | models | layers``; no subcommand
opens the window.

Every user error ends with one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from . import __version__
from .cli_checks import check_batch_arguments, check_image, check_model, check_model_arguments

if TYPE_CHECKING:
    from .engine.analysis import ExplainRequest

EXIT_USER_ERROR = 1
EXIT_INTERNAL = 3
SUBCOMMANDS = ("explain", "evaluate", "ablate", "batch", "compare", "models", "layers")


class _ArgumentParser(argparse.ArgumentParser):
    """argparse, but its errors are one line too."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


class ConsoleProgress:
    """A JobState for the terminal: a progress line on stderr, Ctrl+C to stop."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet or not sys.stderr.isatty()
        self._last = 0.0

    def set_progress(self, done: int, total: int, message: str = "") -> None:
        if self.quiet:
            return
        now = time.monotonic()
        if done < total and now - self._last < 0.2:
            return
        self._last = now
        width = 30
        filled = int(width * done / total) if total else 0
        line = f"\r[{'#' * filled}{'.' * (width - filled)}] {message[:60]:<60}"
        sys.stderr.write(line)
        if done >= total:
            sys.stderr.write("\r" + " " * len(line) + "\r")
        sys.stderr.flush()

    def is_cancelled(self) -> bool:
        return False


def _common_model_options(p: argparse.ArgumentParser, positional: str = "image",
                          positional_help: str = "image file (PNG, JPEG, TIFF, ...)") -> None:
    from .engine.catalog import DEFAULT_ARCHITECTURE

    p.add_argument(positional, help=positional_help)
    p.add_argument("--model", default=DEFAULT_ARCHITECTURE,
                   help=f"a built-in architecture (default {DEFAULT_ARCHITECTURE}; see "
                        "'segexplorer models') or a model card, a .toml file describing your "
                        "own model (docs/models.md)")
    p.add_argument("--weights", default=None,
                   help="'default' (torchvision's cache, downloaded if needed), 'untrained' "
                        "(seeded random: a demo), or the path of a state-dict file; with a "
                        "model card, the card's weights unless given")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--gpu-memory", type=float, default=None, metavar="GIB",
                   help="memory budget in GiB for the images of one model call, on the device "
                        "the model runs on (the GPU's memory, or RAM on a CPU): work is "
                        "chunked under it; the results do not depend on it (to float "
                        "rounding). Default: "
                        "SEGEXPLORER_GPU_MEMORY, else the smaller of 8 GiB and half the card "
                        "on a GPU, half the available memory on a CPU")
    p.add_argument("--size", type=int, default=None,
                   help="working size: the shorter side is resized to this (default 640, "
                        "or the model card's [preprocess] size)")
    p.add_argument("--segments", choices=("class", "component"), default="class",
                   help="ablation segments: whole predicted classes (the seed) or each "
                        "connected region")
    p.add_argument("--baseline", default="zero",
                   help="ablated pixels become: zero (ImageNet mean, Captum's default), "
                        "black, blur, #RRGGBB or R,G,B")
    p.add_argument("--fast", action="store_true",
                   help="fast mode: bf16 autocast (for GPUs; numbers are close to, not equal "
                        "to, Captum's; fp32 is the default and exact)")
    p.add_argument("--offline", action="store_true",
                   help="never download weights (fail with instructions instead)")
    p.add_argument("--out", required=True, help="output folder (created if missing)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")


def _method_options(p: argparse.ArgumentParser) -> None:
    from .engine.methods import IG_RULES, SHAPLEY_EXACT_LIMIT, SHAPLEY_MODES

    p.add_argument("--n-steps", type=int, default=50,
                   help="integrated gradients (ig, layer_ig): steps of the integral "
                        "(default 50, Captum's)")
    p.add_argument("--ig-method", choices=IG_RULES, default="gausslegendre",
                   help="integrated gradients: Captum's approximation (default gausslegendre)")
    p.add_argument("--window", type=int, default=0,
                   help="occlusion: window side in pixels (default: an eighth of the "
                        "shorter side)")
    p.add_argument("--stride", type=int, default=0,
                   help="occlusion: step in pixels (default: half the window)")
    p.add_argument("--n-samples", type=int, default=25,
                   help="Shapley sampling: permutations (default 25, Captum's)")
    p.add_argument("--shapley-mode", choices=SHAPLEY_MODES, default="auto",
                   help=f"Shapley values: exact (2^S forward passes), sampling, or auto "
                        f"(exact up to {SHAPLEY_EXACT_LIMIT} segments; default)")
    p.add_argument("--seed", type=int, default=0,
                   help="Shapley sampling: the permutations' seed (torch.manual_seed)")


def _evaluation_options(p: argparse.ArgumentParser) -> None:
    from .engine.evaluation_plan import EvaluationSettings

    d = EvaluationSettings()
    p.add_argument("--pixel-steps", type=int, default=None,
                   help=f"deletion/insertion by pixel in this many equal steps (default "
                        f"{d.pixel_steps})")
    p.add_argument("--chance-runs", type=int, default=None,
                   help=f"random rankings for the chance band (default {d.chance_runs}; 0: "
                        "none)")
    p.add_argument("--mprt-steps", type=int, default=None,
                   help=f"stages of the randomisation check (default {d.mprt_steps})")
    p.add_argument("--no-mprt", action="store_true", help="skip the randomisation check")
    p.add_argument("--infidelity-samples", type=int, default=None,
                   help=f"noise draws for infidelity (default {d.infidelity_samples})")
    p.add_argument("--infidelity-std", type=float, default=None,
                   help=f"their standard deviation, in the model's normalised units "
                        f"(default {d.infidelity_std})")
    p.add_argument("--no-infidelity", action="store_true", help="skip infidelity")
    p.add_argument("--sensitivity-samples", type=int, default=None,
                   help=f"perturbed inputs for sensitivity_max (default "
                        f"{d.sensitivity_samples})")
    p.add_argument("--sensitivity-radius", type=float, default=None,
                   help=f"their L-infinity radius (default {d.sensitivity_radius}, Captum's)")
    p.add_argument("--no-sensitivity", action="store_true", help="skip sensitivity_max")
    from .engine.evaluation_plan import QUICK_DESCRIPTION

    p.add_argument("--quick", action="store_true",
                   help=QUICK_DESCRIPTION + " Options given explicitly still apply.")


def build_parser() -> argparse.ArgumentParser:
    parser = _ArgumentParser(
        prog="segexplorer",
        description="Explain what a semantic segmentation model predicts, and why.",
        epilog="Without a subcommand, opens the window (optionally on IMAGE).",
    )
    parser.add_argument("--version", action="version", version=f"segexplorer {__version__}")
    sub = parser.add_subparsers(dest="command", parser_class=_ArgumentParser)

    explain = sub.add_parser("explain", help="Grad-CAM, activation, feature ablation (and any "
                                             "other method: --methods) for every target; "
                                             "writes PNGs, NPZ and a JSON report")
    _common_model_options(explain)
    _explain_options(explain)

    ablate = sub.add_parser("ablate", help="ablate the segments under some points and report "
                                           "how every class's score and pixel moved")
    _common_model_options(ablate)
    ablate.add_argument("--at", action="append", required=True, metavar="X,Y",
                        help="a point in the ORIGINAL image's pixel coordinates; repeat to "
                             "ablate several segments together")

    evaluate = sub.add_parser(
        "evaluate", help="can these explanations be trusted? deletion and insertion curves "
                         "against chance, the model-randomisation check, Captum's infidelity "
                         "and sensitivity; writes curves.png and evaluation.json",
        description="Evaluate each method's maps for every target class: deletion and "
                    "insertion by segment and by pixel (with a chance band of random "
                    "rankings), the cascading model-parameter randomisation test, and "
                    "Captum's infidelity and sensitivity_max (docs/evaluation.md).")
    _common_model_options(evaluate)
    _explain_options(evaluate)
    _evaluation_options(evaluate)

    batch = sub.add_parser(
        "batch", help="explain every image of a folder, a glob or a list: explain's files per "
                      "image, a summary table, the class context matrix; resumable",
        description="Explain every image of INPUT with one loaded model. Per image, the files "
                    "'segexplorer explain' writes, under OUT/images/<relative path>/; "
                    "summary.parquet and summary.csv (one row per image x predicted class), "
                    "errors.csv, context.csv and context.png (which classes the model needs "
                    "to see to find another), leaning.csv. Killed or interrupted, the same "
                    "command continues where it stopped.")
    _common_model_options(batch, "input", "a folder (searched recursively), a glob such as "
                                          "'photos/**/*.jpg' (quote it), or a text file of "
                                          "paths, one per line")
    _explain_options(batch)
    from .batch.options import MAX_WRITERS
    from .export.outputs import FULL, OUTPUT_CHOICES, OUTPUT_HELP

    batch.add_argument("--retry-errors", action="store_true",
                       help="try again the images that could not be explained in an earlier "
                            "run into the same folder (they are otherwise done)")
    batch.add_argument("--engine", choices=("local", "ray"), default="local",
                       help="local: this process (default); ray: an actor pool on Ray "
                            "(pip install 'segexplorer[ray]'; docs/scale.md)")
    batch.add_argument("--address", default=None, metavar="auto|HOST:PORT",
                       help="with --engine ray: the Ray cluster to join ('auto': the one "
                            "this machine belongs to); default: start Ray on this machine")
    batch.add_argument("--outputs", choices=tuple(OUTPUT_CHOICES), default=FULL,
                       help="the files each image gets: " + "; ".join(
                           f"{name}: {text}" for name, text in OUTPUT_HELP.items())
                       + " (the dataset tables are written in every case)")
    batch.add_argument("--writers", type=int, default=None,
                       help="threads that render and write the images' files while the "
                            "model explains the next one (default: one per CPU beside the "
                            f"model's, 1 to {MAX_WRITERS})")
    batch.add_argument("--images-per-pass", type=int, default=None, metavar="N",
                       help="the most images of one shape that share the model's pass "
                            "(the prediction's and Grad-CAM's), within the memory budget "
                            "(default: 8 on CUDA in fp32, where results equal one image's "
                            "to 1e-5; 32 with --fast; 1 on a CPU, where it is slower)")
    batch.add_argument("--actors", type=int, default=None,
                       help="with --engine ray: how many actors hold a model (default: one "
                            "per GPU with CUDA, else one per 4 CPUs)")
    _with_options(batch, required=False)

    compare = sub.add_parser(
        "compare", help="two models on one image: what changed (shares, IoU, scores, pixels "
                        "that changed class) and why (each method's maps side by side)",
        description="Compare model A (--model, --weights, --size, --layer) with model B "
                    "(--with, --with-weights, --with-size, --with-layer) on IMAGE, classes "
                    "matched by name. Writes each model's 'explain' files under OUT/a and "
                    "OUT/b, compare.json (per class: shares, IoU, scores, each method's map "
                    "correlation and difference, the segments whose ablation moves it "
                    "differently), compare.npz, pixels_changed.png and a side-by-side "
                    "figure per class (docs/compare.md).")
    _common_model_options(compare)
    _explain_options(compare)
    _with_options(compare, required=True)

    models = sub.add_parser("models", help="each built-in model, its weights file, whether it "
                                           "is cached, its size; or a model card, resolved")
    models.add_argument("card", nargs="?", help="a model card (.toml) to check and describe")
    layers = sub.add_parser("layers", help="the dotted paths of a model's layers, with their "
                                           "output shapes and whether Grad-CAM can use them")
    layers.add_argument("model", help="a built-in architecture or a model card (.toml)")
    layers.add_argument("--all", action="store_true",
                        help="also list the layers Grad-CAM cannot use, with the reason")
    layers.add_argument("--size", type=int, default=64,
                        help="input side for the output shapes (default 64)")
    return parser


def _with_options(p: argparse.ArgumentParser, required: bool) -> None:
    """Model B's options (compare; batch --with)."""
    p.add_argument("--with", dest="with_model", required=required, metavar="MODEL",
                   help="model B: a built-in architecture or a model card (.toml)"
                        + ("" if required else "; compares A (--model) with B on every "
                           "image: compare's files per image, comparison.parquet and "
                           "comparison.csv (docs/compare.md)"))
    p.add_argument("--with-weights", default=None,
                   help="B's weights, as --weights (default: 'default' for a built-in, "
                        "the card's for a card)")
    p.add_argument("--with-size", type=int, default=None,
                   help="B's working size (default: --size if given, else B's own, "
                        "e.g. its card's)")
    p.add_argument("--with-layer", default=None,
                   help="B's layer for the layer methods (default: --layer if B has "
                        "it, as two checkpoints of one architecture do, else B's "
                        "default layer)")
    p.add_argument("--resample-maps", choices=("nearest", "bilinear"), default="nearest",
                   help="how each model's attribution maps reach the original image's "
                        "grid to be compared (default nearest: every value as "
                        "computed; class maps are always nearest)")


def _request_b(args: argparse.Namespace, request_a: ExplainRequest) -> ExplainRequest:
    """Model B's request: A's options with B's model, weights, working size and layer."""
    from dataclasses import replace

    return replace(request_a, model=args.with_model, weights=args.with_weights,
                   size=args.with_size if args.with_size is not None else args.size,
                   layer=args.with_layer if args.with_layer is not None else args.layer)


def _explain_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--target", default="all",
                   help="class name or index, comma-separated, or 'all' (every "
                        "predicted class; default)")
    from .engine.methods import DEFAULT_METHODS, METHODS

    p.add_argument("--methods", default=",".join(DEFAULT_METHODS),
                   help=f"comma-separated methods, or all: {', '.join(METHODS)} "
                        f"(default {','.join(DEFAULT_METHODS)}; docs/methods.md)")
    p.add_argument("--layer", default=None,
                   help="layer of the layer methods (Grad-CAM, activation, layer IG, "
                        "HiResCAM, Guided Grad-CAM) as a dotted path (default: the "
                        "model's, e.g. backbone.layer4[2].conv3); see 'segexplorer "
                        "layers MODEL'")
    p.add_argument("--upsample", choices=("nearest", "bilinear"), default="nearest",
                   help="how the layer methods' maps (Grad-CAM, activation, ...) are "
                        "resized from the layer's resolution to the image's: nearest "
                        "(Captum's LayerAttribution.interpolate default, the seed's) or "
                        "bilinear (smoother)")
    p.add_argument("--aggregation", choices=("argmax", "sum"), default="argmax",
                   help="class score: sum over pixels predicted as the class (the "
                        "seed's wrapper; default) or over all pixels")
    _method_options(p)


def build_gui_parser() -> argparse.ArgumentParser:
    parser = _ArgumentParser(prog="segexplorer",
                             description="Open the SegExplorer window. Subcommands: "
                                         + ", ".join(SUBCOMMANDS) + " (segexplorer CMD --help).")
    parser.add_argument("--version", action="version", version=f"segexplorer {__version__}")
    parser.add_argument("image", nargs="?", help="image to open")
    parser.add_argument("--smoke-test", action="store_true",
                        help="open the window, analyse the sample image with untrained weights "
                             "on the CPU, exit 0 on success")
    parser.add_argument("--screenshot", metavar="PATH", help="with --smoke-test: save the window")
    return parser


@contextlib.contextmanager
def _library_output_silenced() -> Iterator[None]:
    """Keep the libraries' own chatter off stderr while a subcommand runs.

    A damaged file makes Pillow warn (``UserWarning: Truncated File Read``), log
    (``More samples per pixel than can be decoded``, which reaches stderr through
    logging's last-resort handler) and libtiff print from C (``ZIPDecode: Decoding
    error ...``) before the decoder gives up; the user is then told once, by the
    UserError's line. SEGEXPLORER_DEBUG=1 lets all of it through.
    """
    if os.environ.get("SEGEXPLORER_DEBUG"):
        yield
        return
    root = logging.getLogger()
    sink = logging.NullHandler()  # a handler exists, so logging.lastResort stays silent
    root.addHandler(sink)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with _c_stderr_silenced():
                yield
    finally:
        root.removeHandler(sink)


def _fileno(stream) -> int | None:
    try:
        return stream.fileno()
    except (AttributeError, OSError, ValueError):
        return None


@contextlib.contextmanager
def _c_stderr_silenced() -> Iterator[None]:
    """Point file descriptor 2 at the null device; Python's sys.stderr keeps the real one.

    C libraries (libtiff, libpng) write to descriptor 2 directly; our progress line and
    error message go through ``sys.stderr``, which is given a duplicate of the original
    descriptor for the duration. Where there is no descriptor 2 (a windowed launcher),
    nothing changes.
    """
    try:
        if sys.stderr is not None:
            sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    python_stderr = sys.stderr
    replacement = None
    try:
        if _fileno(python_stderr) == 2:  # sys.stderr writes to descriptor 2: keep it visible
            replacement = open(os.dup(saved), "w", buffering=1,  # noqa: SIM115
                               encoding=getattr(python_stderr, "encoding", None) or "utf-8",
                               errors=getattr(python_stderr, "errors", None) or "backslashreplace")
            sys.stderr = replacement
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(null, 2)
        finally:
            os.close(null)
        yield
    finally:
        if replacement is not None:
            with contextlib.suppress(OSError, ValueError):
                replacement.flush()
            sys.stderr = python_stderr
            replacement.close()
        os.dup2(saved, 2)
        os.close(saved)


def _fail(message: str, code: int = EXIT_USER_ERROR) -> int:
    sys.stderr.write(f"segexplorer: error: {message}\n")
    return code


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    from .engine.errors import Cancelled, UserError

    try:
        if args_list and args_list[0] in SUBCOMMANDS or any(a in ("-h", "--help")
                                                            for a in args_list[:1]):
            args = build_parser().parse_args(args_list)
            with _library_output_silenced():
                return _run_command(args)
        gui_args = build_gui_parser().parse_args(args_list)
        from .gui.app import run_app

        return run_app(image=gui_args.image, smoke_test=gui_args.smoke_test,
                       screenshot=gui_args.screenshot)
    except UserError as exc:
        return _fail(str(exc))
    except (KeyboardInterrupt, Cancelled):
        return _fail("interrupted", 130)
    except BrokenPipeError:
        # the reader went away (`segexplorer layers X | head`): stop quietly, as Unix tools
        # do; stdout is pointed at the null device so that Python's exit flush is silent
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return 0
    except Exception as exc:  # a bug: still one line, with a way to get the details
        if os.environ.get("SEGEXPLORER_DEBUG"):
            raise
        first = str(exc).splitlines()[0][:200] if str(exc) else ""
        return _fail(f"internal error ({type(exc).__name__}: {first}); set "
                     "SEGEXPLORER_DEBUG=1 for the traceback and please report it",
                     EXIT_INTERNAL)


def gui_main() -> int:
    """Entry point for the windowed launcher (no console on Windows)."""
    return main(sys.argv[1:])


def _run_command(args: argparse.Namespace) -> int:
    if args.command == "models":
        return _cmd_models(args.card)
    if args.command == "layers":
        return _cmd_layers(args.model, args.all, args.size)
    if args.command == "explain":
        return _cmd_explain(args)
    if args.command == "evaluate":
        return _cmd_evaluate(args)
    if args.command == "ablate":
        return _cmd_ablate(args)
    if args.command == "batch":
        return _cmd_batch(args)
    if args.command == "compare":
        return _cmd_compare(args)
    build_parser().print_help()
    return 0


def _cmd_models(card: str | None = None) -> int:
    if card is not None:
        return _cmd_card(card)
    from .engine.models import weights_table

    rows = weights_table()
    print(f"{'model':30} {'cached':7} {'size':>9}  weights file")
    for row in rows:
        size = f"{row.size_bytes / 2**20:.0f} MiB" if row.size_bytes else "?"
        print(f"{row.model:30} {'yes' if row.cached else 'no':7} {size:>9}  {row.path}")
    print("\nYour own model: describe it in a model card (.toml) and pass it as --model; "
          "'segexplorer models CARD' checks one (docs/models.md).")
    return 0


def _cmd_card(path: str) -> int:
    """Print what a model card resolves to, building the model (on the CPU) to check it."""
    from .engine.cards import read_card
    from .engine.models import load_model

    card = read_card(path)
    if card.runs_code:
        print(f"note: this card runs Python code: {card.factory[0]}:{card.factory[1]}"
              if card.factory else "note: this card runs Python code")
    model = load_model(card, None, "cpu")
    params = sum(p.numel() for p in model.module.parameters())
    names = ", ".join(model.categories[:12]) + (", ..." if model.num_classes > 12 else "")
    rows = [
        ("card", str(card.path)),
        ("name", model.name),
        ("source", card.source + (f" ({card.architecture}"
                                  + (f", encoder {card.encoder}" if card.encoder else "") + ")"
                                  if card.architecture else "")),
        ("weights", model.weights_label),
        ("classes", f"{model.num_classes}: {names}"
                    + (" (binary: one output channel, background = -z, foreground = z)"
                       if model.binary else "")),
        ("outputs", model.outputs + (f" (one sigmoid per class, present where p > "
                                     f"{model.threshold:g}; classes may overlap)"
                                     if model.multilabel else "")
         + ("" if card.outputs else " (default; [model] outputs sets it)")),
        ("class names", "from the card" if card.classes else
         ("from the model's config (id2label)" if card.source == "huggingface"
          else "missing: generic names 'class N' (add classes or labels to the card)")),
        ("palette", "from the card" if card.palette else
         "not given: VOC colours, extended beyond 21 classes"),
        ("input size", f"{model.default_size} px (shorter side)"
                       + ("" if card.size else " (default; [preprocess] size sets it)")),
        ("normalisation", model.normalization.describe()
         + ("" if card.mean or card.std else " (the source's default)")),
        ("padding", f"sides padded to a multiple of {model.adapter.pad_multiple}, output "
                    "cropped back" if model.adapter and model.adapter.pad_multiple > 1
         else "none"),
        ("default layer", model.default_layer + ("" if card.layer else
                                                 " (guessed: the last convolution before the "
                                                 "classifier; [explain] layer sets it)")),
        ("parameters", f"{params:,}"),
    ]
    for key, value in rows:
        print(f"{key + ':':15} {value}")
    return 0


def _cmd_layers(model_name: str, show_all: bool = False, size: int = 64) -> int:
    from .engine.cards import is_card_path
    from .engine.errors import UserError

    if size < 16:
        raise UserError(f"--size {size} is too small: use at least 16.")
    check_model(model_name)  # before torch is imported
    from .engine.models import load_model

    # a built-in's layers do not depend on its weights: untrained ones need no download
    model = load_model(model_name, None if is_card_path(model_name) else "untrained", "cpu")
    infos = model.audit_layers(size)
    shown = [i for i in infos if show_all or i.usable]
    width = max((len(i.path) for i in shown), default=10) + 2
    for info in shown:
        shape = " x ".join(str(d) for d in info.shape) if info.shape else "-"
        mark = "(default) " if info.path == model.default_layer else ""
        note = info.note if (show_all or info.calls > 1) else ""
        print(f"{info.path:{width}} {info.kind:22} {shape:20} {mark}{note}".rstrip())
    if not show_all:
        hidden = len(infos) - len(shown)
        if hidden:
            print(f"({hidden} layers Grad-CAM cannot use are hidden: --all lists them with "
                  "the reason)", file=sys.stderr)
    return 0


def _cmd_explain(args: argparse.Namespace) -> int:
    check_model_arguments(args)  # a typo is refused before torch is imported
    check_image(args.image)
    from .engine.analysis import explain
    from .engine.image import load_image
    from .engine.models import load_model
    from .export import check_folder, write_explain

    check_folder(args.out)  # before any work; created only once the model has loaded
    request = _explain_request(args, args.image)
    request.method_options()  # a bad method option fails before the model loads
    progress = ConsoleProgress(args.quiet)
    image = load_image(args.image)  # a bad image fails before the model loads
    model = load_model(args.model, args.weights, args.device,
                       allow_download=not args.offline, state=progress)
    _note_card(model, args.quiet)
    result = explain(request, progress, model=model, image=image)  # the folder is made
    # only when the files are written: a refused layer or a cancelled run leaves nothing
    written = write_explain(args.out, result)
    _note_hint(result.prediction, args.quiet)
    if not args.quiet:
        pred = result.prediction
        names = ", ".join(f"{pred.categories[c]} ({pred.share(c):.1%})"
                          for c in pred.present_classes)
        budget = (f", memory budget {result.memory_budget.describe()}"
                  if result.memory_budget is not None else "")
        print(f"{result.model} [{result.weights}] on {result.device}{budget}: {names}")
        if result.untrained:
            print("note: untrained weights: the prediction is meaningless (demo only)")
        print(f"wrote {len(written)} files to {Path(args.out)}")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    check_model_arguments(args)  # a typo is refused before torch is imported
    check_image(args.image)
    from .engine.analysis import check_request, prepare_image, resolve_targets
    from .engine.evaluation import evaluate
    from .engine.image import load_image
    from .engine.models import load_model
    from .engine.session import Session
    from .export import check_folder
    from .export.bundle import library_versions
    from .export.evaluation import write_evaluation

    request = _explain_request(args, args.image)
    options = request.method_options()  # bad options fail before any work
    settings = _evaluation_settings(args)
    check_folder(args.out)
    progress = ConsoleProgress(args.quiet)
    image = load_image(args.image)
    model = load_model(args.model, args.weights, args.device,
                       allow_download=not args.offline, state=progress)
    _note_card(model, args.quiet)
    check_request(request, model)
    session = Session(model, prepare_image(image, request, model), precision=request.precision,
                      budget=request.memory_budget(model))
    targets = resolve_targets(session.predict(progress), request.targets)
    _note_hint(session.predict(), args.quiet)
    result = evaluate(session, request.methods, targets, options, settings, state=progress)
    from .engine.devices import describe_device

    device = describe_device(model.device)
    context = {"image": str(Path(args.image)), "model": model.name,
               "weights": model.weights, "untrained": model.untrained,
               "working_size": list(session.image.shape), "device": device,
               "memory_budget": session.budget.as_json(), "versions": library_versions()}
    written = write_evaluation(args.out, result, context)
    if not args.quiet:
        print(f"{model.name} on {device}, memory budget {session.budget.describe()}"
              + (" (quick preview)" if args.quick else ""))
        for c in result.targets:
            print(f"{result.categories[c]} (class {c}):")
            for m in result.methods:
                print(f"  {m}: {result.verdict(m, c)}")
        if model.untrained:
            print("note: untrained weights: the prediction is meaningless (demo only)")
        print(f"wrote {len(written)} files to {Path(args.out)}")
    return 0


def _explain_request(args: argparse.Namespace, image: str) -> ExplainRequest:
    from .engine.analysis import ExplainRequest, parse_methods

    return ExplainRequest(
        image=image, model=args.model, weights=args.weights, device=args.device,
        size=args.size, targets=args.target, methods=parse_methods(args.methods),
        layer=args.layer, segments=args.segments, baseline=args.baseline,
        upsample=args.upsample, aggregation=args.aggregation,
        allow_download=not args.offline, precision="bf16" if args.fast else "fp32",
        n_steps=args.n_steps, ig_method=args.ig_method, window=args.window,
        stride=args.stride, n_samples=args.n_samples, shapley_mode=args.shapley_mode,
        seed=args.seed, gpu_memory=args.gpu_memory,
    )


def _evaluation_settings(args: argparse.Namespace):
    """The evaluation's settings: the full defaults, or the quick preset with --quick;
    options given explicitly override either."""
    from .engine.evaluation_plan import QUICK, EvaluationSettings

    base = QUICK if args.quick else EvaluationSettings()

    def pick(name: str):
        value = getattr(args, name)
        return getattr(base, name) if value is None else value

    if args.quick and not args.quiet:
        from .engine.evaluation_plan import QUICK_DESCRIPTION

        sys.stderr.write(f"note: {QUICK_DESCRIPTION}\n")
    return EvaluationSettings(
        pixel_steps=pick("pixel_steps"), chance_runs=pick("chance_runs"), seed=args.seed,
        mprt=base.mprt and not args.no_mprt, mprt_steps=pick("mprt_steps"),
        infidelity=base.infidelity and not args.no_infidelity,
        infidelity_samples=pick("infidelity_samples"), infidelity_std=pick("infidelity_std"),
        sensitivity=base.sensitivity and not args.no_sensitivity,
        sensitivity_samples=pick("sensitivity_samples"),
        sensitivity_radius=pick("sensitivity_radius")).check()


def _cmd_batch(args: argparse.Namespace) -> int:
    check_model_arguments(args)  # a typo is refused before torch is imported
    check_batch_arguments(args)
    from .batch.progress import console_progress
    from .batch.run import BatchOptions, run_batch

    request = _explain_request(args, "")
    pair = None
    if args.with_model is not None:  # batch --with: compare A with B on every image
        from .batch.options import PairOptions

        pair = PairOptions(_request_b(args, request), args.with_layer is not None,
                           args.resample_maps)
    options = BatchOptions(input=args.input, out=args.out, request=request,
                           engine=args.engine, address=args.address, actors=args.actors,
                           retry_errors=args.retry_errors, outputs=args.outputs,
                           writers=args.writers, compare=pair,
                           images_per_pass=args.images_per_pass)

    def loaded(info: dict) -> None:
        if args.quiet:
            return
        if info.get("card_code"):
            sys.stderr.write(f"note: model card {Path(info['card']).name} ran your code "
                             f"({info['card_code']})\n")
        if info.get("untrained"):
            sys.stderr.write("note: untrained weights: the predictions are meaningless "
                             "(demo only)\n")
        if info.get("binary"):
            names = info["classes"]
            sys.stderr.write("note: binary model (one output channel z): explained as two "
                             f"classes, {names[0]} = -z and {names[1]} = z\n")
        if info.get("outputs") == "multilabel":
            sys.stderr.write(f"note: {MULTILABEL_NOTE}\n")
        sys.stderr.flush()

    with _budget_in_environment(args.gpu_memory):
        report = run_batch(options, console_progress(args.quiet), ConsoleProgress(args.quiet),
                           on_model=loaded)
    if not args.quiet:
        errors = (f", {report.errors} error{'s' if report.errors != 1 else ''} (errors.csv)"
                  if report.errors else "")
        before = f", {report.done_before} done before" if report.done_before else ""
        rate = (f"; {report.images_per_second:.2f} images/s"
                if report.explained + report.errors else "")
        where = f" by {report.model} on {report.device}" if report.model else ""
        n = report.explained
        verb = "compared" if pair is not None else "explained"
        print(f"{n} image{'s' if n != 1 else ''} {verb}{where}{errors}{before}{rate}")
        print(f"wrote {report.folder}")
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    check_model_arguments(args)  # a typo is refused before torch is imported
    check_model(args.with_model)
    check_image(args.image)
    from .engine.analysis import parse_methods
    from .engine.baselines import parse_baseline
    from .engine.compare import check_resample
    from .engine.compare_run import compare_sessions, load_pair
    from .engine.image import load_image
    from .export import check_folder
    from .export.compare import write_compare

    parse_baseline(args.baseline)
    parse_methods(args.methods)
    check_resample(args.resample_maps)
    check_folder(args.out)  # before any work; nothing is created before the files are
    request_a = _explain_request(args, args.image)
    request_a.method_options()  # a bad method option fails before the models load
    request_b = _request_b(args, request_a)
    progress = ConsoleProgress(args.quiet)
    image = load_image(args.image)  # a bad image fails before the models load
    pair = load_pair(request_a, request_b, image, layer_b_given=args.with_layer is not None,
                     state=progress)
    _note_card(pair.a, args.quiet)
    _note_card(pair.b, args.quiet)
    if not args.quiet:
        for note in pair.notes:
            sys.stderr.write(f"note: {note}\n")
    session_a, session_b = pair.sessions()
    comparison = compare_sessions(session_a, session_b, pair.request_a, pair.request_b,
                                  targets=args.target, resample=args.resample_maps,
                                  matching=pair.matching, state=progress)
    width, height = image.size
    context = {"image": str(Path(args.image)), "image_size": [width, height],
               "memory": pair.memory.to_json(), "notes": list(pair.notes)}
    import numpy as np

    from .engine.image import to_rgb

    photo = np.asarray(image if image.mode == "RGB" else to_rgb(image), np.uint8)
    written = write_compare(args.out, comparison, context, image=photo)
    if not args.quiet:
        for side, result in (("A", comparison.a.result), ("B", comparison.b.result)):
            h, w = result.prediction.shape
            mark = " (untrained: meaningless, demo only)" if result.untrained else ""
            print(f"{side}: {result.model} [{result.weights}] on {result.device}, "
                  f"{w} x {h} px{mark}")
        m = comparison.matching
        print(f"classes: {len(m.shared)} shared, {len(m.only_a)} only in A, "
              f"{len(m.only_b)} only in B")
        changes = ", ".join(f"{t.label} {t.share:.1%}" for t in comparison.transitions[:3])
        print(f"{comparison.changed_share:.2%} of pixels changed class"
              + (f" ({changes}{', ...' if len(comparison.transitions) > 3 else ''})"
                 if changes else ""))
        for row in comparison.classes:
            if not row.pair.shared:
                side = "A" if row.pair.a is not None else "B"
                print(f"  {row.name}: only {side} knows it")
                continue
            maps = ", ".join(f"{k} rho {v.spearman:.3f}" if v.spearman is not None else
                             f"{k} mean |B - A| {v.mean_abs_difference:.3g}"
                             for k, v in row.maps.items())
            iou = "-" if row.iou is None else f"{row.iou:.3f}"
            print(f"  {row.name}: IoU {iou}, share {row.share_a or 0:.1%} -> "
                  f"{row.share_b or 0:.1%}, score {row.score_a or 0:.4g} -> "
                  f"{row.score_b or 0:.4g}" + (f"; {maps}" if maps else ""))
        print(f"memory: {pair.memory.describe()}")
        print(f"wrote {len(written)} files to {Path(args.out)}")
    return 0


@contextlib.contextmanager
def _budget_in_environment(gib: float | None) -> Iterator[None]:
    """--gpu-memory for a batch: its sessions (and Ray actors started from this process)
    resolve their budget from SEGEXPLORER_GPU_MEMORY (engine.budget) until the batch passes
    request.memory_budget(model) itself; the variable is restored after."""
    from .engine.budget import ENV_VAR

    if gib is None:
        yield
        return
    saved = os.environ.get(ENV_VAR)
    os.environ[ENV_VAR] = repr(gib)
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(ENV_VAR, None)
        else:
            os.environ[ENV_VAR] = saved


def _note_card(model, quiet: bool) -> None:
    """One line on stderr about what a model card implies (binary, runs code)."""
    if quiet or model.card is None:
        return
    if model.card.runs_code:
        sys.stderr.write(f"note: model card {model.card.path.name} ran your code "
                         f"({model.card.factory[0].name}:{model.card.factory[1]})\n")
    if model.binary:
        sys.stderr.write("note: binary model (one output channel z): explained as two "
                         f"classes, {model.categories[0]} = -z and {model.categories[1]} = z\n")
    if model.multilabel:
        sys.stderr.write(f"note: {MULTILABEL_NOTE} (threshold p > {model.threshold:g})\n")


MULTILABEL_NOTE = ("multi-label model (one sigmoid per class): classes may overlap and a "
                   "pixel may be in none")


def _note_hint(prediction, quiet: bool) -> None:
    """One line on stderr when a softmax model's outputs look multi-label (the result is
    unchanged; report.json has the same line as outputs_hint)."""
    if prediction.hint and not quiet:
        sys.stderr.write(f"note: outputs look multi-label: {prediction.hint}\n")


def _parse_point(text: str) -> tuple[float, float]:
    from .engine.errors import UserError

    try:
        x, y = (float(v) for v in text.split(","))
    except ValueError:
        raise UserError(f"--at '{text}' is not X,Y (two numbers, e.g. --at 120,340).") from None
    return x, y


def _cmd_ablate(args: argparse.Namespace) -> int:
    check_model_arguments(args)  # a typo is refused before torch is imported
    points = [_parse_point(p) for p in args.at]
    check_image(args.image)
    from .engine.ablation import ablate_at_points, summary_line
    from .engine.image import load_image, preprocess
    from .engine.models import load_model
    from .engine.session import Session
    from .export import check_folder
    from .export.ablation import write_ablation

    check_folder(args.out)
    progress = ConsoleProgress(args.quiet)
    image = load_image(args.image)
    model = load_model(args.model, args.weights, args.device,
                       allow_download=not args.offline, state=progress)
    _note_card(model, args.quiet)
    prepared = preprocess(image, args.size or model.default_size, model.normalization)
    from .engine.budget import resolve_budget

    session = Session(model, prepared, precision="bf16" if args.fast else "fp32",
                      budget=resolve_budget(model.device, args.gpu_memory))
    outcome, segments = ablate_at_points(session, points, args.segments, args.baseline, progress)
    written = write_ablation(args.out, session, segments, outcome)
    _note_hint(session.predict(), args.quiet)
    if not args.quiet:
        print(summary_line(session.predict(), outcome, segments))
        print(f"wrote {len(written)} files to {Path(args.out)}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
