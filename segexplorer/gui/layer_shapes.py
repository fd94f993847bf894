"""The layer picker's shapes come from the engine (kept as a module for old imports)."""

from ..engine.models import layer_output_shapes

__all__ = ["layer_output_shapes"]
