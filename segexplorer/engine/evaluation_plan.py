"""What an evaluation of explanations does and costs, known before torch has loaded.

The settings of ``engine.evaluation`` (deletion and insertion curves, the chance band,
the model-randomisation check, Captum's infidelity and sensitivity), a quick preset
(:data:`QUICK`), and an upper bound on the images it sends through the model (forward)
and through a backward pass, in the unit of the methods' costs and of what a run counts,
so that the window and the CLI can say what an evaluation costs before it runs.
docs/evaluation.md defines each metric.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

from .budget import MemoryUse, largest
from .errors import UserError
from .methods import ImageFacts, MethodOptions, describe_images, method_cost

CURVES = ("deletion_segments", "insertion_segments", "deletion_pixels", "insertion_pixels")


@dataclass(frozen=True)
class EvaluationSettings:
    """How an evaluation runs (every field is in its report)."""

    pixel_steps: int = 20  # K: deletion / insertion by pixel in K steps of equal counts
    chance_runs: int = 10  # N seeded random rankings: the chance band
    seed: int = 0  # the random rankings', the randomised layers' and the noises' seed
    mprt: bool = True  # the cascading model-parameter randomisation test
    mprt_steps: int = 5  # maps recomputed after this many stages of randomisation
    survive_threshold: float = 0.5  # Spearman with the original at the last stage, above
    infidelity: bool = True  # captum.metrics.infidelity
    infidelity_samples: int = 10  # noise draws
    infidelity_std: float = 0.1  # their standard deviation, in the model's normalised units
    sensitivity: bool = True  # captum.metrics.sensitivity_max
    sensitivity_samples: int = 5  # perturbed inputs (Captum's default is 10: costly here)
    sensitivity_radius: float = 0.02  # L-infinity radius (Captum's default)

    def check(self) -> EvaluationSettings:
        if not 1 <= self.pixel_steps <= 1000:
            raise UserError(f"--pixel-steps {self.pixel_steps}: use 1 to 1000 steps.")
        if not 0 <= self.chance_runs <= 1000:
            raise UserError(f"--chance-runs {self.chance_runs}: use 0 to 1000 random "
                            "rankings.")
        if not 1 <= self.mprt_steps <= 100:
            raise UserError(f"--mprt-steps {self.mprt_steps}: use 1 to 100.")
        if self.infidelity_samples < 1 or self.sensitivity_samples < 1:
            raise UserError("Infidelity and sensitivity need at least one perturbation.")
        if self.infidelity_std <= 0 or self.sensitivity_radius <= 0:
            raise UserError("The noise of infidelity and the radius of sensitivity must be "
                            "positive.")
        return self

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    def differences(self, full: EvaluationSettings | None = None) -> str:
        """What these settings cut or skip against the full evaluation's defaults, e.g.
        '10 pixel steps (not 20), 3 chance runs (not 10), no randomisation check'; ''
        when they are the defaults' in what they measure."""
        d = full or EvaluationSettings()
        parts: list[str] = []
        for name, label in (("pixel_steps", "pixel steps"), ("chance_runs", "chance runs")):
            mine, theirs = getattr(self, name), getattr(d, name)
            if mine != theirs:
                parts.append(f"{mine} {label} (not {theirs})")
        for flag, label, count, count_label in (
                ("mprt", "randomisation check", "mprt_steps", "stages"),
                ("infidelity", "infidelity", "infidelity_samples", "noise draws"),
                ("sensitivity", "sensitivity", "sensitivity_samples", "perturbed inputs")):
            if not getattr(self, flag):
                if getattr(d, flag):
                    parts.append(f"no {label}")
            elif getattr(self, count) != getattr(d, count):
                parts.append(f"{label} with {getattr(self, count)} {count_label} (not "
                             f"{getattr(d, count)})")
        return ", ".join(parts)


