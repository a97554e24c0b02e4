"""Pure tensor functions of DIFAIR and CAC: anchors, distances, losses, penalties, rejection scores.

Everything else in the package calls these; nothing re-derives a distance on its own.
Conventions: class ``c`` owns representation dims ``[c*N, (c+1)*N)``; distances are Euclidean (not squared).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = [
    "class_anchors",
    "filter_correlations",
    "widen",
    "default_radius",
    "RADIUS_RATIO",
    "anchor_distances",
    "difair_loss",
    "filter_correlation_penalty",
    "cac_loss",
    "cac_rejection_score",
    "class_activations",
    "smoothed_targets",
    "smoothed_cross_entropy",
]

_REDUCTIONS = ("mean", "sum", "none")

# The choices of each option of these functions: read by the config's validation (one list per option).
LOSS_MODES = ("smooth", "hard")  # difair.loss_mode
CORR_VARIANTS = ("paper", "reference")  # difair.corr_variant
CAC_SOFTMIN = ("sample", "global")  # cac.rejection_softmin
LABEL_SMOOTHING_FORMS = ("pytorch", "vaze")  # ce.label_smoothing_form


def class_anchors(
    num_classes: int,
    features_per_class: int,
    alpha: float,
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """Anchors ``[num_classes, num_classes*features_per_class]``: alpha on the class's own N dims, 0 elsewhere."""
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    if features_per_class < 1:
        raise ValueError(f"features_per_class (N) must be >= 1, got {features_per_class}")
    if not alpha > 0:
        raise ValueError(f"alpha must be > 0, got {alpha}")
    eye = torch.eye(num_classes, dtype=dtype or torch.get_default_dtype(), device=device)
    return eye.repeat_interleave(features_per_class, dim=1) * alpha


RADIUS_RATIO = 0.6
"""The paper's hypersphere radius as a fraction of the anchor distance ``d_aa`` (``difair.radius_ratio``)."""


def default_radius(features_per_class: int, alpha: float, ratio: float = RADIUS_RATIO) -> float:
    """The paper's hypersphere radius ``ratio * d_aa`` with ``d_aa = sqrt(2*N*alpha^2)`` (18.97 for N=5, alpha=10)."""
    if features_per_class < 1 or not alpha > 0 or not ratio > 0:
        raise ValueError(
            f"default_radius needs features_per_class >= 1, alpha > 0 and ratio > 0, got {features_per_class}, "
            f"{alpha} and {ratio}"
        )
    return ratio * math.sqrt(2 * features_per_class * alpha * alpha)


def _safe_norm(diff: Tensor, dim: int = -1) -> Tensor:
    """Euclidean norm whose gradient is 0 (not NaN) where the norm is exactly 0; NaN stays NaN (a NaN in z must not
    read as distance 0, the best score)."""
    sq = diff.pow(2).sum(dim)
    zero = sq == 0
    return torch.where(zero, torch.ones_like(sq), sq).sqrt().masked_fill(zero, 0.0)


