"""Any timm model as a feature extractor (``model.backbone=timm:NAME``): its last feature map."""

from __future__ import annotations

from types import ModuleType

from torch import Tensor, nn

from difair.errors import DifairError
from difair.nn import pretrained as P


class TimmFeatures(nn.Module):
    """Any timm model as a feature extractor (its last feature map).

    ``pretrained``: timm's default weights for ``name`` (from the Hugging Face cache); ``weights``: a local state
    dict in timm's names (its classifier's tensors are skipped with a warning).
    """

    def __init__(
        self,
        name: str,
        in_channels: int = 3,
        pretrained: bool = False,
        weights: str | None = None,
        load_weights: bool = True,
    ):
        super().__init__()
        timm = timm_module()
        if not load_weights:  # the same architecture; its tensors come from a checkpoint
            pretrained, weights = False, None
        if not timm.is_model(name.split(".", 1)[0]):
            raise DifairError(f"timm has no model {name!r}: see timm.list_models() for the names")
        make = lambda: timm.create_model(  # noqa: E731
            name, pretrained=pretrained and not weights, in_chans=in_channels, num_classes=0, global_pool=""
        )
        if pretrained and not weights:
            self.net = P.fetch(f"timm:{name}", P.hf_hub_dir(), lambda: _offline_check(timm, name) or make())
        else:
            self.net = make()
        if weights:
            classifier = self.net.pretrained_cfg.get("classifier", "classifier")
            P.load_checked(
                self.net, P.read_state_dict(weights), f"weights {weights}", classifier=(classifier,)
            )
        self.out_channels = int(self.net.num_features)

    def forward(self, x: Tensor) -> Tensor:
        out = self.net.forward_features(x)
        if out.dim() == 3:  # token sequence [B, T, C] of a transformer: treat as a 1 x T map
            out = out.transpose(1, 2).unsqueeze(2)
        return out


def _offline_check(timm: ModuleType, name: str) -> None:
    """Raise at once when timm would wait on the network for weights it cannot get (``P.hub_unreachable``)."""
    try:
        cfg = timm.get_pretrained_cfg(name)
    except RuntimeError:  # an unknown weight tag: timm.create_model says so
        return None
    why = P.hub_unreachable(cfg.hf_hub_id, cfg.hf_hub_filename) if cfg is not None and cfg.hf_hub_id else None
    if why:
        raise ConnectionError(why)
    return None


def timm_module() -> ModuleType:
    """The ``timm`` package, or a ``DifairError`` that says how to install it (an optional dependency)."""
    try:
        import timm  # optional dependency
    except ImportError as exc:
        raise DifairError("backbone 'timm:...' needs timm: pip install 'difair[timm]'") from exc
    return timm
