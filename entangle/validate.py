"""Checks every CLI command runs before it loads a model: paths, option values and input files, one clear error each.

A mistake found here costs a second, not the minutes of a model load or a capture; each check raises an
`InputError` (or its `OptionError` for option values) that the CLI prints as one line and exits 2 on.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from entangle.files import InputError
from entangle.schema import POSITIONS, READOUT_STYLES

if TYPE_CHECKING:
    from entangle.stimuli import StimulusSet

MAX_TEXT_CHARS = 4000
"""Longest judged text or scored text, in characters: a judgement prompt must fit a small model's context, and a
runaway line (a 1 MB paste) must fail here rather than allocate gigabytes during capture."""

DEVICE_MAPS = ("auto", "balanced", "balanced_low_0", "sequential")
"""The named `device_map` strategies accelerate understands."""


class OptionError(InputError):
    """A command-line option has a value the command cannot use; names the option."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(None, None, option, message)

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"

    def __reduce__(self):  # picklable with its two-argument init
        return (type(self), (self.field, self.message))


# ------------------------------------------------------------------------------------------------ option values


def at_least(option: str, value: int | None, minimum: int) -> None:
    """`value` (when given) is an integer >= `minimum`."""
    if value is not None and value < minimum:
        raise OptionError(option, f"must be at least {minimum}, got {value}")


def one_of(option: str, value: str, allowed: Iterable[str]) -> None:
    """`value` is one of the known names."""
    allowed = tuple(allowed)
    if value not in allowed:
        raise OptionError(option, f"unknown value {value!r}; expected one of {', '.join(allowed)}")


def readout(value: str) -> None:
    """--readout names a judgement readout or `auto`."""
    one_of("--readout", value, ("auto", *READOUT_STYLES))


def position(value: str) -> None:
    """--position names a read position of the activation cache (`entangle.schema.POSITIONS`)."""
    one_of("--position", value, POSITIONS)


def dtype(value: str) -> None:
    """--dtype is a floating-point type the model loader knows."""
    from entangle.models import _resolve_torch_dtype  # noqa: PLC0415  (the loader's own table, not a copy)

    try:
        _resolve_torch_dtype(value)
    except ValueError as exc:
        raise OptionError("--dtype", str(exc)) from None