def widen(x: Tensor) -> Tensor:
    """``x`` in float32 when it is narrower (float16, bfloat16, an integer type); float32 and float64 unchanged, so
    losses and scores of an autocast batch are computed in float32 and a float64 caller keeps its precision."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def anchor_distances(z: Tensor, anchors: Tensor) -> Tensor:
    """Euclidean distances ``[B, num_classes]`` between representations ``z [B, D]`` and ``anchors [C, D]``."""
    if z.dim() != 2 or anchors.dim() != 2 or z.shape[1] != anchors.shape[1]:
        raise ValueError(
            f"expected z [B, D] and anchors [C, D] with the same D, got {tuple(z.shape)} and {tuple(anchors.shape)}"
        )
    anchors = anchors.to(dtype=z.dtype, device=z.device)
    return _safe_norm(z.unsqueeze(1) - anchors.unsqueeze(0), dim=-1)


def _reduce(per_sample: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return per_sample.mean()
    if reduction == "sum":
        return per_sample.sum()
    if reduction == "none":
        return per_sample
    raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def _check_target(target: Tensor, num_classes: int, batch: int | None = None) -> None:
    """Targets are a 1-D integer tensor of known-class indices (one per sample of ``batch`` when given)."""
    if not isinstance(target, Tensor):
        raise TypeError(f"targets must be a torch tensor of class indices, got {type(target).__name__}")
    if target.dtype in (torch.bool, torch.uint8) or target.is_floating_point() or target.is_complex():
        raise TypeError(
            f"targets must be integer class indices (torch.long), got {target.dtype}: use target.long()"
        )
    if target.dim() != 1 or (batch is not None and target.shape[0] != batch):
        want = f"[{batch}]" if batch is not None else "[B]"
        raise ValueError(
            f"targets must have shape {want} (one class index per sample), got {tuple(target.shape)}"
        )
    if target.numel() and (int(target.min()) < 0 or int(target.max()) >= num_classes):
        raise ValueError(
            f"targets must be known-class indices in [0, {num_classes}); unknown samples (-1) cannot be trained on"
        )


def difair_loss(
    z: Tensor,
    target: Tensor,
    anchors: Tensor,
    radius: float,
    inner_weight: float = 0.1,
    mode: str = "smooth",
    reduction: str = "mean",
) -> Tensor:
    """DIFAIR distance loss with ``d = ||z - anchor(target)||``.

    ``smooth``: ``inner_weight*d + max(d - radius, 0)`` (the paper's L_in + L_out);
    ``hard``: ``max(d - radius, 0)`` (no pull once inside the hypersphere).
    """
    if not radius > 0:
        raise ValueError(f"radius must be > 0, got {radius}")
    if mode not in LOSS_MODES:
        raise ValueError(f"mode must be one of {LOSS_MODES}, got {mode!r}")
    _check_target(target, anchors.shape[0], z.shape[0])
    if z.dim() != 2 or z.shape[1] != anchors.shape[1]:
        raise ValueError(
            f"expected z [B, D] with the anchors' D = {anchors.shape[1]} (classes x features per class), got "
            f"{tuple(z.shape)}: the head and the loss must be built for the same classes and features"
        )
    anchors = anchors.to(dtype=z.dtype, device=z.device)
    d = _safe_norm(z - anchors[target], dim=-1)
    per_sample = torch.relu(d - radius)
    if mode == "smooth":
        per_sample = per_sample + inner_weight * d
    return _reduce(per_sample, reduction)


def filter_correlations(weight: Tensor, features_per_class: int) -> Tensor:
    """Pearson correlations ``[n_c, N, N]`` between the flattened filters of each class (population statistics)."""
    out = weight.shape[0]
    if out % features_per_class:
        raise ValueError(
            f"the head has {out} filters, not a multiple of features_per_class={features_per_class}"
        )
    x = weight.reshape(out // features_per_class, features_per_class, -1)
    if x.dtype not in (torch.float32, torch.float64):  # half/bfloat16 (AMP): compute in float32
        x = x.float()
    xc = x - x.mean(dim=-1, keepdim=True)
    n = x.shape[-1]
    cov = xc @ xc.transpose(1, 2) / n
    # std == 0 (a constant filter) is replaced by 1, as in the authors' code. The replacement is made on the
    # variance, before the sqrt: sqrt'(0) is infinite and would turn the masked-out zero gradient into NaN.
    var = xc.pow(2).mean(dim=-1)
    std = torch.where(var > 0, var, torch.ones_like(var)).sqrt()
    return cov / (std.unsqueeze(-1) * std.unsqueeze(-2))


def filter_correlation_penalty(weight: Tensor, features_per_class: int, variant: str = "paper") -> Tensor:
    """Penalty on the Pearson correlation between the head's filters of the same class.

    ``weight`` is the added conv's weight ``[N*n_c, C, k, k]``; each filter is flattened to one vector.
    Only pairs of filters of the same class are penalised (cross-class correlation stays free).

    - ``"paper"``: per class, the mean of ``|corr|`` over its ``N(N-1)/2`` pairs; then the mean over classes.
      This is the paper's formula with the absolute value its stated aim ("close to 0") needs. Range [0, 1].
    - ``"reference"``: what the authors' code computes: per class ``(1/N^2) * sum_{i<j} |corr_ij|`` (the mean over
      all ``N^2`` block entries, diagonal zeroed), **summed** over classes. Range [0, n_c*(N-1)/(2N)].

    For ``N=5`` the reference value of a class is ``0.4x`` the paper value, and classes are summed, not averaged.
    With ``N=1`` there are no pairs and both variants are 0.
    """
    if variant not in CORR_VARIANTS:
        raise ValueError(f"variant must be one of {CORR_VARIANTS}, got {variant!r}")
    n = features_per_class
    if n < 2:
        return weight.new_zeros(())
    corr = filter_correlations(weight, n).abs()
    upper = torch.triu(torch.ones(n, n, dtype=torch.bool, device=weight.device), diagonal=1)
    pair_sums = corr[:, upper].sum(dim=-1)  # [n_c]
    if variant == "paper":
        return (pair_sums / (n * (n - 1) / 2)).mean()
    return (pair_sums / (n * n)).sum()


def cac_loss(
    logits: Tensor,
    target: Tensor,
    anchors: Tensor,
    lambda_: float = 0.1,
    *,
    tuplet_includes_target: bool = False,
    reduction: str = "mean",
) -> Tensor:
    """Class Anchor Clustering loss (Miller et al. 2021): ``lambda_ * d_y + log(1 + sum_{j != y} exp(d_y - d_j))``.

    ``tuplet_includes_target=True`` reproduces the DIFAIR authors' code, which leaves the true class in the sum
    (``log(2 + ...)``).
    """
    _check_target(target, anchors.shape[0], logits.shape[0])
    d = anchor_distances(logits, anchors)
    d_y = d.gather(1, target.view(-1, 1))
    diff = d_y - d
    if not tuplet_includes_target:
        diff = diff.scatter(1, target.view(-1, 1), float("-inf"))
    tuplet = torch.logsumexp(torch.cat([torch.zeros_like(d_y), diff], dim=1), dim=1)
    return _reduce(lambda_ * d_y.squeeze(1) + tuplet, reduction)


def cac_rejection_score(distances: Tensor, *, normalize: str = "sample") -> Tensor:
    """CAC rejection scores ``gamma = d * (1 - softmin(d))`` per class, ``[B, C]``; lower = more likely that class.

    ``normalize="sample"`` is CAC's softmin over the classes of each sample; ``"global"`` reproduces the DIFAIR
    authors' code, which normalises over the whole array (so ``gamma`` is close to ``d``).
    """
    if normalize not in CAC_SOFTMIN:
        raise ValueError(f"normalize must be one of {CAC_SOFTMIN}, got {normalize!r}")
    d = distances.double() if normalize == "sample" else distances.double().reshape(1, -1)
    return (d * _one_minus_softmin(d)).to(distances.dtype).reshape(distances.shape)


def _one_minus_softmin(d: Tensor) -> Tensor:
    """``1 - softmin(d)`` along dim 1 without cancellation: at each row's nearest entry it is the others' share,
    ``sigmoid(logsumexp_{j != c}(-d_j) + d_c)``, which ``1 - softmin`` rounds to 0 once that entry is about 17
    (float32) or 37 (float64) nearer than the rest; elsewhere ``-expm1(log softmin)``."""
    out = -torch.expm1(torch.log_softmax(-d, dim=1))
    near = d.argmin(dim=1, keepdim=True)
    rest = (-d).scatter(1, near, float("-inf")).logsumexp(dim=1, keepdim=True)
    return out.scatter(1, near, torch.sigmoid(rest + d.gather(1, near)))


def class_activations(z: Tensor, features_per_class: int) -> Tensor:
    """Sum of each class's N features, ``[B, n_c]``."""
    if z.shape[-1] % features_per_class:
        raise ValueError(
            f"z has {z.shape[-1]} dims, not a multiple of features_per_class={features_per_class}"
        )
    return z.reshape(*z.shape[:-1], z.shape[-1] // features_per_class, features_per_class).sum(-1)


def smoothed_targets(target: Tensor, num_classes: int, smoothing: float, form: str = "pytorch") -> Tensor:
    """Soft targets ``[B, C]`` of label smoothing ``smoothing`` in ``form``.

    ``pytorch`` (``F.cross_entropy(label_smoothing=s)``): the true class gets 1 - s + s/C, every class s/C.
    ``vaze`` (Vaze et al.'s ``smooth_one_hot``): the true class gets 1 - s, every other class s/(C - 1).
    """
    if form not in LABEL_SMOOTHING_FORMS:
        raise ValueError(f"form must be one of {LABEL_SMOOTHING_FORMS}, got {form!r}")
    if num_classes < 2 and form == "vaze":
        raise ValueError("Vaze's label smoothing needs at least 2 classes")
    _check_target(target, num_classes)
    one_hot = torch.nn.functional.one_hot(target, num_classes).float()
    if form == "pytorch":
        return one_hot * (1.0 - smoothing) + smoothing / num_classes
    return one_hot * (1.0 - smoothing) + (1.0 - one_hot) * (smoothing / (num_classes - 1))


def smoothed_cross_entropy(
    logits: Tensor, target: Tensor, smoothing: float, form: str = "pytorch", reduction: str = "mean"
) -> Tensor:
    """Cross-entropy of ``logits [B, C]`` against label-smoothed targets (``smoothed_targets``).

    The ``pytorch`` form is ``F.cross_entropy(..., label_smoothing=smoothing)`` itself.
    """
    if form == "pytorch":
        return torch.nn.functional.cross_entropy(
            logits, target, label_smoothing=smoothing, reduction=reduction
        )
    q = smoothed_targets(target, logits.shape[1], smoothing, form)
    per_sample = -(q * torch.log_softmax(logits, dim=1)).sum(dim=1)
    return _reduce(per_sample, reduction)
