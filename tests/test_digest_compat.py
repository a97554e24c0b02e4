"""Run folders of older versions keep their config digest: resume, eval and load compare it with the checkpoint's."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import pytest

from difair.config import DIGEST_NEUTRAL, TrainConfig

# config.yaml text and config digest of the default config and of every preset, resolved by difair 0.1.0
# (commit 8ba5feb, 2026-12-02), before any option of DIGEST_NEUTRAL existed
OLD = json.loads((Path(__file__).parent / "fixtures" / "digests-0.1.0.json").read_text())


@pytest.mark.parametrize("name", sorted(OLD))
def test_configs_of_0_1_0_keep_their_digest(name):
    cfg = TrainConfig.from_yaml(OLD[name]["config"])
    assert cfg.digest() == OLD[name]["digest"]  # as eval and load read config.yaml
    assert cfg.resolve().digest() == OLD[name]["digest"]  # as resume compares it with a new request


def test_a_non_neutral_value_of_a_new_option_changes_the_digest():
    base = TrainConfig.from_yaml(OLD["default"]["config"])
    for option, value in [
        ("data.crop_pct", 0.875),
        ("model.freeze_backbone", True),
        ("model.backbone_lr_scale", 0.1),
        ("ce.label_smoothing_form", "vaze"),
    ]:
        cfg = TrainConfig.from_yaml(OLD["default"]["config"])
        section, key = option.split(".")
        setattr(getattr(cfg, section), key, value)
        assert cfg.digest() != base.digest(), option


def test_each_neutral_value_holds_the_options_default():
    cfg = TrainConfig()
    for option, neutral in DIGEST_NEUTRAL.items():
        section, key = option.split(".")
        assert key in {f.name for f in dataclasses.fields(getattr(cfg, section))}, option
        assert getattr(getattr(cfg, section), key) in neutral, option


@pytest.mark.parametrize("name", sorted(OLD))
def test_todays_defaults_and_presets_train_as_in_0_1_0_where_no_default_moved_on_purpose(name):
    from difair.presets import load_named_preset

    cfg = (TrainConfig() if name == "default" else load_named_preset(name)).resolve()
    if "cifar+" in name:  # CIFAR+N's knowns are the four vehicles since (fidelity row 18): other classes
        assert cfg.data.cifar_plus_known == "vehicles" and cfg.digest() != OLD[name]["digest"]
    else:  # an option that only CIFAR+N reads changed its default: no other run folder or benchmark moves
        assert cfg.digest() == OLD[name]["digest"]


def test_an_old_authors_code_run_on_another_dataset_still_loads():
    # before the vehicles became the default, --authors-code wrote cifar_plus_known: vehicles for every dataset
    old = TrainConfig.from_yaml(OLD["difair-mnist"]["config"])
    old.data.cifar_plus_known = "vehicles"
    stored = old.identity(per_dataset=False)  # what 0.1.0 hashed: every option at its own value
    legacy = hashlib.sha256(json.dumps(stored, sort_keys=True).encode()).hexdigest()[:16]
    assert legacy != old.digest() and legacy in old.digests()  # accepted as the checkpoint's digest
    assert (
        old.difference(TrainConfig.from_yaml(OLD["difair-mnist"]["config"])) is None
    )  # MNIST never reads it
