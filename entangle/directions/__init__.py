"""Value directions: the `Direction` object with its provenance, and its file formats (incl. llama.cpp GGUF)."""

from entangle.directions.direction import (
    Direction,
    DirectionError,
    check_compatible,
    direction_meta,
    layer_from_llamacpp_index,
    llamacpp_index,
    load_direction,
    save_direction,
    sidecar_path,
)

__all__ = ["Direction", "DirectionError", "check_compatible", "direction_meta", "layer_from_llamacpp_index",
           "llamacpp_index", "load_direction", "save_direction", "sidecar_path"]
