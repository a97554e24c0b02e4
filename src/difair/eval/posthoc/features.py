"""Scores from features: KNN on normalised features, Mahalanobis with a tied covariance, Relative Mahalanobis.

They read ``features["pooled"]`` (globally pooled backbone features) by default; ``"knn:z"`` etc. read the
head's output representation z. KNN is difair's own (a chunked matrix-multiply top-k on the features' device);
Mahalanobis and RMD go through pytorch-ood (``pip install "difair[posthoc]"``), rescaled to the papers' values.
"""

from __future__ import annotations

import torch
from torch import Tensor

from difair.errors import DifairError
from difair.eval.posthoc.base import Detector, FeatureSet, register_detector, require_pytorch_ood

__all__ = ["knn_scores", "KNN", "Mahalanobis", "RelativeMahalanobis"]


def _normalize(x: Tensor) -> Tensor:
    x = x.float()
    return x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)


def knn_scores(query: Tensor, bank: Tensor, k: int, chunk_elems: int = 1 << 25) -> Tensor:
    """Minus the Euclidean distance from each row of ``query`` to its k-th nearest row of ``bank``.

    Both are L2-normalised, so ``|q - b|^2 = 2 - 2 q.b``: one matmul and a top-k per chunk of queries
    (``chunk_elems`` bounds the similarity block), on ``bank``'s device. A bank row present twice counts as two neighbours.
    """
    if not 1 <= k <= len(bank):
        raise DifairError(f"knn: k={k} must be between 1 and the number of fit samples ({len(bank)})")
    q, b = _normalize(query).to(bank.device), _normalize(bank)
    rows = max(1, chunk_elems // len(b))
    out = []
    for i in range(0, len(q), rows):
        sim = q[i : i + rows] @ b.T
        kth = sim.topk(k, dim=1, largest=True, sorted=False).values.min(dim=1).values
        out.append(-(2.0 - 2.0 * kth).clamp_min(0).sqrt())
    return torch.cat(out).cpu() if out else torch.empty(0)


@register_detector("knn")
class KNN(Detector):
    """Deep nearest neighbours (Sun et al. 2022, OOD detection with deep nearest neighbors, ICML): minus the
    distance of the normalised feature to its k-th nearest normalised training feature; k = 50 (paper, CIFAR-10).
    The training features are kept on ``device`` (default: the GPU when there is one) for the matmul top-k.
    """

    default_source = "pooled"
    needs_fit = True

    def __init__(
        self, source: str | None = None, k: int = 50, device: str | torch.device | None = None
    ) -> None:
        super().__init__(source)
        self.k, self.device = k, device

    def cannot_fit(self, train: FeatureSet) -> str | None:
        return f"k={self.k} exceeds the {len(train)} fit samples" if self.k > len(train) else None

    def _fit(self, train: FeatureSet) -> None:
        device = self.device or ("cuda" if torch.cuda.is_available() else train.get(self.source).device)
        self.bank = _normalize(train.get(self.source).to(device))

    def _score(self, x: FeatureSet) -> Tensor:
        return knn_scores(x.get(self.source), self.bank, self.k)


def _missing_classes(labels: Tensor, num_classes: int) -> str | None:
    """Why a Gaussian per class cannot be fitted: the classes 0..num_classes-1 (one per logit) without fit samples
    (a missing last class would otherwise go unnoticed); None when every class has some."""
    missing = sorted(set(range(num_classes)) - set(labels.unique().tolist()))
    if not missing:
        return None
    return (
        f"every class 0..{num_classes - 1} needs fit samples; none for class "
        f"{', '.join(map(str, missing[:6]))}{' ...' if len(missing) > 6 else ''}"
    )


@register_detector("mahalanobis")
class Mahalanobis(Detector):
    """Mahalanobis distance with class means and one tied covariance (Lee et al. 2018, A simple unified framework
    for detecting OOD samples and adversarial attacks, NeurIPS): minus the smallest squared distance to a class mean.

    Through pytorch-ood's ``Mahalanobis`` (no input pre-processing); its covariance is not divided by n, so its
    value is multiplied back by 2n to give ``-min_c (x - mu_c)^T Sigma^-1 (x - mu_c)``.
    """

    default_source = "pooled"
    needs_fit = True
    _impl = "Mahalanobis"
    _factor = 2.0  # pytorch-ood reports half the squared distance

    def cannot_fit(self, train: FeatureSet) -> str | None:
        n, dims = train.get(self.source).flatten(1).shape
        classes = train.logits.shape[1]
        missing = _missing_classes(train.labels, classes)  # the first thing to fix when both hold
        if missing:
            return missing
        if n - classes < dims:  # the within-class scatter has rank n - classes at most: its inverse is noise
            return (
                f"a tied covariance of {dims} features needs at least {dims + classes} fit samples ({dims} + one per "
                f"class), fit_on has {n}: fit on more samples, or use knn"
            )
        return None

    def _fit(self, train: FeatureSet) -> None:
        detector_cls = getattr(require_pytorch_ood().detector, self._impl)
        x, y = train.get(self.source).float(), train.labels  # every class has samples: cannot_fit
        self._det = detector_cls(None).fit_features(x, y.to(x.device))
        self._n = len(x)

    def _score(self, x: FeatureSet) -> Tensor:
        return -self._factor * self._n * self._det.predict_features(x.get(self.source).float()).double()


@register_detector("rmd")
class RelativeMahalanobis(Mahalanobis):
    """Relative Mahalanobis distance (Ren et al. 2021, A simple fix to Mahalanobis distance for improving near-OOD
    detection): minus ``min_c d_c(x) - d_0(x)``, with ``d_0`` the distance under one Gaussian fitted to all classes.

    Through pytorch-ood's ``RMD``, rescaled by n as ``mahalanobis``.
    """

    _impl = "RMD"
    _factor = 1.0
