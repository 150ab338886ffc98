"""Value directions: the `Direction` object with its provenance (direction.py), its file formats (formats.py) and
llama.cpp control vectors (gguf.py)."""

from entangle.directions.direction import (
           Direction,
           DirectionError,
           check_compatible,
           direction_meta,
)
from entangle.directions.formats import load_direction, save_direction, sidecar_path
from entangle.directions.gguf import layer_from_llamacpp_index, llamacpp_index

__all__ = ["Direction", "DirectionError", "check_compatible", "direction_meta", "layer_from_llamacpp_index",
           "llamacpp_index", "load_direction", "save_direction", "sidecar_path"]
