"""Matcher: assign each prediction (anchor or proposal) to a ground-truth box, or to none.

torchvision.models.detection._utils.Matcher semantics, on NumPy arrays. Input: a quality
matrix (G, P), usually IoU, ground truths in rows, predictions in columns. For each
prediction take its best ground truth (first one on ties) and its IoU v:

    v >= high_threshold               -> the index of that ground truth (a positive)
    low_threshold <= v < high_threshold -> BETWEEN_THRESHOLDS (-2, ignored in training)
    v < low_threshold                 -> BELOW_LOW_THRESHOLD (-1, a negative)

So an IoU exactly at 0.7 (high) is positive and one exactly at 0.3 (low) is "between".

``allow_low_quality_matches`` (the RPN uses it): a ground truth that no prediction reaches
with ``high_threshold`` still gets predictions: for each ground truth, every prediction whose
IoU with it equals that ground truth's maximum IoU (all of them, on a tie) is matched, to its
own best ground truth (as torchvision does: the argmax over ground truths, which is this one
unless another ground truth overlaps that prediction more).
"""

import numpy as np


class Matcher:
    BELOW_LOW_THRESHOLD = -1
    BETWEEN_THRESHOLDS = -2

    def __init__(self, high_threshold, low_threshold, allow_low_quality_matches=False):
        if low_threshold > high_threshold:
            raise ValueError(
                f"Matcher: low_threshold {low_threshold} > high_threshold {high_threshold}"
            )
        self.high_threshold = high_threshold
        self.low_threshold = low_threshold
        self.allow_low_quality_matches = allow_low_quality_matches

    def __call__(self, match_quality_matrix):
        """Matched ground-truth index per prediction: int64 array (P,), values in [0, G) or
        -1 / -2 (see the module docstring)."""
        return self.match(match_quality_matrix)[0]

    def match(self, match_quality_matrix):
        """(matches, low_quality_only): ``matches`` as ``__call__`` returns it, and a bool
        array (P,) that is True for predictions that are matched (>= 0) only because of the
        low-quality rule (their best IoU is below ``high_threshold``). All False when
        ``allow_low_quality_matches`` is off.

        ``match_quality_matrix`` is a NumPy array: target assignment needs no gradient, so
        the callers convert once (``box_iou(gt, boxes).numpy()``) and stay in NumPy."""
        if not isinstance(match_quality_matrix, np.ndarray):
            raise TypeError(
                "Matcher: match_quality_matrix must be a NumPy array (G, P), got "
                f"{type(match_quality_matrix).__name__}; pass iou.numpy() for a Tensor"
            )
        if match_quality_matrix.ndim != 2:
            raise ValueError(
                f"Matcher: match_quality_matrix must be (G, P), got {match_quality_matrix.shape}"
            )
        if match_quality_matrix.size == 0:
            if match_quality_matrix.shape[0] == 0:
                raise ValueError("Matcher: no ground-truth boxes for one of the images")
            raise ValueError("Matcher: no proposal boxes for one of the images")
        quality = match_quality_matrix
        matched_vals = quality.max(axis=0)  # (P,) best IoU of each prediction
        all_matches = quality.argmax(axis=0).astype(np.int64)  # its ground truth (first on ties)
        matches = all_matches.copy()
        matches[matched_vals < self.low_threshold] = self.BELOW_LOW_THRESHOLD
        between = (matched_vals >= self.low_threshold) & (matched_vals < self.high_threshold)
        matches[between] = self.BETWEEN_THRESHOLDS
        low_quality_only = np.zeros(matches.shape, dtype=np.bool_)
        if self.allow_low_quality_matches:
            best_for_each_gt = quality.max(axis=1)  # (G,)
            # every (gt, prediction) pair at that gt's maximum, ties included
            _, pred_inds = np.nonzero(quality == best_for_each_gt[:, None])
            low_quality_only[pred_inds] = matches[pred_inds] < 0
            matches[pred_inds] = all_matches[pred_inds]
        return matches, low_quality_only
