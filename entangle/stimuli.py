"""Stimuli: the factorial item schema, loading with validation, and frame-grouped cross-validation splits."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.model_selection import GroupKFold


def frame_folds(groups: Sequence[str], n_splits: int = 5, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train_idx, test_idx) pairs with every frame wholly in train or in test: lexical overlap cannot leak."""
    groups = np.asarray(groups)
    n_frames = len(np.unique(groups))
    if n_frames < 2:
        raise ValueError(f"grouped cross-validation needs >= 2 frames, got {n_frames}")
    splitter = GroupKFold(n_splits=min(n_splits, n_frames), shuffle=True, random_state=seed)
    return [(tr, te) for tr, te in splitter.split(np.zeros(len(groups)), groups=groups)]
