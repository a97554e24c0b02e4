"""Issue 11, item 8: user files and paths that are wrong get one line and exit 2, never a traceback, and every
file that was there before is byte-identical afterwards."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from difair.cli import main
from difair.engine import rundir as R
from difair.errors import DifairError
from tiny import tiny_overrides

pytestmark = pytest.mark.slow


def _sets(extra: list[str] | None = None) -> list[str]:
    return [a for o in tiny_overrides("difair", 1, extra) for a in ("--set", o)]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("errors") / "run"
    assert main(["train", "--quiet", "--out", str(out), *_sets()]) == 0
    assert main(["calibrate", str(out)]) == 0  # predict would write threshold.json on first use
    return out


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("img") / "seven.png"
    Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(path)
    return path


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _one_line(capsys, code: int, fragment: str = "") -> str:
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("difair: error: "), err
    assert "Traceback" not in err and fragment in err, err
    return err


@pytest.mark.parametrize(
    "target, fragment",
    [
        ("results.json", "not valid"),  # eval exists to recompute it, report needs it
        ("config.yaml", "not valid YAML"),
        ("checkpoints/last.pt", "not a difair checkpoint"),  # unpickles to a list
    ],
)
def test_a_corrupt_run_file_is_one_line(run, tmp_path, capsys, target, fragment):
    path = run / target
    original = path.read_bytes()
    try:
        if target.endswith(".pt"):
            torch.save([1, 2, 3], path)
        else:
            path.write_text("{ not: valid: [" if target.endswith("yaml") else '{"auroc": 0.5,')
        before = _snapshot(run)
        capsys.readouterr()
        commands = [["report", str(run), "--out", str(tmp_path / "r.html")]]
        if target != "results.json":
            commands += [["eval", str(run)], ["train", "--quiet", "--resume", str(run)]]
        for argv in commands:
            _one_line(capsys, main(argv), fragment if argv[0] != "report" or target == "results.json" else "")
            assert _snapshot(run) == before
    finally:
        path.write_bytes(original)


def test_eval_rewrites_an_invalid_results_json(run, capsys):
    path = run / R.RESULTS
    original = path.read_bytes()
    path.write_text('{"auroc": 0.5,')
    assert main(["eval", str(run)]) == 0
    assert json.loads(path.read_text())["auroc"] == json.loads(original)["auroc"]


def test_a_torn_last_metrics_line_is_dropped_on_resume(tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--quiet", "--out", str(out), *_sets(["epochs=2"])]) == 0
    (out / R.RESULTS).unlink()  # as if killed after epoch 1
    ckpt = R.load_checkpoint(out / R.CHECKPOINT)
    lines = (out / R.METRICS).read_text().splitlines()
    (out / R.METRICS).write_text(lines[0] + "\n" + lines[1][: len(lines[1]) // 2])  # the kill tore line 2
    assert ckpt["epoch"] == 1
    assert main(["train", "--quiet", "--resume", str(out)]) == 0
    rows = [json.loads(x) for x in (out / R.METRICS).read_text().splitlines()]  # every line parses again
    assert [r["epoch"] for r in rows][:1] == [1] and (out / R.RESULTS).is_file()


@pytest.mark.parametrize(
    "make_out",
    [
        lambda tmp: Path("/proc/difair-run"),  # not creatable
        lambda tmp: (tmp / "a-file").write_text("x") and tmp / "a-file",  # an existing file
        lambda tmp: (tmp / "file2").write_text("x") and tmp / "file2" / "below",  # a path below a file
    ],
)
def test_train_out_that_cannot_be_a_folder_is_one_line(tmp_path, capsys, make_out):
    out = make_out(tmp_path)
    before = _snapshot(tmp_path)
    _one_line(capsys, main(["train", "--quiet", "--out", str(out), *_sets()]))
    assert _snapshot(tmp_path) == before


def test_outputs_that_cannot_be_written_are_one_line(run, image, tmp_path, capsys):
    before = _snapshot(run)
    (tmp_path / "exists").mkdir()
    (tmp_path / "a-file").write_text("x")
    cases = [
        ["predict", str(run), str(image), "--out", str(tmp_path / "exists")],  # an existing directory
        ["predict", str(run), str(image), "--out", "/proc/preds.csv"],  # unwritable
        ["report", str(run), "--out", str(tmp_path / "exists")],
        ["plot", str(run), "scores", "--out", "/proc/x.png"],
        ["explain", str(run), str(image), "--out", str(tmp_path / "a-file")],  # an existing file
    ]
    for argv in cases:
        capsys.readouterr()
        _one_line(capsys, main(argv))
    assert _snapshot(run) == before
    assert (tmp_path / "a-file").read_text() == "x"


def test_an_output_path_is_checked_without_leaving_anything_behind(tmp_path):
    R.check_writable(tmp_path / "new" / "deeper" / "report.html")  # folders the write would make: fine
    assert list(tmp_path.iterdir()) == []  # ... and neither they nor the probe are left
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(DifairError, match="a-file is a file: choose a writable folder"):
        R.check_writable(tmp_path / "a-file" / "report.html")
    with pytest.raises(DifairError, match="is a folder: give the name of a file"):
        R.check_writable(tmp_path)
    with pytest.raises(DifairError, match="cannot write /proc/x.png"):
        R.check_writable(Path("/proc/x.png"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


def test_analyses_check_their_output_before_computing(run, tmp_path, capsys, monkeypatch):
    from difair.engine import feature_cache

    def no_model(*args, **kwargs):
        raise AssertionError("outputs computed before the output path was checked")

    monkeypatch.setattr(feature_cache, "collect_outputs", no_model)
    (tmp_path / "a-file").write_text("x")
    for argv, fragment in (
        (["report", str(run), "--out", str(tmp_path / "a-file" / "r.html")], "a-file is a file"),
        (["plot", str(run), "tsne", "--out", str(tmp_path / "a-file" / "t.png")], "a-file is a file"),
        (
            ["explain", str(run), str(tmp_path / "a-file"), "--out", str(tmp_path / "a-file")],
            "is a file: name a folder",
        ),
    ):
        capsys.readouterr()
        _one_line(capsys, main(argv), fragment)


@pytest.mark.parametrize("device", ["tpu9", "cuda"])
def test_predict_on_a_device_that_is_not_there_is_one_line(run, image, capsys, device):
    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    _one_line(capsys, main(["predict", str(run), str(image), "--device", device]))


def test_predict_of_paths_that_are_not_there_is_refused_before_calibrating(run, tmp_path, capsys):
    import shutil

    uncalibrated = tmp_path / "run"
    shutil.copytree(run, uncalibrated)
    (uncalibrated / "threshold.json").unlink()
    before = _snapshot(uncalibrated)
    capsys.readouterr()
    code = main(["predict", str(uncalibrated), str(tmp_path / "nope.png"), str(tmp_path / "gone")])
    _one_line(capsys, code, "no image file at")
    assert _snapshot(uncalibrated) == before  # not calibrated: no threshold.json written for nothing


def test_head_kernel_size_zero_is_refused_before_anything_is_touched(run, capsys):
    before = _snapshot(run)
    code = main(["train", "--quiet", "--out", str(run), "--overwrite", *_sets(["difair.head_kernel_size=0"])])
    _one_line(capsys, code, "difair.head_kernel_size must be an odd number")
    assert _snapshot(run) == before


def test_debug_shows_the_traceback(run, capsys):
    with pytest.raises(Exception):  # noqa: B017 (any: the point is that it propagates)
        main(["--debug", "predict", str(run), "x.png", "--device", "tpu9"])


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["train", "--dataset", "folder:"], "a folder dataset is named folder:PATH"),
        (["train", "--set", "data.known=1,2"], "data.known applies to folder:PATH datasets"),
        (["train", "--set", "optim.lr=.inf"], "optim.lr must be a finite number"),
        (["train", "--set", "data.image_size=0"], "data.image_size must be >= 4"),
        (["train", "--set", "data.image_size=1"], "data.image_size must be >= 4"),
        (["train", "--set", "data.name=folder:/x", "--split", "2"], "has one split"),
        (["demo", "--splits", "3-1"], "runs backwards"),
        (["report", "RUN", "--samples", "-1"], "must be >= 0"),
        (["predict", "RUN", "x.png", "--threshold", "nan"], "must be a finite number"),
    ],
)
def test_smaller_bad_inputs_are_refused(tmp_path, monkeypatch, capsys, argv, fragment):
    monkeypatch.chdir(tmp_path)
    _one_line(capsys, main([a.replace("RUN", str(tmp_path / "none")) for a in argv]), fragment)
    assert list(tmp_path.iterdir()) == []  # nothing written


@pytest.mark.parametrize(
    "extra",
    [
        ["--set", "optim.lr=0.05"],
        ["--epochs", "10"],
        ["--method", "svm", "--set", "nonsense.key=abc"],
        ["--fast"],
    ],
)
def test_resume_refuses_options_that_it_would_ignore(run, capsys, extra):
    before = _snapshot(run)
    _one_line(capsys, main(["train", "--quiet", "--resume", str(run), *extra]), "--resume continues the run")
    assert _snapshot(run) == before


def test_a_diverged_checkpoint_is_one_line_in_eval_and_calibrate(run, tmp_path, capsys):
    ckpt = run / R.CHECKPOINT
    original = ckpt.read_bytes()
    try:
        state = R.load_checkpoint(ckpt)
        state["model"] = {
            k: v.fill_(float("nan")) if v.is_floating_point() else v for k, v in state["model"].items()
        }
        torch.save(state, ckpt)
        before = _snapshot(run)
        for argv in (["eval", str(run)], ["calibrate", str(run)]):
            capsys.readouterr()
            _one_line(capsys, main(argv), "the checkpoint diverged")
            assert _snapshot(run) == before  # no results.json or threshold.json written from it
    finally:
        ckpt.write_bytes(original)


def test_the_authors_tiny_imagenet_order_on_the_neal_lists_is_refused(tmp_path, capsys):
    # the neal lists index sorted wnids: under the authors' wnids order they would name other classes, silently
    argv = ["train", "--preset", "difair-tinyimagenet", "--authors-code", "--set", "data.split_family=neal",
            "--set", f"data.root={tmp_path}", "--epochs", "1", "--out", str(tmp_path / "run")]  # fmt: skip
    _one_line(capsys, main(argv), "the neal (CAC) Tiny ImageNet lists index sorted wnids")
    assert not (tmp_path / "run").exists()


def test_a_run_folder_of_that_combination_still_loads():
    from difair.config import TrainConfig, apply_overrides

    over = ["data.name=tinyimagenet", "data.split_family=neal", "data.tinyimagenet_order=wnids"]
    cfg = TrainConfig.from_dict(apply_overrides(TrainConfig().to_dict(), over))
    cfg.resolve()  # what eval, predict and export do with an existing run's config.yaml: no refusal
    with pytest.raises(DifairError, match="neal \\(CAC\\) Tiny ImageNet lists index sorted wnids"):
        cfg.check_new_run()  # only a new run is refused
    over = [
        "model.freeze_backbone=true",
        "model.backbone_lr_scale=0.1",
    ]  # a scale for a backbone that never trains
    with pytest.raises(DifairError, match="model.freeze_backbone=true trains none: drop one of them"):
        TrainConfig.from_dict(apply_overrides(TrainConfig().to_dict(), over)).check_new_run()


@pytest.mark.parametrize("choice", [["--preset", "difair-cub"], ["--preset", "ce-aircraft"], ["--dataset"]])
def test_a_split_family_on_a_dataset_without_split_lists_is_refused(tmp_path, capsys, choice):
    # SSB and folder datasets take their classes from the SSB lists or data.known: neal would be recorded, not used
    if choice == ["--dataset"]:
        choice = ["--method", "difair", "--dataset", f"folder:{tmp_path / 'images'}"]
    argv = [*choice, "--set", "data.split_family=neal", "--set", f"data.root={tmp_path}", "--epochs", "1",
            "--out", str(tmp_path / "run")]  # fmt: skip
    argv = ["train", *argv]
    _one_line(capsys, main(argv), "has no split lists of that family: drop --set data.split_family")
    assert not (tmp_path / "run").exists()


def test_the_split_family_check_names_each_dataset_without_lists():
    from difair.config import DataConfig
    from difair.data.splits import check_split_family

    for name in ("imagenet-ssb", "scars"):
        with pytest.raises(DifairError, match=f"{name} has no split lists of that family"):
            check_split_family(DataConfig(name=name, split_family="neal"))
    for name in ("mnist", "cifar+10", "tinyimagenet", "digits"):
        check_split_family(DataConfig(name=name, split_family="neal"))  # their neal lists exist
    check_split_family(DataConfig(name="cub"))  # the default family is no choice


RESUME_REFUSES = {
    "--method": ["ce"], "--dataset": ["mnist"], "--split": ["1"], "--preset": ["difair-mnist"],
    "--config": ["c.yaml"], "--epochs": ["3"], "--seed": ["1"], "--out": ["elsewhere"],
    "--set": ["optim.lr=0.5"], "--fast": [], "--authors-code": [],
}  # fmt: skip


@pytest.mark.parametrize("flag", sorted(RESUME_REFUSES))
def test_resume_refuses_every_flag_that_configures_a_run(tmp_path, capsys, flag):
    argv = ["train", "--resume", str(tmp_path / "run"), flag, *RESUME_REFUSES[flag]]
    _one_line(
        capsys, main(argv), f"--resume continues the run exactly as it was configured, so it takes no {flag}"
    )


def test_the_resume_refusal_covers_every_train_flag():
    from difair.cli import build_parser

    train = build_parser()._subparsers._group_actions[0].choices["train"]
    flags = {a.option_strings[-1] for a in train._actions}
    assert flags - {"--help", "--resume", "--overwrite", "--quiet", "--devices"} == set(RESUME_REFUSES)


def test_every_section_of_the_config_is_validated(monkeypatch):
    # the sections were once listed by hand in TrainConfig.validate: a method's section added as a field alone
    # would never have been checked
    import dataclasses

    from difair.config import TrainConfig
    from difair.methods import method_names, options_section

    cfg = TrainConfig()
    sections = {f.name for f in dataclasses.fields(cfg) if hasattr(getattr(cfg, f.name), "validate")}
    assert {options_section(m) for m in method_names()} <= sections
    seen = []
    for name in sections:
        cls = type(getattr(cfg, name))
        monkeypatch.setattr(cls, "validate", lambda self, *a, n=name: seen.append(n))
    cfg.validate()
    assert sorted(seen) == sorted(sections)


def test_a_loader_called_directly_refuses_the_size_the_config_refuses():
    from difair.config import MIN_IMAGE_SIZE, DataConfig
    from difair.data import get_dataset

    with pytest.raises(DifairError, match=f"data.image_size must be >= {MIN_IMAGE_SIZE}, got 2"):
        get_dataset(DataConfig(name="digits", image_size=2))  # once accepted: the backbones' convs need 4
    with pytest.raises(DifairError, match=f"data.image_size must be >= {MIN_IMAGE_SIZE}, got 2"):
        DataConfig(name="digits", image_size=2).validate()


def test_an_unknown_option_points_at_the_subcommand_s_help(capsys):
    _one_line(capsys, main(["predict", "run", "x.png", "--epochs", "3"]), "(see: difair predict --help)")
    _one_line(capsys, main(["--bogus"]), "unrecognized arguments: --bogus (see: difair --help)")


def test_more_bad_input_is_named(tmp_path, capsys):
    _one_line(capsys, main(["train", "--set", "=1"]), "--set takes key=value, got '=1'")
    missing = tmp_path / "no" / "run"
    _one_line(
        capsys, main(["train", "--resume", str(missing)]), f"{missing} does not exist: --resume takes the"
    )
    assert not (tmp_path / "no").exists()  # the lock once made it


def test_a_file_or_a_dangling_link_is_not_taken_for_a_run_folder(tmp_path, capsys):
    afile = tmp_path / "notes.txt"
    afile.write_text("x")
    _one_line(capsys, main(["eval", str(afile)]), "is not a difair run folder")
    link = tmp_path / "gone"
    link.symlink_to(tmp_path / "nowhere")
    argv = ["train", "--epochs", "1", "--out", str(link), "--quiet"]
    _one_line(capsys, main(argv), f"{link} is a dangling link, not a run folder: choose another path")
    _one_line(
        capsys,
        main(["train", "--epochs", "1", "--out", str(afile), "--quiet"]),
        "is a file, not a run folder",
    )
    assert afile.read_text() == "x"


def test_fit_of_a_dict_names_the_constructor(tmp_path):
    from difair.engine import fit

    with pytest.raises(DifairError, match=r"fit takes a TrainConfig, got dict: TrainConfig.from_dict"):
        fit({"epochs": 2}, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_a_config_built_in_python_is_checked_as_a_file_is():
    # TrainConfig(optim=OptimConfig(lr="abc")).validate() raised a TypeError from a comparison
    from difair.config import DataConfig, OptimConfig, TrainConfig

    with pytest.raises(DifairError, match="option optim.lr takes a number, got 'abc'"):
        TrainConfig(optim=OptimConfig(lr="abc")).validate()
    with pytest.raises(DifairError, match="option data.split takes a whole number, got 'x'"):
        TrainConfig(data=DataConfig(split="x")).validate()
    TrainConfig(optim=OptimConfig(lr="0.1")).validate()  # what from_dict takes from a file, it takes here
    assert TrainConfig(optim=OptimConfig(lr="0.1")).resolve().optim.lr == 0.1


def test_more_api_edge_values_are_named():
    from difair.config import TrainConfig, apply_overrides

    with pytest.raises(
        DifairError, match=r"overrides are a list of key=value strings, got one string: \['epochs=3'\]"
    ):
        apply_overrides(TrainConfig().to_dict(), "epochs=3")  # it looped over the characters: "got 'e'"


def test_a_bad_radius_ratio_is_named_before_the_radius_it_would_give(capsys):
    # once a ValueError "report it": the radius's message computed with the bad ratio
    argv = ["train", "--set", "difair.radius=-1", "--set", "difair.radius_ratio=-1", "--epochs", "1"]
    _one_line(capsys, main(argv), "difair.radius_ratio must be > 0, got -1.0")
