"""What every post-hoc detector shares: the FeatureSet it reads, the Detector interface and the registry.

Convention: a detector's score is higher for samples that are more likely known; label -1 marks unknown samples.
Detectors are fitted on known training (or validation) samples only: ``Detector.fit`` refuses any row labelled -1.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from types import ModuleType
from typing import ClassVar, TypeVar

import torch
from torch import Tensor

from difair.errors import DifairError

__all__ = [
    "FeatureSet",
    "Detector",
    "register_detector",
    "build_detector",
    "available_detectors",
    "require_pytorch_ood",
]

D = TypeVar("D", bound="Detector")


@dataclass
class FeatureSet:
    """Everything the post-hoc detectors read about a set of samples, extracted once.

    - ``logits`` [n, C]: the per-class outputs that stand in for logits (CE and CAC: the head's logits; DIFAIR:
      minus the distances to the class anchors, so that argmax is the nearest anchor).
    - ``labels`` [n]: class index, -1 for unknown samples.
    - ``features``: name -> [n, D] (``"pooled"``: globally pooled backbone features, the head's input;
      ``"z"``: the head's output representation; ``"class_activation"``: DIFAIR's per-class sums; ``"odin"``:
      temperature-scaled logits of ODIN-perturbed inputs).
    - ``preds`` [n]: closed-set predictions when they are not ``logits.argmax(1)`` (CAC).
    - ``head``: maps ``features[head_input]`` to ``logits`` (for ReAct and ASH); ``linear``: its weight [C, D] and
      bias [C] (or None) when the head is linear (for ViM).
    """

    logits: Tensor
    labels: Tensor
    features: dict[str, Tensor] = field(default_factory=dict)
    preds: Tensor | None = None
    head: Callable[[Tensor], Tensor] | None = None
    head_input: str = "pooled"
    linear: tuple[Tensor, Tensor | None] | None = None

    def __post_init__(self) -> None:
        self.labels = torch.as_tensor(self.labels).long()  # numpy arrays and lists too
        self.logits = torch.as_tensor(self.logits)
        if self.labels.dim() != 1:
            raise ValueError(
                f"FeatureSet: labels must be one class index per row, got shape {tuple(self.labels.shape)}"
            )
        n = len(self.labels)
        for name, t in [("logits", self.logits), ("preds", self.preds), *self.features.items()]:
            if t is not None and len(t) != n:
                raise ValueError(f"FeatureSet: {name} has {len(t)} rows but labels has {n}")

    def __len__(self) -> int:
        return len(self.labels)

    def get(self, source: str) -> Tensor:
        """``logits`` or one of ``features``, with an error that lists what there is."""
        if source == "logits":
            return self.logits
        if source not in self.features:
            raise DifairError(
                f"this FeatureSet has no {source!r} features (it has: logits, {', '.join(self.features)})"
            )
        return self.features[source]

    def has(self, source: str) -> bool:
        return source == "logits" or source in self.features

    @property
    def predictions(self) -> Tensor:
        """Closed-set predictions: ``preds`` when given, else the argmax of ``logits``."""
        return self.preds if self.preds is not None else self.logits.argmax(dim=1)

    @property
    def is_known_only(self) -> bool:
        return bool((self.labels >= 0).all())

    def cat(self, other: FeatureSet) -> FeatureSet:
        """Rows of ``self`` then rows of ``other`` (same feature names; the head of ``self``)."""
        if set(self.features) != set(other.features):
            raise ValueError(f"feature names differ: {sorted(self.features)} vs {sorted(other.features)}")
        preds = None
        if self.preds is not None or other.preds is not None:
            preds = torch.cat([self.predictions, other.predictions])
        return replace(
            self,
            logits=torch.cat([self.logits, other.logits]),
            labels=torch.cat([self.labels, other.labels]),
            features={k: torch.cat([v, other.features[k]]) for k, v in self.features.items()},
            preds=preds,
        )

    def as_unknown(self) -> FeatureSet:
        """The same rows labelled -1 (unknown)."""
        return replace(self, labels=torch.full_like(self.labels, -1))


class Detector(ABC):
    """A post-hoc open-set score: ``fit`` on known training samples, then ``score`` (higher = more likely known).

    ``source`` names the FeatureSet entry the detector reads (``"logits"`` or a key of ``features``).
    """

    name: ClassVar[str] = ""
    default_source: ClassVar[str] = "logits"
    needs_fit: ClassVar[bool] = False

    def __init__(self, source: str | None = None) -> None:
        self.source = source or self.default_source
        self._fitted = not self.needs_fit

    @property
    def spec(self) -> str:
        """The name that ``build_detector`` reads back: ``name`` or ``name:source``."""
        return self.name if self.source == self.default_source else f"{self.name}:{self.source}"

    def unavailable(self, fs: FeatureSet) -> str | None:
        """Why this detector cannot run on ``fs`` (None when it can)."""
        if not fs.has(self.source):
            return f"needs {self.source!r} features"
        return None

    def cannot_fit(self, train: FeatureSet) -> str | None:
        """Why this detector cannot be fitted on ``train`` although it has the features (None when it can)."""
        return None

    def fit(self: D, train: FeatureSet) -> D:
        """Fit on known samples only; raise ``DifairError`` if any row is labelled -1 (unknown)."""
        if len(train) == 0:
            raise DifairError(f"{self.spec}: cannot fit on an empty set")
        if not train.is_known_only:
            raise DifairError(
                f"{self.spec}: the fit set holds {int((train.labels < 0).sum())} unknown (-1) samples; "
                "detectors are fitted on known training (or validation) images only, never on test images"
            )
        if (
            self.needs_fit
        ):  # a detector without a fit reads nothing of the fit set (ODIN's inputs live in the test set)
            self._check(train)
            why = self.cannot_fit(train)  # what evaluate() skips with this reason, a direct fit refuses
            if why:
                raise DifairError(f"{self.spec}: {why}")
        self._fit(train)
        self._fitted = True
        return self

    def score(self, x: FeatureSet) -> Tensor:
        """Scores [n] in float32, higher = more likely known."""
        if not self._fitted:
            raise DifairError(f"{self.spec}: call fit(train) before score(x)")
        self._check(x)
        return self._score(x).detach().float().reshape(-1)

    def _check(self, fs: FeatureSet) -> None:
        reason = self.unavailable(fs)
        if reason:
            raise DifairError(f"{self.spec} {reason}")

    def _fit(self, train: FeatureSet) -> None:  # noqa: B027 - most output scores need no fit
        """Learn the detector's statistics from ``train`` (known samples only)."""

    @abstractmethod
    def _score(self, x: FeatureSet) -> Tensor: ...

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec!r})"