def device(value: str) -> None:
    """--device is cpu, an available CUDA device (cuda, cuda:N) or an available Apple mps device."""
    import torch  # noqa: PLC0415

    m = re.fullmatch(r"(cpu|cuda|mps)(?::(\d+))?", value)
    if m is None:
        raise OptionError("--device", f"unknown device {value!r}; expected cpu, cuda, cuda:N or mps")
    kind, index = m.group(1), m.group(2)
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise OptionError("--device", f"{value!r} asked for, but CUDA is not available on this machine "
                                          f"(is this torch a CPU build?); use --device cpu")
        if index is not None and int(index) >= torch.cuda.device_count():
            raise OptionError("--device", f"{value!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if kind == "mps" and not torch.backends.mps.is_available():
        raise OptionError("--device", "'mps' asked for, but Apple MPS is not available here; use --device cpu")


def device_map(value: str | None) -> None:
    """--device-map is one of accelerate's named strategies."""
    if value is not None:
        one_of("--device-map", value, DEVICE_MAPS)


def layers(option: str, text: str, available: Sequence[int]) -> list[int]:
    """A comma-separated list of layer numbers, each one of `available`."""
    try:
        wanted = [int(x) for x in text.split(",")]
    except ValueError:
        raise OptionError(option, f"expected comma-separated layer numbers, got {text!r}") from None
    missing = [x for x in wanted if x not in available]
    if missing:
        raise OptionError(option, f"layer(s) {missing} not in the direction; available layers: {list(available)}")
    if len(set(wanted)) != len(wanted):
        raise OptionError(option, f"a layer is listed twice in {text!r}")
    return wanted


# ------------------------------------------------------------------------------------------------ paths


def input_file(path: Path, what: str) -> Path:
    """`path` exists and is a file."""
    if not path.exists():
        raise InputError(path, None, None, f"{what} not found")
    if not path.is_file():
        raise InputError(path, None, None, f"{what} must be a file, but this is a folder" if path.is_dir()
                         else f"{what} must be a regular file")
    return path


def input_folder(path: Path, what: str) -> Path:
    """`path` exists and is a folder."""
    if not path.is_dir():
        raise InputError(path, None, None, f"{what} not found" if not path.exists() else f"{what} must be a folder")
    return path


def _writable_parent(path: Path) -> None:
    """The nearest existing ancestor of `path` is a folder this process can create entries in."""
    for parent in path.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise InputError(path, None, None, f"cannot write here: {parent} is a file, not a folder")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise InputError(path, None, None, f"cannot write here: no permission to write in {parent}")
            return


def writable_folder(path: Path) -> Path:
    """`path` is a folder (or can be created as one) that this process can write in."""
    if path.exists() and not path.is_dir():
        raise InputError(path, None, None, "exists and is a file; a folder is needed here")
    _writable_parent(path)
    if path.is_dir() and not os.access(path, os.W_OK | os.X_OK):
        raise InputError(path, None, None, "no permission to write in this folder")
    return path


def output_file(path: Path, *, force: bool, inputs: Iterable[Path] = ()) -> Path:
    """`path` can be written: not a folder, not under a file, not one of `inputs`; an existing file needs `force`."""
    if path.is_dir():
        raise InputError(path, None, None, "is a folder; give a file name for the output")
    _writable_parent(path)
    for source in inputs:
        if path.exists() and source.exists() and path.samefile(source):
            raise InputError(path, None, None, "is also an input of this command; write the output elsewhere")
    if path.exists() and not force:
        raise InputError(path, None, None, "already exists; pass --force to replace it")
    return path


# ------------------------------------------------------------------------------------------------ input files


def text_lengths(path: Path | None, texts: Iterable[tuple[str, str]], field: str) -> None:
    """Every (label, text) is at most `MAX_TEXT_CHARS` characters long."""
    for label, text in texts:
        if len(text) > MAX_TEXT_CHARS:
            raise InputError(path, None, field, f"{label} is {len(text):,} characters long; the limit is "
                                                f"{MAX_TEXT_CHARS:,} (a judgement prompt must fit the model's context)")


def stimuli(path: Path | None, frames: int | None, *, min_frames: int = 1) -> StimulusSet:
    """The stimulus set a command will use (the first `frames` frames), parsed, validated and length-checked."""
    from entangle.stimuli import load_stimuli  # noqa: PLC0415

    if path is not None:
        input_file(path, "stimulus file")
    stim = load_stimuli(path)
    available = len(stim.frames())
    at_least("--frames", frames, min_frames)
    if frames is not None and frames > available:
        raise OptionError("--frames", f"{frames} asked for, but {stim.source} has only {available} frames")
    if available < min_frames:
        raise InputError(path, None, "frame", f"{available} frame(s); this command needs at least {min_frames}")
    stim = stim.subset(frames) if frames else stim
    text_lengths(path, ((f"item {it.id!r}", it.text) for it in stim.items), "text")
    return stim


def ratings(path: Path, stim: StimulusSet) -> None:
    """A human ratings file parses against these stimuli, on the scale, and rates every kind (after exclusions)."""
    from entangle.analysis.norms import load_norms  # noqa: PLC0415

    input_file(path, "ratings file")
    load_norms(path, stim.to_frame().rename(columns={"id": "item_id"}), n_boot=20)


def texts(path: Path, column: str | None) -> list[str]:
    """The texts to score, read and length-checked."""
    from entangle.score import read_texts  # noqa: PLC0415

    input_file(path, "texts file")
    items = read_texts(path, column)
    text_lengths(path, ((f"text {i + 1}", t) for i, t in enumerate(items)), column or "text")
    return items



def studies(spec: str) -> tuple[str, ...]:
    """`--studies`: comma-separated known study names (or `all`); the entanglement study always runs first."""
    from entangle.studies import STUDIES  # noqa: PLC0415

    names = list(STUDIES) if spec.strip() == "all" else [s.strip() for s in spec.split(",") if s.strip()]
    unknown = [s for s in names if s not in STUDIES]
    if unknown:
        raise OptionError("--studies", f"unknown study {unknown[0]!r}; known: {', '.join(STUDIES)} or all")
    return ("entanglement", *(s for s in STUDIES if s in names and s != "entanglement"))
