"""`entangle orthogonalize`: write a Hugging Face model folder with a direction removed from its weights.

The folder loads anywhere a model does (`--model DIR`, `entangle.models.load_model(DIR)`, transformers) and carries
`entangle_orthogonalized.json`: the source model and its weights hash, the direction file and its sha256, the layer
whose row was removed, the entangle version and the date. The weights are `orthogonalize_weights` (every residual
write W_E, o_proj, down_proj loses the direction; lm_head keeps the original, untied), which equals ablating the
direction at every layer with hooks.

    $ entangle orthogonalize --direction runs/x/directions/moral.safetensors --out models/smollm2-no-moral
    $ entangle run --model models/smollm2-no-moral --out runs/no-moral
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from entangle import __version__, validate
from entangle.cli.app import DeviceOpt, ModelOpt, app, quiet_hf, say
from entangle.directions import (
    Direction,
    check_compatible,
    load_direction,
    sidecar_path,
)
from entangle.files import InputError, dumps
from entangle.models import LoadedModel, weights_hash
from entangle.staging import check_target, staged

PROVENANCE = "entangle_orthogonalized.json"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def choose_layer(direction: Direction, layer: int | None) -> tuple[int, str]:
    """The row to remove and why: `layer` if given, else meta's best_layer, else the best CV accuracy, else the first."""
    if layer is not None:
        if layer not in direction.layers:
            raise validate.OptionError("--layer", f"layer {layer} is not in the direction; available layers: "
                                                  f"{direction.layers}")
        return layer, "--layer"
    best = direction.meta.get("best_layer")
    if isinstance(best, int) and best in direction.layers:
        return best, "the direction's best_layer"
    acc = (direction.meta.get("cv_metrics") or {}).get("accuracy")
    if isinstance(acc, list) and len(acc) == len(direction.layers) and all(isinstance(a, int | float) for a in acc):
        return direction.layers[int(np.argmax(acc))], "the layer of the direction's best CV accuracy"
    return direction.layers[0], "the direction's first layer"


def save_orthogonalized(model: LoadedModel, direction_file: Path, out: Path, *, layer: int | None = None,
                        force: bool = False) -> dict[str, Any]:
    """Write `model` with one row of the direction in `direction_file` projected out of its weights to the folder `out`.

    Written into a staging folder beside `out` and renamed into place when complete; an existing non-empty `out` is
    refused unless `force`. Returns the provenance record (also written to `out/entangle_orthogonalized.json`).
    """
    from entangle.interventions.weights import _fresh_hf_copy, orthogonalize_weights

    check_target(out, overwrite=force)
    direction = load_direction(direction_file)
    check_compatible(direction, model.info)
    row, why = choose_layer(direction, layer)
    vector = direction.at(row).astype(np.float64)
    if not np.linalg.norm(vector) > 0:
        raise InputError(direction_file, None, None, f"the direction's row at layer {row} is zero")
    side = sidecar_path(direction_file)
    record: dict[str, Any] = {
        "source_model": model.info.name, "source": model.info.source, "source_weights_hash": model.info.weights_hash,
        "direction_file": str(Path(direction_file).resolve()), "direction_sha256": _sha256(direction_file),
        "direction_sidecar_sha256": _sha256(side) if side != direction_file and side.is_file() else None,
        "direction_kind": direction.kind, "direction_method": direction.method, "layer": row, "layer_rule": why,
        "removed_from": "embed_tokens rows, every self_attn.o_proj and mlp.down_proj output (lm_head untouched, "
                        "untied); equals ablating the direction at residual layers 0..n_layers with hooks",
        "entangle_version": __version__, "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    orth = orthogonalize_weights(model, vector)
    hf = _fresh_hf_copy(orth.hf_model)  # plain transformers modules, without the bridge's wrappers
    del orth
    hf.config.architectures = [type(hf).__name__]
    with staged(out, overwrite=force) as staging:
        hf.save_pretrained(staging, safe_serialization=True)
        model.tokenizer.save_pretrained(staging)
        record["weights_hash"] = weights_hash(sorted(staging.glob("*.safetensors")))
        (staging / PROVENANCE).write_text(dumps(record) + "\n", encoding="utf-8")
    return record


@app.command()
def orthogonalize(
    direction: Annotated[Path, typer.Option(help="a direction file (.safetensors/.npz/.pt/.gguf)")],
    out: Annotated[Path, typer.Option(help="the model folder to write (Hugging Face layout)")],
    model: ModelOpt = "smollm2-135m",
    layer: Annotated[int | None, typer.Option(help="which layer's row of the direction to remove (default: its "
                                                   "best layer, else its first)")] = None,
    force: Annotated[bool, typer.Option("--force", "--overwrite", help="replace an existing non-empty --out (only "
                                                                      "once the new model is written)")] = False,
    device: DeviceOpt = "cpu",
) -> None:
    """Write a model folder with a direction removed from the weights (= ablating it at every layer), loadable with
    --model DIR, with a provenance file."""
    from entangle.models import load_model

    validate.input_file(direction, "direction file")
    validate.device(device)
    check_target(out, overwrite=force)
    choose_layer(load_direction(direction), layer)  # a bad --layer fails before the model loads
    quiet_hf()
    lm = load_model(model, device=device)
    record = save_orthogonalized(lm, direction, out, layer=layer, force=force)
    say(f"removed the {record['direction_kind']} direction (layer {record['layer']}, {record['layer_rule']}) from "
        f"{lm.info.name}'s weights")
    say(f"wrote {out} (weights {record['weights_hash']}); load it with --model {out}")