#: A quick preview: half the pixel steps, three chance runs, and neither of the checks that
#: recompute every method's maps (the randomisation check and sensitivity); the curves,
#: the chance band and infidelity are still measured. About 30 % of the full evaluation's
#: images for the seed's three methods, less with gradient methods (docs/evaluation.md).
QUICK = EvaluationSettings(pixel_steps=10, chance_runs=3, mprt=False, sensitivity=False)
#: the quick preset in one line, for the window and the CLI
QUICK_DESCRIPTION = ("Quick preview: " + QUICK.differences() + "; the curves, the chance "
                     "band and infidelity are still measured.")


@dataclass(frozen=True)
class EvaluationCost:
    """An upper bound on the images an evaluation sends through the model."""

    maps: int  # the methods' own maps (none when they are already computed)
    curves: int  # deletion and insertion images, shared by every class and method
    mprt: int
    infidelity: int
    sensitivity: int
    backward: int  # images through a backward pass (gradient methods), all stages together
    memory: MemoryUse | None = None  # the largest chunk, when the memory facts were given

    @property
    def forward(self) -> int:
        return self.maps + self.curves + self.mprt + self.infidelity + self.sensitivity

    def seconds(self, forward_seconds: float) -> float:
        return forward_seconds * (self.forward + 2 * self.backward)

    def describe(self) -> str:
        """'at most 361 images through the model (340 forward, 21 backward; forward: 6 for
        the maps, ...)' (the unit of the methods' costs and of what a run counts)."""
        parts = [f"{self.curves} for the curves"]
        if self.maps:
            parts.insert(0, f"{self.maps} for the maps")
        for name, count in (("the randomisation check", self.mprt),
                            ("infidelity", self.infidelity),
                            ("sensitivity", self.sensitivity)):
            if count:
                parts.append(f"{count} for {name}")
        return "at most " + describe_images(self.forward, self.backward,
                                            "forward: " + ", ".join(parts))

    def describe_memory(self) -> str:
        """'memory: about 1.2 GiB (...)', or '' without the memory facts."""
        return f"memory: {self.memory.describe()}" if self.memory is not None else ""


def evaluation_cost(facts: ImageFacts, methods: Sequence[str], options: MethodOptions,
                    settings: EvaluationSettings, computed: Sequence[str] = ()
                    ) -> EvaluationCost:
    """The most an evaluation of ``methods`` for ``facts.targets`` classes can cost
    (``computed``: methods whose maps exist already). Perturbed images are shared by
    every class and method, so repeated ones are counted once: the count is a bound."""
    t, s = facts.targets, max(facts.segments, 1)
    per_method = [method_cost(m, facts, options) for m in methods]
    maps = sum(c.forward for m, c in zip(methods, per_method) if m not in computed)
    backward = sum(c.backward for m, c in zip(methods, per_method) if m not in computed)
    rankings = len(methods) * t + settings.chance_runs
    coalitions = min(2 ** s if s < 31 else 2 ** 31, rankings * (2 * s - 1) + 1)
    pixels = rankings * (2 * settings.pixel_steps - 1)
    all_maps = sum(c.forward for c in per_method)
    all_backward = sum(c.backward for c in per_method)
    # each randomised model and each perturbed input is a session of its own: its
    # prediction (one pass: the scores the perturbation methods start from) and then
    # every method's maps
    mprt = settings.mprt_steps * (1 + all_maps) if settings.mprt else 0
    sensitivity = settings.sensitivity_samples * (1 + all_maps) if settings.sensitivity else 0
    backward += (settings.mprt_steps * all_backward if settings.mprt else 0) + (
        settings.sensitivity_samples * all_backward if settings.sensitivity else 0)
    memory = None
    if facts.memory is not None:  # the largest chunk: a method's, or the curves' images
        memory = largest([c.memory for c in per_method]
                         + [facts.memory.use(coalitions + pixels, gradient=False)])
    return EvaluationCost(maps=maps, curves=coalitions + pixels, mprt=mprt,
                          infidelity=settings.infidelity_samples if settings.infidelity else 0,
                          sensitivity=sensitivity, backward=backward, memory=memory)
