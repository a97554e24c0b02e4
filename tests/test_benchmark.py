"""difair benchmark: the grid writes three tables, skips finished runs, resumes after a kill, rebuilds reports."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from difair.bench.grid import MANIFEST, RunSpec, run_config, write_manifest
from difair.bench.report import write_tables
from difair.cli import main
from difair.config import TrainConfig, apply_overrides
from difair.data import default_root
from difair.errors import DifairError
from tiny import TINY

TABLES = ("table.md", "table.csv", "table.json")
FAST = [
    *(o for o in TINY if not o.startswith("data.name=")),
    "optim.lr=0.05",
    "precision=32-true",
    "channels_last=false",
]


def _argv(out: Path, methods: str = "difair,ce,cac", splits: str = "0-1", epochs: int = 2) -> list[str]:
    sets = [a for o in FAST for a in ("--set", o)]
    return ["benchmark", "--quiet", "--datasets", "digits", "--methods", methods, "--splits", splits,
            "--epochs", str(epochs), "--out", str(out), *sets]  # fmt: skip


def _tables(out: Path) -> dict[str, bytes]:
    return {name: (out / name).read_bytes() for name in TABLES}


def _files(out: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime_ns for p in sorted((out / "runs").rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def grid(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bench") / "digits"
    assert main(_argv(out)) == 0
    return out


def test_grid_writes_three_tables(grid: Path) -> None:
    assert sorted(p.name for p in (grid / "runs").iterdir()) == sorted(
        f"{m}-digits-split{s}-seed0" for m in ("difair", "ce", "cac") for s in (0, 1)
    )
    md = (grid / "table.md").read_text()
    assert "**Budget: 2 epochs per run** (the paper: 600)" in md and "proxy" in md
    assert "Fidelity options (docs/fidelity.md): corr_variant=paper" in md
    for row in (
        "| digits | difair | min_distance | 2 |",
        "| digits | ce | msp | 2 |",
        "| digits | cac | cac | 2 |",
    ):
        assert row in md
    csv_lines = (grid / "table.csv").read_text().splitlines()
    assert csv_lines[0].startswith("dataset,method,score,seed,n_runs,splits,acc_mean_pct")
    assert len(csv_lines) == 1 + 7  # difair 3 scores, ce 2, cac 2
    table = json.loads((grid / "table.json").read_text())
    assert table["benchmark"]["epochs"] == [2] and table["benchmark"]["proxy"]
    assert {r["method"] for r in table["rows"]} == {"difair", "ce", "cac"}


def test_results_record_split_family_and_conventions(grid: Path) -> None:
    res = json.loads((grid / "runs" / "cac-digits-split1-seed0" / "results.json").read_text())
    assert res["split_family"] == "vaze" and res["split"] == 1
    assert res["fidelity"]["balance"] == "without_replacement"
    assert {"corr_variant", "cac_recenter", "split_family", "normalization"} <= set(res["fidelity"])


def test_second_call_skips_finished_runs(grid: Path) -> None:
    before, tables = _files(grid), _tables(grid)
    assert main(_argv(grid)) == 0
    assert _files(grid) == before  # no checkpoint, log or result rewritten
    assert _tables(grid) == tables
    timing = json.loads((grid / "timing.json").read_text())
    assert len(timing) == 6


def test_report_only_rebuilds_identical_tables(grid: Path) -> None:
    tables = _tables(grid)
    for name in TABLES:
        (grid / name).unlink()
    assert main(["benchmark", "--report-only", str(grid)]) == 0
    assert _tables(grid) == tables


def test_interrupted_grid_resumes_to_the_same_tables(grid: Path, tmp_path: Path) -> None:
    """Kill a benchmark process mid-grid, rerun it: the tables equal those of the uninterrupted grid."""
    out = tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # the tests' thread count (conftest), for identical numbers
    argv = [sys.executable, "-m", "difair.cli", *_argv(out, methods="difair,ce")]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            started = [  # not the hidden stage of a new run: that is swapped in at its first checkpoint
                p.parent
                for p in out.glob("runs/*/metrics.jsonl")
                if not p.parent.name.startswith(".") and p.read_text().strip()
            ]
            if any(not (run / "results.json").is_file() for run in started) and list(
                out.glob("runs/*/results.json")
            ):
                break  # one run finished, another one mid-way
            time.sleep(0.02)
        assert proc.poll() is None, "the grid finished before it could be interrupted"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    finished = len(list(out.glob("runs/*/results.json")))
    assert 1 <= finished < 4
    assert main(_argv(out, methods="difair,ce")) == 0
    timing = json.loads((out / "timing.json").read_text())
    assert sum(t["how"] == "resumed" for t in timing.values()) >= 1
    # the uninterrupted reference: the same cells of the module grid
    ref = tmp_path / "ref"
    shutil.copytree(grid / "runs", ref / "runs", ignore=shutil.ignore_patterns("cac-*"))
    shutil.copy(out / "benchmark.json", ref / "benchmark.json")
    write_tables(ref)
    assert _tables(out) == _tables(ref)


def test_paper_numbers_beside_ours(tmp_path: Path) -> None:
    out = tmp_path / "fake"
    for method, score, acc, auroc in [("difair", "min_distance", 0.99, 0.97), ("ce", "mls", 0.98, 0.99)]:
        run = out / "runs" / f"{method}-mnist-split0-seed0"
        run.mkdir(parents=True)
        metrics = {"closed_set_accuracy": acc, "auroc": auroc, "oscr": acc * auroc}
        res = {"method": method, "dataset": "mnist", "split": 0, "seed": 0, "epochs": 3, "score": score,
               "scores": {score: metrics}, "fidelity": {"split_family": "vaze"}, **metrics,
               "checkpoint": {"epoch": 3, "epochs": 3, "complete": True}}  # fmt: skip
        (run / "results.json").write_text(json.dumps(res))
    write_tables(out)
    md = (out / "table.md").read_text()
    assert (
        "| mnist | difair | min_distance | 1 | 3/3 | 99.00 ± 0.00 | **97.00 ± 0.00** |" in md
    )  # its best: bold
    assert "DIFAIR: 99.81 / 98.35" in md
    assert "MLS: 99.80 / 99.55; MLS [Vaze]: - / 99.30" in md
    csv = (out / "table.csv").read_text()
    assert (
        "mnist,difair,min_distance,0,1,0,99.0000,0.0000,97.0000,0.0000" in csv
        and ",DIFAIR,99.8100,98.3500," in csv
    )
    rows = json.loads((out / "table.json").read_text())["rows"]
    assert rows[0]["paper"] == {
        "row": "DIFAIR",
        "closed_set_accuracy": 0.9981,
        "auroc": 0.9835,
        "differs": [],
    }
    assert "†" not in md and "Seed" not in md


def _fake_run(out: Path, method: str, dataset: str, split: int, seed: int, auroc: float, **fidelity) -> Path:
    run = out / "runs" / f"{method}-{dataset}-split{split}-seed{seed}"
    run.mkdir(parents=True)
    metrics = {"closed_set_accuracy": 0.9, "auroc": auroc, "oscr": 0.9 * auroc}
    score = {"difair": "min_distance", "cac": "cac"}.get(method, "mls")
    res = {"method": method, "dataset": dataset, "split": split, "seed": seed, "epochs": 3, "score": score,
           "scores": {score: metrics}, "fidelity": {"split_family": "vaze", **fidelity}, **metrics,
           "checkpoint": {"epoch": 3, "epochs": 3, "complete": True}}  # fmt: skip
    (run / "results.json").write_text(json.dumps(res))
    return run


def test_seeds_are_rows_of_their_own_and_other_settings_mark_the_paper(tmp_path: Path) -> None:
    out = tmp_path / "fake"
    for split, seed, auroc in [(0, 0, 0.8), (1, 0, 0.9), (0, 1, 0.5), (1, 1, 0.7)]:
        _fake_run(out, "difair", "tinyimagenet", split, seed, auroc, tinyimagenet_order="sorted")
    _fake_run(out, "cac", "tinyimagenet", 0, 0, 0.6, tinyimagenet_order="wnids", cac_recenter=False)
    _fake_run(out, "ce", "tinyimagenet", 0, 0, 0.6, tinyimagenet_order="wnids")
    rows = write_tables(out)
    difair = [r for r in rows if r["method"] == "difair"]
    assert [(r["seed"], r["n_runs"], r["auroc"]["mean"]) for r in difair] == [
        (0, 2, pytest.approx(0.85)),
        (1, 2, 0.6),
    ]
    assert difair[0]["auroc"]["std"] == pytest.approx(0.05)  # over the splits of one seed, not over seeds
    md = (out / "table.md").read_text()
    assert "| Dataset | Method | Score | Seed | Runs |" in md
    assert "| tinyimagenet | difair | min_distance | 1 | 2 | 3/3 |" in md
    assert "DIFAIR: 76.06 / 73.38 †" in md and "CAC: 77.68 / 67.65 †" in md and "MLS: 74.48 / 73.87;" in md
    note = md.split("† The paper's number comes from another setting than these runs': ")[1]
    assert "wnids.txt order (data.tinyimagenet_order=wnids)" in note and "re-centred anchors" in note
    ce = next(r for r in rows if r["method"] == "ce" and r["score"] == "mls")
    assert ce["paper"]["differs"] == []  # its setting is the paper's


def test_runs_trained_otherwise_are_not_averaged_into_one_row(tmp_path: Path) -> None:
    out = tmp_path / "fake"
    for split, lr in [(0, 0.01), (1, 0.5)]:
        run = _fake_run(out, "difair", "digits", split, 0, 0.9)
        cfg = apply_overrides(TrainConfig().to_dict(), [f"data.split={split}", f"optim.lr={lr}", "epochs=3"])
        (run / "config.yaml").write_text(TrainConfig.from_dict(cfg).to_yaml())
    with pytest.raises(
        DifairError, match=r"holds difair runs on digits trained otherwise \(optim.lr: 0.01 \| 0.5\)"
    ):
        write_tables(out)
    assert not (out / "table.md").exists()
    cfg = apply_overrides(
        TrainConfig().to_dict(), ["data.split=1", "optim.lr=0.01", "epochs=3", "eval_batch_size=64"]
    )
    (out / "runs" / "difair-digits-split1-seed0" / "config.yaml").write_text(
        TrainConfig.from_dict(cfg).to_yaml()
    )
    assert write_tables(out)[0]["n_runs"] == 2  # splits differ, and how a run computes: one row


@pytest.mark.parametrize(
    "extra, fragment",
    [
        (["--set", "method=ce"], "--set method=... is a grid coordinate"),
        (["--set", "data.split=3"], "use --splits instead"),
        (["--methods", "svm"], "unknown method 'svm'"),
        (["--datasets", "imagenet21k"], "unknown dataset 'imagenet21k'"),
        (["--splits", "0-7"], "split 5 is out of range"),
        (
            ["--datasets", "mnist,digits", "--authors-code", "--set", "data.root=/nonexistent"],
            "no reference normalisation constants for 'digits'",
        ),
    ],
)
def test_bad_benchmark_input_is_one_line(tmp_path: Path, extra: list[str], fragment: str, capsys) -> None:
    assert main([*_argv(tmp_path / "bad"), *extra]) == 2
    err = capsys.readouterr().err
    assert fragment in err and err.count("\n") == 1
    assert not (tmp_path / "bad" / "runs").exists()  # refused before any cell trained (mnist comes first)


def test_folder_with_another_budget_is_refused(grid: Path, capsys) -> None:
    assert main(_argv(grid, epochs=3)) == 2
    assert "holds a benchmark with epochs=2" in capsys.readouterr().err
    assert main([*_argv(grid), "--set", "optim.lr=0.3"]) == 2  # another training option
    err = capsys.readouterr().err
    assert (
        "which train otherwise (cac on digits: optim.lr: " in err
        and "| 0.3; a default may have changed" in err
    )


def test_options_that_do_not_change_training_are_not_a_new_benchmark(grid: Path, tmp_path: Path) -> None:
    before = _files(grid)
    # the --set list reversed, plus options that only change how a run executes
    sets = [*reversed(FAST), "cpu_threads=1", f"data.root={tmp_path}", "eval_batch_size=64"]
    argv = ["benchmark", "--quiet", "--datasets", "digits", "--methods", "difair,difair", "--splits", "0",
            "--epochs", "2", "--out", str(grid), *(a for o in sets for a in ("--set", o))]  # fmt: skip
    assert main(argv) == 0
    assert _files(grid) == before  # every run reused
    manifest = json.loads((grid / MANIFEST).read_text())
    assert manifest["methods"] == ["difair", "ce", "cac"] and manifest["datasets"] == ["digits"]


def test_a_folder_where_no_run_started_takes_new_options(tmp_path: Path) -> None:
    out = tmp_path / "b"
    write_manifest(out.mkdir() or out, [RunSpec("difair", "digits", 0)], 1, ["optim.lr=0.3"])
    manifest = write_manifest(
        out, [RunSpec("difair", "digits", 0)], 2, []
    )  # nothing trained yet: not refused
    assert (manifest["epochs"], manifest["overrides"]) == (2, [])
    (out / "runs" / RunSpec("difair", "digits", 0).name).mkdir(parents=True)
    (out / "runs" / RunSpec("difair", "digits", 0).name / "config.yaml").write_text("x")
    with pytest.raises(DifairError, match="epochs=2"):
        write_manifest(out, [RunSpec("difair", "digits", 0)], 3, [])


def test_run_config_layers_preset_overrides_and_coordinates() -> None:
    cfg = run_config(RunSpec("cac", "cifar10", 3, seed=7), epochs=30, overrides=["optim.lr=0.2"])
    assert (cfg.method, cfg.data.name, cfg.data.split, cfg.seed, cfg.epochs) == ("cac", "cifar10", 3, 7, 30)
    assert cfg.optim.lr == 0.2 and cfg.augment.randaugment_m == 6 and cfg.schedule.warmup_epochs == 1


@pytest.mark.slow
@pytest.mark.data
def test_mnist_benchmark_end_to_end_from_shared_data(tmp_path: Path) -> None:
    if not (default_root() / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file():
        pytest.skip(
            f"MNIST not unpacked in {default_root()}: run /work/shared/tools/prepare-data {default_root()}"
        )
    out = tmp_path / "mnist"
    sets = ["data.image_size=8", "model.width=0.25", "batch_size=256", "precision=32-true"]
    argv = [
        "benchmark",
        "--quiet",
        "--datasets",
        "mnist",
        "--splits",
        "0",
        "--epochs",
        "1",
        "--out",
        str(out),
    ]
    assert main([*argv, *[a for o in sets for a in ("--set", o)]]) == 0
    md = (out / "table.md").read_text()
    assert "| mnist | difair | min_distance | 1 |" in md and "DIFAIR: 99.81 / 98.35" in md
    assert "preset difair-mnist" in md
    res = json.loads((out / "runs" / "ce-mnist-split0-seed0" / "results.json").read_text())
    assert res["n_train"] > 30000 and res["fidelity"]["split_family"] == "vaze"


def test_the_default_splits_are_each_datasets_own() -> None:
    from difair.bench.grid import make_grid

    specs = make_grid(["ce"], ["cub", "mnist", "folder:/photos"], None)
    assert [(s.dataset, s.split) for s in specs] == [
        ("cub", 0),
        *(("mnist", k) for k in range(5)),
        ("folder:/photos", 0),
    ]  # the SSB and a folder have one split: 1-4 would be refused after cub split 0 trained
    assert [s.split for s in make_grid(["ce"], ["mnist"], [2])] == [2]  # --splits given: as given


def test_ssb_runs_get_a_table_per_difficulty(tmp_path: Path) -> None:
    out = tmp_path / "fake"
    for method, easy, hard in [("difair", 0.9, 0.7), ("ce", 0.8, 0.6)]:
        run = _fake_run(out, method, "cub", 0, 0, 0.75)
        res = json.loads((run / "results.json").read_text())
        score = res["score"]
        res["unknown_subsets"] = {
            name: {"auroc": a, "n_unknown": 10, "scores": {score: {"auroc": a, "oscr": a / 2}}}
            for name, a in [("Easy", easy), ("Hard", hard), ("Empty", None)]
            if a is not None
        } | {"Empty": {"n_unknown": 0}}  # a subset without unknown images has no metrics
        (run / "results.json").write_text(json.dumps(res))
    _fake_run(out, "difair", "mnist", 0, 0, 0.99)  # no subsets: no line below
    write_tables(out)
    md = (out / "table.md").read_text()
    assert (
        "| Dataset | Method | Score | Runs | Epochs | Easy AUROC (%) | Hard AUROC (%) | Easy OSCR (%) |" in md
    )
    assert (
        "| cub | difair | min_distance | 1 | 3/3 | 90.00 ± 0.00 | 70.00 ± 0.00 | 45.00 ± 0.00 | 35.00 ± 0.00 |"
        in md
    )
    assert "| cub | ce | mls | 1 | 3/3 | 80.00 ± 0.00 | 60.00 ± 0.00 | 40.00 ± 0.00 | 30.00 ± 0.00 |" in md
    below = md.split("Per unknown subset")[1]
    assert below.index("| cub | difair |") < below.index("| cub | ce |") and "| mnist |" not in below
    csv = (out / "table_subsets.csv").read_text().splitlines()
    assert csv[0].startswith(
        "dataset,method,score,seed,subset,n_runs,splits,acc_mean_pct,acc_std_pct,auroc_mean"
    )
    assert "cub,difair,min_distance,0,Hard,1,0,,,70.0000,0.0000,35.0000,0.0000,3,3,true" in csv
    subsets = json.loads((out / "table.json").read_text())["subsets"]
    assert [(r["method"], r["subset"]) for r in subsets] == [
        ("difair", "Easy"),
        ("difair", "Hard"),
        ("ce", "Easy"),
        ("ce", "Hard"),
    ]


def test_a_resumed_cell_counts_the_epochs_its_checkpoint_holds(tmp_path: Path) -> None:
    from difair.bench.grid import epochs_done
    from difair.engine import rundir as R

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    assert epochs_done(run) == 0
    rows = [{"epoch": e, "loss": 1.0} for e in range(3)]  # a kill after epoch 3's row, before its checkpoint
    (run / R.METRICS).write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"epoch": 3, "lo')
    R.save_checkpoint(run / R.CHECKPOINT, {"epoch": 1, "model": {}, "config_digest": "x"})  # epochs 0 and 1
    assert epochs_done(run) == 2
    (run / R.CHECKPOINT).write_bytes(b"torn")
    assert epochs_done(run) == 0


def test_the_table_header_states_every_fast_path_setting_the_runs_used(tmp_path: Path) -> None:
    from difair.config import FAST_PATH

    out = tmp_path / "fake"
    run = _fake_run(out, "difair", "digits", 0, 0, 0.9)
    cfg = apply_overrides(TrainConfig().to_dict(), [*FAST_PATH, "epochs=3"])
    (run / "config.yaml").write_text(TrainConfig.from_dict(cfg).to_yaml())
    write_tables(out)
    line = next(ln for ln in (out / "table.md").read_text().splitlines() if ln.startswith("Run settings: "))
    assert (
        line == "Run settings: " + ", ".join(FAST_PATH) + "."
    )  # optim.foreach and cpu_allocator were left out


def test_a_method_without_demo_settings_takes_those_of_the_method_whose_options_it_shares(
    monkeypatch,
) -> None:
    # design.md's worked example registers a CE-trained method: the benchmark's digits cells died with KeyError
    from difair.demo import demo_config
    from difair.methods import METHODS
    from difair.methods.ce import CEMethod

    class Energy(CEMethod):
        name = "energy_test"
        config_section = "ce"

    monkeypatch.setitem(METHODS, "energy_test", Energy)
    assert demo_config("energy_test", 0).optim.lr == demo_config("ce", 0).optim.lr == 0.05
    assert demo_config("energy_test", 0).method == "energy_test"


def test_a_missing_dataset_stops_the_grid_before_any_cell_trains(tmp_path: Path, capsys) -> None:
    # it was found when its first cell came up, after the cells before it had trained (hours, on a real grid)
    argv = ["benchmark", "--methods", "difair", "--datasets", "digits,mnist", "--splits", "0", "--epochs", "1",
            "--set", f"data.root={tmp_path / 'empty'}", "--out", str(tmp_path / "bench"), "--quiet"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "MNIST not found" in err
    assert not any((tmp_path / "bench" / "runs").glob("*/results.json"))  # digits' cell never trained
