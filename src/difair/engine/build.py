"""Construction of one run's parts from its config: Fabric, data, model (+ method) and optimizer.

``fit``, ``build_loop``, ``evaluate_run_dir``, ``load_run`` and the benchmarks build through these functions, so
every entry point sets a run up the same way.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import torch
from torch import nn

from difair.config import TrainConfig
from difair.data import OSRData, get_dataset
from difair.engine.threads import process_data
from difair.errors import DifairError
from difair.methods import Method, build_method
from difair.nn import pretrained as P
from difair.nn.backbones import OSRModel, backbone_reads, create_backbone, pretrained_data_config

if TYPE_CHECKING:  # start-up time: Lightning takes seconds to import, make_fabric imports it when called
    from lightning_fabric import Fabric


def make_fabric(cfg: TrainConfig) -> Fabric:
    """Lightning Fabric for the run's accelerator, devices and precision; a bad combination is a DifairError."""
    from lightning_fabric import Fabric  # start-up time: Lightning takes seconds to import

    log = logging.getLogger("lightning_fabric")
    level = log.level
    log.setLevel(
        logging.WARNING
    )  # the precision is in config.yaml; Fabric's "Using bfloat16 ..." repeats it per run
    try:
        return Fabric(accelerator=cfg.accelerator, devices=cfg.devices, precision=cfg.precision)
    except (ValueError, RuntimeError, TypeError) as exc:
        raise DifairError(
            f"cannot set up accelerator={cfg.accelerator} devices={cfg.devices} precision={cfg.precision}: {exc}"
        ) from exc
    finally:
        log.setLevel(level)


def load_data(cfg: TrainConfig, data: OSRData | None, workers: int = 1) -> OSRData:
    """``data`` when given (already loaded by the caller), else the split that ``cfg.data`` names, loaded for one
    of ``workers`` pool workers side by side (a stream's decoders sized from the process's CPU share)."""
    if data is not None:
        return data
    return get_dataset(process_data(cfg, workers))


def param_groups(cfg: TrainConfig, model: nn.Module) -> list[dict]:
    """The optimizer's parameter groups: the head (and anything outside the backbone) at ``lr_scale`` 1 first,
    then the backbone at ``model.backbone_lr_scale``; frozen (``requires_grad=False``) parameters are left out."""
    backbone = getattr(model, "backbone", None)
    in_backbone = {id(p) for p in backbone.parameters()} if backbone is not None else set()
    trainable = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in trainable if id(p) not in in_backbone], "lr_scale": 1.0},
        {"params": [p for p in trainable if id(p) in in_backbone], "lr_scale": cfg.model.backbone_lr_scale},
    ]
    return [g for g in groups if g["params"]]


def make_optimizer(cfg: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    """SGD as configured (``optim.foreach`` picks the multi-tensor implementation), one parameter group per
    learning-rate scale (``param_groups``; ``schedule.set_lr`` applies the scales)."""
    o = cfg.optim
    return torch.optim.SGD(
        param_groups(cfg, model),
        lr=o.lr,
        momentum=o.momentum,
        nesterov=o.nesterov and o.momentum > 0,
        weight_decay=0.0 if o.decoupled_weight_decay else o.weight_decay,
        foreach=o.foreach,
    )


def memory_format(cfg: TrainConfig) -> torch.memory_format:
    """The activations' memory format of a resolved config (``channels_last=auto`` must be resolved first)."""
    if not isinstance(cfg.channels_last, bool):
        raise ValueError("channels_last=auto must be resolved first (difair.engine.execution)")
    return torch.channels_last if cfg.channels_last else torch.contiguous_format


def build_model(
    cfg: TrainConfig,
    num_classes: int,
    channels: int,
    mean: list[float],
    std: list[float],
    *,
    load_weights: bool = True,
) -> tuple[OSRModel, Method]:
    """A freshly initialised model for ``cfg`` and its method object (seeded by the caller).

    ``load_weights=False``: the architecture of ``model.pretrained``/``model.weights`` without reading the weights,
    for a model whose every tensor comes from a checkpoint next (a trained run needs no weight file nor network).
    """
    method = build_method(cfg.method, cfg.method_options(), num_classes)
    m = cfg.model
    kwargs: dict = {key: getattr(m, key) for key in backbone_reads(m.backbone)}  # the options it takes
    run_state = P.run_backbone_state(P.read_state_dict(m.weights)) if m.weights and load_weights else None
    if m.uses_pretrained:  # a difair run's checkpoint is loaded below, into difair's own module names
        kwargs.update(
            pretrained=m.pretrained, weights=m.weights, load_weights=load_weights and run_state is None
        )
    backbone = create_backbone(m.backbone, in_channels=channels, **kwargs)
    if run_state is not None:
        try:
            P.load_checked(backbone, run_state, f"the backbone of the difair run checkpoint {m.weights}")
        except DifairError as exc:  # the architecture of a run started from weights, rebuilt so when loaded
            raise DifairError(
                f"{exc}; a run's backbone can start another run only when it has the architecture of a run started "
                "from weights (resnet18: the ImageNet stem, which a run trained from scratch lacks)"
            ) from exc
    if cfg.data.normalization == "pretrained":  # the statistics the weights were trained with
        stats = pretrained_data_config(m.backbone)
        mean, std = list(stats["mean"])[:channels], list(stats["std"])[:channels]
    head = method.build_head(backbone.out_channels)
    return OSRModel(backbone, head, mean, std, freeze_backbone=m.freeze_backbone), method
