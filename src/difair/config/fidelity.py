"""The paper-vs-code choices of docs/fidelity.md (``FIDELITY``, ``--authors-code``) and the engine's fast path
(``FAST_PATH``, ``--fast``): named lists of overrides."""

from __future__ import annotations

from dataclasses import dataclass

# The engine's fast path (docs/performance.md), ``--fast`` on the command line: execution settings that change
# how a run computes, not what it learns (the same ops and distributions; bf16 rounding; other random streams).
FAST_PATH: tuple[str, ...] = (
    "precision=auto",  # bf16 where the device computes it natively, else fp32 (difair.engine.execution)
    "channels_last=auto",  # a timed probe of both memory formats on CPU (cached per machine); true on CUDA
    "augment.backend=batched",
    "optim.foreach=true",
    "model.dropout_backend=fast",
    "cpu_allocator=retain",  # CPU: freed activation blocks kept for the next step instead of re-faulted
)


@dataclass(frozen=True)
class FidelityChoice:
    """One paper-vs-code choice of docs/fidelity.md: its ``results.json`` key, its option, the authors' value."""

    key: str  # name under "fidelity" in results.json
    option: str  # dotted config key
    row: int  # row of docs/fidelity.md
    authors: str | None = None  # the authors' TensorFlow code's value (--set text); None: no authors' option


# Every choice of docs/fidelity.md, in the order of results.json's "fidelity" record. ``--authors-code`` sets each
# one with an authors' value; rows without one (same behaviour, or kept on purpose) have ``authors=None``.
FIDELITY: tuple[FidelityChoice, ...] = (
    FidelityChoice("corr_variant", "difair.corr_variant", 1, "reference"),  # (1/N^2) sum per class, summed
    FidelityChoice("loss_normalizer", "loss_normalizer", 2, "nominal"),  # sum / nominal batch 128
    FidelityChoice("decoupled_weight_decay", "optim.decoupled_weight_decay", 8, "true"),  # Keras decay
    FidelityChoice("schedule_floor", "schedule.floor", 9, "reference"),  # Keras cosine floor lr * (lr * 1e-3)
    FidelityChoice("cac_tuplet_includes_target", "cac.tuplet_includes_target", 5, "true"),  # log(2 + ...)
    FidelityChoice("cac_rejection_softmin", "cac.rejection_softmin", 6, "global"),  # softmin over the array
    FidelityChoice("cac_recenter", "cac.recenter", 7),
    FidelityChoice("split_family", "data.split_family", 16),
    FidelityChoice("tinyimagenet_order", "data.tinyimagenet_order", 17, "wnids"),  # wnids.txt line order
    # the 4 vehicles: the paper's and the code's
    FidelityChoice("cifar_plus_known", "data.cifar_plus_known", 18),
    FidelityChoice("balance", "data.balance", 19),
    FidelityChoice("normalization", "data.normalization", 20, "reference"),  # the authors' pasted constants
    FidelityChoice("dropout_kind", "model.dropout_kind", 11),
    FidelityChoice("contrast_per", "augment.contrast_per", 24, "batch"),  # one MNIST factor per batch
    FidelityChoice("padding", "model.padding", 12, "tf"),  # TF 'same' stride-2 padding
    FidelityChoice("bn_momentum", "model.bn_momentum", 13, "0.01"),  # Keras BatchNorm 0.99 / 1e-3
    FidelityChoice("bn_eps", "model.bn_eps", 13, "0.001"),
    FidelityChoice("label_smoothing_form", "ce.label_smoothing_form", 25),  # Vaze's form vs PyTorch's
)

# ``--authors-code``: every choice of FIDELITY set to the authors' TensorFlow code.
AUTHORS_CODE: tuple[str, ...] = tuple(f"{c.option}={c.authors}" for c in FIDELITY if c.authors is not None)
