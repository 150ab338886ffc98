"""Validity of the pairwise judge's anchor-based scores, reported beside them (the VALUEFLOW comparison):
leave-one-anchor-out rank correlation, and on the same responses the variance across repeated evaluations and
the sign-flip rate of anchor-based scoring (repeats: fresh window draws) vs direct 0-9 rating (repeats: rating
prompt wordings); plus agreement with the probe judge. Intervals: resampling responses.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from entangle.models import LoadedModel
from entangle.studies.valueflow.evaluator import AnchorEvaluator, sign_flips
from entangle.studies.valueflow.judges import DIRECT_PROMPTS, direct_ratings
from entangle.studies.valueflow.summary import boot
from entangle.values import Value


def _rho(a: np.ndarray, b: np.ndarray) -> float:
    return float(spearmanr(a, b).statistic) if len(a) > 2 and np.ptp(a) > 0 and np.ptp(b) > 0 else float("nan")


def validity_rows(pairwise: AnchorEvaluator, judge: LoadedModel, value: Value, sub: pd.DataFrame, loao_anchors: int,
                  loao_m: int, repeats: int, n_boot: int, seed: int) -> tuple[list[dict], pd.DataFrame]:
    """Calibrate and score `sub`'s responses with the pairwise evaluator; one validity row, and the scores
    (`I_pairwise_<value>`, `D_direct_<value>`) indexed like `sub`."""
    if not 2 <= repeats <= len(DIRECT_PROMPTS):
        raise ValueError(f"repeats must be in 2..{len(DIRECT_PROMPTS)}, got {repeats}")
    loao = pairwise.calibrate(max_anchors=loao_anchors, m=loao_m, n_boot=n_boot)
    texts = list(sub.text)
    reps = np.array([pairwise.score(texts, seed=seed + r).intensity for r in range(repeats)])
    direct = direct_ratings(judge, value, texts)[:repeats]
    probe_i = sub[f"I_probe_{value.id}"].to_numpy(dtype=float)
    row: dict = {"value": value.id, "judge": "pairwise", **{f"loao_{k}": x for k, x in loao.items()},
                 "loao_windows": loao_m, "n_responses": len(texts), "repeats": repeats}
    for name, r in (("anchor", reps), ("direct", direct)):
        v = r.var(axis=0, ddof=1)[:, None]
        row[f"{name}_variance"], row[f"{name}_variance_ci_low"], row[f"{name}_variance_ci_high"] = boot(
            lambda s: s.mean(), v, n_boot, seed)
        flips = sign_flips(r).astype(float)[:, None]
        row[f"{name}_sign_flips"] = float(flips.mean())
        row[f"{name}_sign_flips_ci_low"], row[f"{name}_sign_flips_ci_high"] = boot(
            lambda s: s.mean(), flips, n_boot, seed)[1:]
    row["spearman_with_probe"] = _rho(reps[0], probe_i)
    row["spearman_direct_vs_anchor"] = _rho(direct.mean(0), reps.mean(0))
    row["n_prompts"] = int(getattr(pairwise.judge, "n_prompts", 0))
    scores = pd.DataFrame({f"I_pairwise_{value.id}": reps[0], f"D_direct_{value.id}": direct.mean(0)},
                          index=sub.index)
    return [row], scores
