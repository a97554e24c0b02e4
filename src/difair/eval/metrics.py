"""Open-set metrics. Convention: ``scores`` higher = more likely known; ``labels`` -1 marks unknown samples.

All metrics are rank-based (no sigmoid of the scores), return fractions in [0, 1], and accept numpy arrays or
tensors.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import torch
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

Values = npt.ArrayLike | torch.Tensor  # what every metric takes: a tensor, an array or a sequence of numbers

__all__ = [
    "closed_set_accuracy",
    "auroc",
    "aupr_in",
    "aupr_out",
    "fpr_at_tpr",
    "oscr",
    "osr_metrics",
]


def _np(x: Values) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu()
        if x.dtype in (torch.float16, torch.bfloat16):  # numpy has no bfloat16; float64 is kept as is
            x = x.float()
        x = x.numpy()
    return np.asarray(x)


def _split(scores: Values, labels: Values) -> tuple[np.ndarray, np.ndarray]:
    s, y = _np(scores).astype(np.float64).ravel(), _np(labels).ravel()
    if s.shape != y.shape:
        raise ValueError(f"scores and labels differ in length: {s.shape[0]} vs {y.shape[0]}")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores contain NaN or infinite values")
    known = y >= 0
    if known.all() or not known.any():
        raise ValueError("open-set metrics need both known (label >= 0) and unknown (label -1) samples")
    return s, known


def closed_set_accuracy(preds: Values, labels: Values) -> float:
    """Fraction of known samples (label >= 0) whose predicted class is right."""
    p, y = _np(preds).ravel(), _np(labels).ravel()
    known = y >= 0
    if not known.any():
        raise ValueError("closed-set accuracy needs at least one known sample")
    return float((p[known] == y[known]).mean())


def auroc(scores: Values, labels: Values) -> float:
    """Area under the ROC curve of known-vs-unknown detection (known = positive); ties count one half."""
    s, known = _split(scores, labels)
    return float(roc_auc_score(known.astype(int), s))


def aupr_in(scores: Values, labels: Values) -> float:
    """Average precision with the known samples as positives (score as is)."""
    s, known = _split(scores, labels)
    return float(average_precision_score(known.astype(int), s))


def aupr_out(scores: Values, labels: Values) -> float:
    """Average precision with the unknown samples as positives (negated score)."""
    s, known = _split(scores, labels)
    return float(average_precision_score((~known).astype(int), -s))


def fpr_at_tpr(scores: Values, labels: Values, tpr: float = 0.95) -> float:
    """Fraction of unknowns accepted at the highest threshold that accepts at least ``tpr`` of the knowns."""
    if not 0 < tpr <= 1:
        raise ValueError(f"tpr must be in (0, 1], got {tpr}")
    s, known = _split(scores, labels)
    fpr_curve, tpr_curve, _ = roc_curve(known.astype(int), s, drop_intermediate=False)
    idx = int(np.searchsorted(tpr_curve, tpr - 1e-12, side="left"))
    return float(fpr_curve[min(idx, len(fpr_curve) - 1)])


def oscr(scores: Values, preds: Values, labels: Values) -> float:
    """Open-Set Classification Rate (Dhamija et al. 2018): area under CCR vs FPR over all thresholds.

    CCR(t) = fraction of knowns accepted (score >= t) *and* correctly classified; FPR(t) = fraction of unknowns
    accepted. The curve runs from (0, 0) (reject all) to (1, closed-set accuracy) (accept all); tied scores move
    together and the area is the trapezoid rule, so OSCR equals AUROC when every known is classified right.
    """
    s, known = _split(scores, labels)
    p, y = _np(preds).ravel(), _np(labels).ravel()
    correct = known & (p == y)
    order = np.argsort(-s, kind="stable")
    s_sorted = s[order]
    tp = np.cumsum(correct[order])
    fp = np.cumsum(~known[order])
    last = np.r_[s_sorted[1:] != s_sorted[:-1], True]  # last index of each distinct threshold
    ccr = np.r_[0.0, tp[last] / known.sum()]
    fpr = np.r_[0.0, fp[last] / (~known).sum()]
    return float(np.trapezoid(ccr, fpr) if hasattr(np, "trapezoid") else np.trapz(ccr, fpr))


def osr_metrics(scores: Values, preds: Values, labels: Values) -> dict[str, float]:
    """All metrics of one score: closed-set accuracy, AUROC, OSCR, AUPR-in, AUPR-out, FPR at 95% TPR."""
    return {
        "closed_set_accuracy": closed_set_accuracy(preds, labels),
        "auroc": auroc(scores, labels),
        "oscr": oscr(scores, preds, labels),
        "aupr_in": aupr_in(scores, labels),
        "aupr_out": aupr_out(scores, labels),
        "fpr95": fpr_at_tpr(scores, labels, 0.95),
    }