_REGISTRY: dict[str, type[Detector]] = {}


def register_detector(name: str) -> Callable[[type[D]], type[D]]:
    """Class decorator that adds a detector to the registry under ``name``."""

    def wrap(cls: type[D]) -> type[D]:
        if name in _REGISTRY:
            raise ValueError(f"detector {name!r} registered twice")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return wrap


def available_detectors() -> list[str]:
    return sorted(_REGISTRY)


def build_detector(spec: str, **kwargs) -> Detector:
    """A detector from ``"name"`` or ``"name:source"`` (e.g. ``"knn:z"``, ``"energy:class_activation"``)."""
    name, _, source = spec.partition(":")
    if name not in _REGISTRY:
        raise DifairError(f"unknown score {name!r}; choose from {', '.join(available_detectors())}")
    cls = _REGISTRY[name]
    allowed = [p for p in inspect.signature(cls).parameters if p != "source"]
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise DifairError(
            f"score {name!r} takes no option {unknown[0]!r}: its options are {', '.join(allowed) or 'none'}"
        )
    return cls(source=source or None, **kwargs)


def require_pytorch_ood() -> ModuleType:
    """The ``pytorch_ood`` module, or a ``DifairError`` that says how to install it."""
    try:
        import pytorch_ood
    except ImportError as e:
        raise DifairError(
            'this detector uses pytorch-ood: pip install "difair[posthoc]" (or pip install pytorch-ood)'
        ) from e
    return pytorch_ood
