"""The method interface and its registry: everything the engine, the evaluation, prediction and the figures
need from a method, so that no caller outside ``difair.methods`` names a concrete method.

A method is built once per run from its config section and the number of known classes
(``build_method(cfg.method, options, num_classes)``); it creates its loss and anchors then. Scores follow the
package convention: higher = more likely known.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

from torch import Tensor, nn

from difair.errors import DifairError
from difair.eval.posthoc import FeatureSet, logit_feature_set

# what ``Method.per_class`` returns: distances (lower = more that class) or probabilities (higher)
PER_CLASS_KINDS = ("distance", "probability")


class Method(ABC):
    """One open-set method: its head, loss, prediction, scores and evaluation preparation."""

    name: ClassVar[str]
    default_score: ClassVar[str]
    score_names: ClassVar[tuple[str, ...]]
    per_class_kind: ClassVar[str] = "distance"  # what ``per_class`` returns: one of PER_CLASS_KINDS
    class_owned_features: ClassVar[bool] = False  # True: dims [c*N, (c+1)*N) of the output belong to class c
    config_section: ClassVar[str | None] = None  # the TrainConfig field holding its options (None: its name)

    def __init__(self, options: Any, num_classes: int):
        self.options = options
        self.num_classes = num_classes

    @classmethod
    def from_config(cls, options: Any, num_classes: int) -> Method:
        """The method with ``options`` (its config section, e.g. ``cfg.difair``) for ``num_classes`` classes."""
        return cls(options, num_classes)

    @property
    def outputs_per_class(self) -> int:
        """Length of each class's part of the output vector (N for DIFAIR, 1 for logits)."""
        return 1

    @property
    def output_dim(self) -> int:
        """Length of the model's output vector."""
        return self.num_classes * self.outputs_per_class

    @abstractmethod
    def build_head(self, in_channels: int) -> nn.Module:
        """A freshly initialised head over a backbone with ``in_channels`` output channels."""

    @abstractmethod
    def loss_terms(
        self, outputs: Tensor, target: Tensor, head: nn.Module, scale: float = 1.0
    ) -> dict[str, Tensor]:
        """Loss terms with the total under ``"loss"``; ``scale`` multiplies the data term (not the penalty)."""

    @abstractmethod
    def predict(self, outputs: Tensor, head: nn.Module) -> Tensor:
        """Closed-set class index per sample."""

    @abstractmethod
    def scores(self, outputs: Tensor, head: nn.Module) -> dict[str, Tensor]:
        """Every score of the method (``score_names``), higher = more likely known."""

    @abstractmethod
    def per_class(self, outputs: Tensor, head: nn.Module) -> Tensor:
        """``[B, n_c]`` per-class values of kind ``per_class_kind`` (distances or probabilities)."""

    def anchors(self, head: nn.Module) -> Tensor | None:
        """The class anchors ``[n_c, D]`` in output space, or None for a method without anchors."""
        return None

    # ------------------------------------------------------------------ evaluation preparation
    @property
    def prepares_evaluation(self) -> bool:
        """Whether evaluation first changes the head from the training outputs (CAC's re-centring); the changed
        state is stored with a calibration (``evaluation_state``)."""
        return False

    def needs_train_outputs(self, head: nn.Module) -> bool:
        """Whether ``prepare_evaluation`` still has to run on this head (it needs the training outputs)."""
        return False

    def prepare_evaluation(self, head: nn.Module, train_outputs: Tensor, train_labels: Tensor) -> None:
        """Change ``head`` for evaluation from the training outputs and labels (no-op by default)."""
        return None

    def evaluation_state(self, head: nn.Module) -> Any:
        """What ``prepare_evaluation`` changed, as JSON (stored in ``threshold.json``), or None."""
        return None

    def load_evaluation_state(self, head: nn.Module, state: Any) -> None:
        """Restore ``evaluation_state`` into ``head``."""
        return None

    # ------------------------------------------------------------------ post-hoc detectors
    odin_applies: ClassVar[bool] = (
        True  # ODIN perturbs inputs against the logits' softmax: methods with logits
    )

    def feature_set(self, head: nn.Module, maps: Tensor, outputs: Tensor, labels: Tensor) -> FeatureSet:
        """What the post-hoc detectors (``difair.eval.posthoc``) read from a batch: the backbone ``maps``, the
        model ``outputs`` and the labels. The default is a pooled linear logit head (``head.pooled``,
        ``head.fc``); a method with another head overrides it."""
        return logit_feature_set(
            outputs,
            labels,
            head.pooled(maps),
            preds=self.predict(outputs, head),
            head=head.fc,
            linear=(head.fc.weight, None),
        )

    def batch_dependent(self, score: str) -> str | None:
        """Why ``score`` of one sample depends on the other samples scored with it (None: it does not). Such a
        score cannot be given to one image at a time against a threshold calibrated on a set."""
        return None

    def prediction_score(self, score: str | None) -> str:
        """The score that predicting images one batch at a time uses: ``score`` (checked), else the method's
        default, else (when the default depends on the batch) the first score that does not."""
        if score is not None:
            self.check_score(score)
            why = self.batch_dependent(score)
            if why:
                free = [s for s in self.score_names if not self.batch_dependent(s)]
                raise DifairError(
                    f"score {score} of this run {why}, so an image's score depends on the images predicted with "
                    f"it and no threshold fits it: choose {' or '.join(free)}"
                )
            return score
        if not self.batch_dependent(self.default_score):
            return self.default_score
        return next(s for s in self.score_names if not self.batch_dependent(s))

    def check_score(self, score: str) -> None:
        """Raise ``DifairError`` unless ``score`` is one of this method's scores."""
        if score not in self.score_names:
            raise DifairError(
                f"method {self.name} has no score {score!r}: choose one of {', '.join(self.score_names)}"
            )


METHODS: dict[str, type[Method]] = {}
"""Registered methods by name, in registration order (difair, ce, cac)."""


def register_method(cls: type[Method]) -> type[Method]:
    """Class decorator: register a method under its ``name`` (beside the class, as timm's ``@register_model``)."""
    old = METHODS.get(cls.name)
    if old is not None and (old.__module__, old.__qualname__) != (cls.__module__, cls.__qualname__):
        raise ValueError(f"method {cls.name!r} is registered already ({old.__module__}.{old.__qualname__})")
    METHODS[cls.name] = cls
    return cls


def method_names() -> tuple[str, ...]:
    """The registered method names."""
    return tuple(METHODS)


def check_method_name(name: str) -> None:
    """Raise ``DifairError`` naming the choices when ``name`` is not a registered method."""
    if name not in METHODS:
        raise DifairError(f"unknown method {name!r}: choose one of {', '.join(METHODS)}")


def options_section(name: str) -> str:
    """The name of the TrainConfig section that holds the options of method ``name``."""
    check_method_name(name)
    return METHODS[name].config_section or name


def build_method(name: str, options: Any, num_classes: int) -> Method:
    """The method ``name`` built from its config section ``options`` for ``num_classes`` known classes."""
    check_method_name(name)
    return METHODS[name].from_config(options, num_classes)
