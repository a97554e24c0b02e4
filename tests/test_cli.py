"""Command line: bad input gives one line on stderr, exit code 2, no traceback, nothing overwritten."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from difair.cli import main
from tiny import tiny_overrides


def _sets(method: str = "ce", epochs: int = 1, extra: list[str] | None = None) -> list[str]:
    return [a for o in tiny_overrides(method, epochs, extra) for a in ("--set", o)]


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["train", "--method", "svm"], "unknown method 'svm'"),
        (["train", "--dataset", "imagenet21k"], "unknown dataset 'imagenet21k'"),
        (["train", "--split", "5"], "split 5 is out of range"),
        (["train", "--split", "-1"], "split -1 is out of range"),
        (["train", "--set", "difair.features_per_class=0"], "features_per_class (N) must be >= 1"),
        (["train", "--set", "difair.alpha=0"], "difair.alpha must be > 0"),
        (["train", "--set", "difair.radius=-2"], "difair.radius must be > 0"),
        (["train", "--set", "optim.learning_rate=0.1"], "unknown option optim.learning_rate"),
        (["train", "--set", "epochs=many"], "option epochs takes a whole number"),
        (["train", "--set", "precision=fp8"], "unknown precision 'fp8'"),
        (["train", "--frobnicate"], "unrecognized arguments: --frobnicate"),
        (["eval", "/nonexistent/run"], "not a difair run folder"),
        (["demo", "--splits", "0-9"], "split 5 is out of range"),
    ],
)
def test_bad_input_is_one_line_exit_2(argv: list[str], fragment: str, capsys) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert fragment in err
    assert err.count("\n") == 1 and err.startswith("difair: error: ")
    assert "Traceback" not in err


def test_existing_run_folder_needs_resume_or_overwrite(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    assert main(["train", "--quiet", "--out", str(out), *_sets()]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    capsys.readouterr()
    assert main(["train", "--quiet", "--out", str(out), *_sets(extra=["seed=7"])]) == 2
    err = capsys.readouterr().err
    assert "already exists" in err and "--resume" in err and "--overwrite" in err
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    assert main(["train", "--quiet", "--out", str(out), "--overwrite", *_sets(extra=["seed=7"])]) == 0
    assert json.loads((out / "results.json").read_text())["seed"] == 7
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("not a run")
    assert main(["train", "--quiet", "--out", str(mine), *_sets()]) == 2  # no advice that cannot work
    assert (
        capsys.readouterr().err
        == f"difair: error: {mine} already exists and is not a difair run folder: choose another --out\n"
    )


def test_train_then_eval_prints_all_scores(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    assert main(["train", "--quiet", "--out", str(out), *_sets("difair")]) == 0
    first = json.loads((out / "results.json").read_text())
    capsys.readouterr()
    assert main(["eval", str(out)]) == 0
    text = capsys.readouterr().out
    for score in ("min_distance", "class_activation", "max_activation"):
        assert score in text
    assert json.loads((out / "results.json").read_text())["scores"] == first["scores"]


def test_modified_config_is_refused_by_eval(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    assert main(["train", "--quiet", "--out", str(out), *_sets("difair")]) == 0
    cfg = out / "config.yaml"
    cfg.write_text(cfg.read_text().replace("features_per_class: 5", "features_per_class: 4"))
    results_before = (out / "results.json").read_bytes()
    capsys.readouterr()
    assert main(["eval", str(out)]) == 2
    assert "another configuration" in capsys.readouterr().err
    assert (out / "results.json").read_bytes() == results_before


def test_overrides_parse_numbers_booleans_and_lists() -> None:
    from difair.config import TrainConfig, apply_overrides

    cfg = TrainConfig.from_dict(
        apply_overrides(
            TrainConfig().to_dict(),
            ["optim.weight_decay=5e-4", "channels_last=yes", "data.known=cat,dog", "difair.radius=12"],
        )
    )
    assert cfg.optim.weight_decay == 5e-4 and cfg.channels_last is True
    assert cfg.data.known == ["cat", "dog"] and cfg.difair.radius == 12.0


def test_benchmark_refuses_multi_device_runs(capsys) -> None:
    assert main(["benchmark", "--datasets", "digits", "--out", "/tmp/never", "--set", "devices=2"]) == 2
    assert "--ray" in capsys.readouterr().err


def test_fast_sets_the_fast_path_and_later_sets_win(tmp_path: Path) -> None:
    import yaml

    from difair.config import FAST_PATH, TrainConfig, apply_overrides

    out = tmp_path / "fast"
    assert (
        main(["train", "--quiet", "--fast", "--out", str(out), *_sets(), "--set", "channels_last=false"]) == 0
    )
    from difair.engine.hardware import auto_precision, device_info

    saved = yaml.safe_load((out / "config.yaml").read_text())
    expected = TrainConfig.from_dict(apply_overrides(TrainConfig().to_dict(), list(FAST_PATH))).to_dict()
    assert expected["precision"] == "auto"
    # config.yaml holds what ran (the device's rule) and that it was asked for as auto
    assert saved["precision"] == auto_precision(device_info("auto"))[0]
    assert saved["auto"]["precision"].startswith(f"auto -> {saved['precision']}: ")
    assert saved["augment"]["backend"] == "batched"
    assert saved["model"]["dropout_backend"] == "fast"
    assert saved["optim"]["foreach"] is True
    assert saved["channels_last"] is False and saved["auto"]["channels_last"] == ""  # --set wins over --fast
    results = json.loads((out / "results.json").read_text())
    assert results["environment"]["auto"]["precision"]["requested"] == "auto"
    assert results["environment"]["auto"]["channels_last"] == {"requested": False, "resolved": False}
    threads = results["environment"]["auto"]["cpu_threads"]
    assert threads["requested"] == "auto" and threads["resolved"] >= 1
    assert threads["why"] == saved["auto"]["cpu_threads"] and threads["why"].startswith(
        f"auto -> {threads['resolved']}"
    )


def test_benchmark_fast_puts_the_fast_path_before_the_sets(tmp_path: Path, monkeypatch) -> None:
    import difair.bench.runner as runner
    from difair.config import AUTHORS_CODE, FAST_PATH

    seen = {}

    def fake_run_grid(out, specs, *, overrides, **kwargs):
        seen["overrides"] = overrides
        (Path(out) / "table.md").write_text("")

    monkeypatch.setattr(runner, "run_grid", fake_run_grid)
    argv = [
        "benchmark",
        "--fast",
        "--datasets",
        "digits",
        "--out",
        str(tmp_path),
        "--set",
        "precision=32-true",
    ]
    assert main(argv) == 0
    assert seen["overrides"] == [*FAST_PATH, "precision=32-true"]
    assert main([*argv[:1], "--authors-code", *argv[1:]]) == 0
    assert seen["overrides"] == [*FAST_PATH, *AUTHORS_CODE, "precision=32-true"]


def test_authors_code_sets_every_fidelity_option_away_from_the_default(tmp_path: Path) -> None:
    import yaml

    from difair.config import AUTHORS_CODE, TrainConfig, apply_overrides

    default = TrainConfig()
    authors = TrainConfig.from_dict(apply_overrides(default.to_dict(), list(AUTHORS_CODE))).resolve()
    for item in AUTHORS_CODE:  # each entry changes its option (no stale or misspelt entry)
        key = item.split("=", 1)[0]
        one = TrainConfig.from_dict(apply_overrides(default.to_dict(), [item]))
        assert one.to_dict() != default.to_dict(), key
    fid = authors.fidelity()
    assert fid["corr_variant"] == "reference" and fid["loss_normalizer"] == "nominal"
    assert fid["decoupled_weight_decay"] is True and fid["schedule_floor"] == "reference"
    assert fid["padding"] == "tf" and fid["contrast_per"] == "batch"
    # through the CLI, with --fast and a --set that wins
    out = tmp_path / "authors"
    argv = [
        "train",
        "--quiet",
        "--fast",
        "--authors-code",
        "--out",
        str(out),
        *_sets(),
        "--set",
        "model.padding=symmetric",
    ]
    # digits has no published normalisation constants: a clear refusal, nothing written
    assert main(argv) == 2
    assert not out.exists()
    assert main([*argv, "--set", "data.normalization=train"]) == 0
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["difair"]["corr_variant"] == "reference" and saved["auto"]["precision"].startswith(
        "auto -> "
    )
    assert saved["model"]["padding"] == "symmetric"
    fidelity = json.loads((out / "results.json").read_text())["fidelity"]
    assert fidelity["loss_normalizer"] == "nominal" and fidelity["bn_momentum"] == 0.01


def test_overwrite_keeps_the_old_run_when_the_new_data_cannot_load(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    assert main(["train", "--quiet", "--out", str(out), *_sets()]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    empty = tmp_path / "no-data"
    empty.mkdir()
    argv = ["train", "--quiet", "--overwrite", "--out", str(out), *_sets()]
    assert main([*argv, "--set", "data.name=mnist", "--set", f"data.root={empty}"]) == 2
    assert "mnist" in capsys.readouterr().err.lower()
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    assert (out / "checkpoints").is_dir()


def test_a_closed_reader_is_no_error(monkeypatch, capsys) -> None:
    import os

    read, write = os.pipe()
    os.close(read)  # as `difair presets list | head -0`: the reader is gone
    out = os.fdopen(write, "w")
    monkeypatch.setattr("sys.stdout", out)
    try:
        assert main(["presets", "list"]) == 141
    finally:
        monkeypatch.undo()
        out.close()
    assert capsys.readouterr().err == ""  # not "cannot use: Broken pipe: check the path ..."


def test_counts_below_one_and_stray_names_are_refused(capsys) -> None:
    for argv, fragment in (
        (["demo", "--epochs", "0"], "--epochs: must be >= 1, got 0"),
        (["demo", "--jobs", "0"], "--jobs: must be >= 1, got 0"),
        (["train", "--epochs", "0"], "--epochs: must be >= 1, got 0"),
        (["presets", "list", "extra"], "takes no name, got 'extra'"),
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert fragment in err and err.count("\n") == 1, err


def test_train_help_shows_the_defaults_a_run_gets(capsys) -> None:
    from difair.config import TrainConfig

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert (
        f"(default {TrainConfig().epochs}, unless --preset" in text and "seed of the run (default 0" in text
    )


def test_python_dash_m_difair_is_the_command() -> None:
    import subprocess
    import sys

    from difair import __version__

    done = subprocess.run(
        [sys.executable, "-m", "difair", "--version"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and __version__ in done.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "difair", "train", "--method", "nope"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "nope" in bad.stderr


def test_vgg32_options_are_recorded_as_not_applying_to_other_backbones() -> None:
    from difair.config import AUTHORS_CODE, TrainConfig, apply_overrides
    from difair.engine.build import build_model

    def cfg(*extra: str) -> TrainConfig:
        return TrainConfig.from_dict(
            apply_overrides(TrainConfig().to_dict(), [*AUTHORS_CODE, *extra])
        ).resolve()

    small = cfg("model.backbone=small_cnn8")
    fid = small.fidelity()
    assert (
        fid["padding"] == fid["bn_momentum"] == fid["dropout_kind"] == "n/a (small_cnn8)"
    )  # never read by it
    assert fid["corr_variant"] == "reference"  # the method's choices still apply
    vgg = cfg()
    assert vgg.fidelity()["padding"] == "tf" and vgg.fidelity()["bn_momentum"] == 0.01
    model, _ = build_model(vgg, 6, 1, [0.5], [0.5])
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and all((b.momentum, b.eps) == (0.01, 0.001) for b in bns)  # what the record says ran


def test_help_texts_read_the_facts_they_state(capsys) -> None:
    from difair.config import FAST_PATH
    from difair.engine.pool import MAX_WORKERS

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert all(item in text for item in FAST_PATH)  # every setting --fast applies, as it applies it
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"at most {MAX_WORKERS})" in text and "(default: ./difair-demo)" in text


def test_the_named_flags_win_over_set_as_configuration_md_says(tmp_path: Path, monkeypatch) -> None:
    import importlib

    fit_mod = importlib.import_module("difair.engine.fit")
    seen = []

    def fake_fit(cfg, out, **_kw):
        seen.append(cfg)
        raise KeyboardInterrupt  # stop before anything trains

    monkeypatch.setattr(fit_mod, "fit", fake_fit)
    argv = ["train", "--set", "data.name=mnist", "--set", "method=cac", "--set", "epochs=9", "--method", "ce",
            "--dataset", "digits", "--epochs", "2", "--out", str(tmp_path / "run"), "--quiet"]  # fmt: skip
    main(argv)
    assert (seen[0].method, seen[0].data.name, seen[0].epochs) == ("ce", "digits", 2)
