"""Presets: every file loads and validates, holds the paper's protocol (reference-notes section 4), layers right."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from difair.cli import main
from difair.config import TrainConfig
from difair.engine.schedule import lr_at_epoch
from difair.errors import DifairError
from difair.presets import load_named_preset, load_preset, preset_dict, preset_for, preset_names, preset_text
from tiny import TINY

METHODS = ("difair", "ce", "cac")
DATASETS = ("mnist", "svhn", "cifar10", "cifar+10", "cifar+50", "tinyimagenet")
SSB_DATASETS = ("cub", "aircraft", "scars")  # Vaze et al.'s fine-grained protocol, not the paper's
PAPER_PRESETS = [n for n in preset_names() if n.split("-", 1)[1] in DATASETS]
SSB_PRESETS = [n for n in preset_names() if n.split("-", 1)[1] in SSB_DATASETS]


def test_one_preset_per_method_and_dataset() -> None:
    assert preset_names() == sorted(f"{m}-{d}" for m in METHODS for d in DATASETS + SSB_DATASETS)


@pytest.mark.parametrize("name", PAPER_PRESETS)
def test_every_preset_loads_validates_and_holds_the_common_protocol(name: str) -> None:
    cfg = load_named_preset(name).resolve()
    method, dataset = name.split("-", 1)
    assert (cfg.method, cfg.data.name) == (method, dataset)
    assert (cfg.epochs, cfg.batch_size) == (600, 128)
    o = cfg.optim
    assert (o.momentum, o.nesterov, o.weight_decay, o.decoupled_weight_decay) == (0.9, False, 1e-4, False)
    s = cfg.schedule
    assert (s.name, s.restarts, s.min_lr_ratio, s.warmup_epochs) == ("cosine_restarts_warmup", 2, 1e-3, 10)
    assert "warmup_epochs" not in preset_dict(name)["schedule"]  # derived, so --epochs keeps the shape
    assert (cfg.augment.crop_padding, cfg.augment.backend) == (4, "batched")
    assert (cfg.data.split_family, cfg.data.balance) == ("vaze", "without_replacement")
    assert cfg.precision == "32-true"  # the protocol; proxies opt into bf16 with --set
    assert "reference-notes 4.1" in preset_text(name)  # the files cite their source


@pytest.mark.parametrize("name", SSB_PRESETS)
def test_ssb_presets_hold_vazes_fine_grained_protocol(name: str) -> None:
    cfg = load_named_preset(name).resolve()
    method, dataset = name.split("-", 1)
    assert (cfg.method, cfg.data.name, cfg.data.image_size, cfg.data.balance) == (
        method,
        dataset,
        448,
        "none",
    )
    assert (cfg.epochs, cfg.batch_size, cfg.optim.lr, cfg.model.backbone) == (600, 32, 0.001, "timm:resnet50")
    s = cfg.schedule
    assert (s.name, s.restarts, s.warmup_epochs) == ("cosine_restarts_warmup", 2, 10)
    assert (cfg.augment.randaugment_n, cfg.augment.hflip) == (2, True)
    assert "places_moco" in preset_text(name) and "model.weights" in preset_text(name)
    assert "model" not in preset_dict(name) or set(preset_dict(name)["model"]) == {"backbone"}
    # resized to 448 x 448 as Vaze, not centre-cropped from 471 as timm's resnet50 config would have it
    with_weights = load_named_preset(name, ["model.weights=/weights/places_moco_resnet50.pth"]).resolve()
    assert with_weights.data.crop_pct == 1.0


@pytest.mark.parametrize(
    "name, m, smoothing", [("ce-cub", 30, 0.3), ("ce-aircraft", 15, 0.2), ("ce-scars", 30, 0.3)]
)
def test_ssb_ce_presets_use_vazes_tuned_values_and_label_smoothing_form(
    name: str, m: int, smoothing: float
) -> None:
    cfg = load_named_preset(name)
    assert (cfg.augment.randaugment_m, cfg.ce.label_smoothing, cfg.ce.label_smoothing_form) == (
        m,
        smoothing,
        "vaze",
    )


@pytest.mark.parametrize(
    "name, lr, n, m, ops, flip",
    [
        (
            "difair-mnist",
            0.3,
            0,
            6,
            "all",
            False,
        ),  # MNIST: no RandAugment (the authors jitter instead), no flip
        ("difair-svhn", 0.3, 1, 6, "no_geometric", False),
        ("difair-cifar10", 0.3, 1, 6, "all", True),
        ("difair-cifar+50", 0.3, 1, 6, "all", True),
        ("difair-tinyimagenet", 0.5, 1, 9, "all", True),
        ("ce-cifar10", 0.3, 1, 6, "all", True),  # the authors' CE used the DIFAIR lr
        ("ce-tinyimagenet", 0.5, 1, 9, "all", True),
        ("cac-mnist", 0.1, 0, 6, "all", False),
        ("cac-svhn", 0.1, 1, 6, "no_geometric", False),
        ("cac-tinyimagenet", 0.1, 1, 9, "all", True),
    ],
)
def test_preset_values_per_dataset(name: str, lr: float, n: int, m: int, ops: str, flip: bool) -> None:
    cfg = load_named_preset(name)
    a = cfg.augment
    assert (cfg.optim.lr, a.randaugment_n, a.randaugment_m, a.randaugment_ops, a.hflip) == (
        lr,
        n,
        m,
        ops,
        flip,
    )


def test_method_settings() -> None:
    d = load_preset("difair", "cifar10").resolve().difair
    assert (d.features_per_class, d.alpha, d.corr_weight, d.loss_mode, d.inner_weight) == (
        5,
        10.0,
        1.0,
        "smooth",
        0.1,
    )
    assert d.radius == pytest.approx(18.973666)  # 0.6 * sqrt(2 * 5 * 10^2)
    c = load_preset("cac", "svhn").cac
    assert (c.alpha, c.lambda_, c.recenter) == (10.0, 0.1, True)
    assert load_preset("ce", "tinyimagenet").ce.label_smoothing == 0.0


@pytest.mark.parametrize("epochs", [30, 60, 600])
def test_budget_keeps_the_schedule_shape(epochs: int) -> None:
    cfg = load_preset("difair", "cifar10", [f"epochs={epochs}"]).resolve()
    assert cfg.schedule.warmup_epochs == max(1, round(epochs / 60))
    lrs = [lr_at_epoch(e, cfg.optim.lr, epochs, cfg.schedule) for e in range(epochs)]
    t0 = epochs // 3
    assert lrs[0] == pytest.approx(0.3e-3)  # starts at the floor
    for restart in (t0 + 1, 2 * t0 + 1):  # two warm restarts, at t = T0 and 2 T0 (epochs 201 and 401 at 600)
        assert lrs[restart] == pytest.approx(0.3)
        assert lrs[restart - 1] < 0.03 * 0.3
    w = cfg.schedule.warmup_epochs
    assert lrs[: w + 1] == sorted(lrs[: w + 1]) and lrs[w] == pytest.approx(
        lrs[w + 1], rel=1e-3
    )  # warmup peak


def test_preset_lookup_for_folder_and_missing() -> None:
    assert preset_for("ce", "folder:/some/where") == "ce-cifar10"
    assert load_preset("difair", "folder:/some/where").data.name == "folder:/some/where"
    assert preset_for("difair", "digits") is None
    with pytest.raises(DifairError, match="no preset for difair on digits"):
        load_preset("difair", "digits")


def test_cli_list_and_show(capsys) -> None:
    assert main(["presets", "list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in preset_names())
    assert (
        "no RandAugment, contrast 0.5 and brightness 0.5 jitter, no flip" in out
    )  # MNIST's own augmentation
    assert main(["presets", "show", "difair-svhn"]) == 0
    shown = capsys.readouterr().out
    assert shown == preset_text("difair-svhn") and "no_geometric" in shown
    assert main(["presets", "show", "difair-imagenet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("difair: error: unknown preset 'difair-imagenet'") and err.count("\n") == 1


def test_shown_preset_is_a_valid_config_file(tmp_path: Path) -> None:
    path = tmp_path / "copy.yaml"
    path.write_text(preset_text("cac-cifar+10"))
    merged = TrainConfig.from_yaml(path.read_text())
    assert merged.digest() == load_named_preset("cac-cifar+10").digest()


def test_train_layers_preset_config_file_and_set(tmp_path: Path) -> None:
    """preset < --config < --set: a copied, edited preset overrides it; --set overrides both."""
    cfg_file = tmp_path / "edit.yaml"
    cfg_file.write_text(yaml.safe_dump({"optim": {"lr": 0.2}, "augment": {"randaugment_m": 9}}))
    out = tmp_path / "run"
    sets = [a for o in [*TINY, "optim.lr=0.05", "augment.randaugment_m=9"][:-1] for a in ("--set", o)]
    argv = [
        "train",
        "--quiet",
        "--preset",
        "difair-cifar10",
        "--config",
        str(cfg_file),
        "--dataset",
        "digits",
    ]
    assert main([*argv, "--epochs", "1", "--out", str(out), *sets]) == 0
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["optim"]["lr"] == 0.05  # --set beats the config file (0.2) and the preset (0.3)
    assert saved["augment"]["randaugment_m"] == 9  # the config file beats the preset (6)
    assert saved["optim"]["momentum"] == 0.9 and saved["augment"]["backend"] == "batched"  # from the preset
    assert saved["schedule"]["warmup_epochs"] == 0  # 1 epoch: no warmup
    assert json.loads((out / "results.json").read_text())["dataset"] == "digits"


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (
            ["--preset", "cac-mnist", "--method", "difair"],
            "holds cac's protocol .* use --preset difair-mnist instead",
        ),
        (
            ["--preset", "difair-mnist", "--dataset", "cifar10"],
            "holds the protocol of mnist; cifar10 has its own: use --preset difair-cifar10",
        ),
    ],
)
def test_flags_that_contradict_the_preset_are_refused(argv, fragment, tmp_path: Path, capsys) -> None:
    assert (
        main(
            ["train", *argv, "--epochs", "1", "--set", f"data.root={tmp_path}", "--out", str(tmp_path / "r")]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert re.search(fragment, err) and err.count("\n") == 1 and not (tmp_path / "r").exists()


def test_a_preset_on_a_folder_or_with_its_own_flags_is_taken(tmp_path: Path) -> None:
    from difair.cliutil import check_preset_flags

    check_preset_flags("difair-tinyimagenet", "difair", "folder:/photos")  # another protocol for own images
    check_preset_flags("difair-mnist", "difair", "mnist")
    check_preset_flags("difair-mnist", None, None)


def test_a_benchmark_dataset_without_a_preset_gets_a_note() -> None:
    from difair.cliutil import preset_note

    assert "--preset difair-mnist (what difair benchmark runs)" in preset_note("difair", "mnist")
    assert preset_note("difair", "digits") is None and preset_note("ce", "folder:/photos") is None
    assert "--set data.balance=none" in preset_note(
        "ce", "imagenet-ssb"
    )  # no preset: Vaze scores every image
