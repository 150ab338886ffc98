"""llama.cpp control vectors: the layer mapping and the GGUF writer/reader (see the package docstring of
`entangle.directions.direction` for the mapping checked against llama.cpp)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

GGUF_ARCH = "controlvector"
GGUF_KEY_MODEL_HINT = "controlvector.model_hint"
GGUF_KEY_LAYER_COUNT = "controlvector.layer_count"
GGUF_KEY_META = "entangle.meta"
GGUF_KEY_LAYERS = "entangle.layers"
GGUF_KEY_EXTRA_LAYER = "entangle.layer."  # + residual layer number, for rows llama.cpp cannot apply


from entangle.directions.direction import (
    Direction,
    DirectionError,
    _from_parts,
    _parse_json,
)

# ----------------------------------------------------------------------------------------------- mapping


def llamacpp_index(layer: int) -> int | None:
    """llama.cpp control-vector index N (``direction.N``) for residual layer `layer`, or None if not representable.

    ``direction.N`` is added to the output of block N (0-based), N >= 1; our layer l is the output of
    block l-1, so N = l-1; layers 0 and 1 have no control-vector slot.
    """
    if layer < 0:
        raise ValueError(f"layer must be >= 0, got {layer}")
    n = layer - 1
    return n if n >= 1 else None


def layer_from_llamacpp_index(n: int) -> int:
    """Residual layer number whose activation ``direction.N`` is added to (inverse of `llamacpp_index`)."""
    if n < 1:
        raise ValueError(f"llama.cpp control-vector indices start at 1, got {n}")
    return n + 1


def _write_gguf(direction: Direction, vectors: np.ndarray, meta_json: str, tmp: Path) -> None:
    import gguf  # noqa: PLC0415

    skipped = [layer for layer in direction.layers if llamacpp_index(layer) is None]
    if skipped:
        warnings.warn(
            f"GGUF control vector: residual layer(s) {skipped} (embedding output / output of block 0) cannot be "
            f"applied by llama.cpp (direction.N goes after block N, N >= 1); they are left out of the "
            f"direction.* tensors and kept only as entangle metadata", UserWarning, stacklevel=3)
    n_tensors = len(direction.layers) - len(skipped)
    writer = gguf.GGUFWriter(str(tmp), arch=GGUF_ARCH)
    try:
        writer.add_string(GGUF_KEY_MODEL_HINT, str(direction.meta.get("model") or "unknown"))
        writer.add_uint32(GGUF_KEY_LAYER_COUNT, n_tensors)
        writer.add_string(GGUF_KEY_META, meta_json)
        writer.add_key_value(GGUF_KEY_LAYERS, list(direction.layers), gguf.GGUFValueType.ARRAY,
                             sub_type=gguf.GGUFValueType.INT64)
        for i, layer in enumerate(direction.layers):
            n = llamacpp_index(layer)
            if n is None:
                writer.add_key_value(f"{GGUF_KEY_EXTRA_LAYER}{layer}", [float(x) for x in vectors[i]],
                                     gguf.GGUFValueType.ARRAY, sub_type=gguf.GGUFValueType.FLOAT32)
            else:
                writer.add_tensor(f"direction.{n}", vectors[i].copy())
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    finally:
        writer.close()


def _gguf_field(reader: Any, key: str) -> Any:
    f = reader.fields.get(key)
    return None if f is None else f.contents()


def _load_gguf(path: Path) -> Direction:
    import gguf  # noqa: PLC0415

    reader = gguf.GGUFReader(str(path))
    arch = _gguf_field(reader, "general.architecture")
    if arch != GGUF_ARCH:
        raise DirectionError(f"{path}: general.architecture is {arch!r}, expected {GGUF_ARCH!r} (control vector)")
    rows: dict[int, np.ndarray] = {}
    for t in reader.tensors:
        prefix, _, idx = t.name.partition(".")
        if prefix != "direction" or not idx.isdigit() or int(idx) < 1:
            raise DirectionError(f"{path}: unexpected tensor {t.name!r} (expected direction.N, N >= 1)")
        if t.tensor_type != gguf.GGMLQuantizationType.F32:
            raise DirectionError(f"{path}: tensor {t.name} is {t.tensor_type.name}, expected F32")
        rows[layer_from_llamacpp_index(int(idx))] = np.array(t.data, dtype=np.float32).reshape(-1)
    for key, f in reader.fields.items():
        if key.startswith(GGUF_KEY_EXTRA_LAYER):
            layer = int(key[len(GGUF_KEY_EXTRA_LAYER):])
            rows[layer] = np.array([f.parts[i][0] for i in f.data], dtype=np.float32)
    meta_json = _gguf_field(reader, GGUF_KEY_META)
    order = _gguf_field(reader, GGUF_KEY_LAYERS)
    hint = _gguf_field(reader, GGUF_KEY_MODEL_HINT)
    del reader  # release the memory map
    if not rows:
        raise DirectionError(f"{path}: no direction tensors (direction.N) and no entangle layers found")
    if meta_json is None:  # a foreign control vector (llama.cpp cvector-generator, repeng, ...)
        layers = sorted(rows)
        meta = {"model": hint, "kind": "unknown", "method": "gguf-controlvector", "source_file": path.name}
    else:
        meta = _parse_json(path, meta_json, f"key {GGUF_KEY_META}")
        layers = [int(x) for x in order] if order is not None else sorted(rows)
    missing = [x for x in layers if x not in rows]
    if missing:
        raise DirectionError(f"{path}: layers {missing} are listed but have no direction tensor or entangle row")
    vectors = np.stack([rows[x] for x in layers])
    return _from_parts(path, vectors, layers, meta)
