"""Issue 11, case 3: results say which epoch of how many their checkpoint holds; ``difair eval`` of an unfinished
run writes partial results, and ``difair benchmark`` never tables them as complete nor reuses them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from difair.bench.grid import RunSpec, run_config, write_manifest
from difair.cli import main
from difair.engine import rundir as R
from difair.engine.fit import fit
from difair.engine.runner import run_status
from difair.errors import DifairError
from difair.eval.tables import aggregate, to_markdown
from tiny import TINY

pytestmark = pytest.mark.slow

FAST = [*(o for o in TINY if not o.startswith("data.name=")), "optim.lr=0.05", "precision=32-true",
        "channels_last=false"]  # fmt: skip
SPEC = RunSpec("ce", "digits", 0)


def _argv(out: Path) -> list[str]:
    sets = [a for o in FAST for a in ("--set", o)]
    return ["benchmark", "--quiet", "--datasets", "digits", "--methods", "ce", "--splits", "0", "--epochs", "2",
            "--out", str(out), *sets]  # fmt: skip


def _killed_benchmark(out: Path) -> Path:
    """A benchmark of one 2-epoch run, killed after the run's first epoch (its checkpoint holds epoch 1 of 2)."""

    def kill(row):
        raise KeyboardInterrupt

    write_manifest(out, [SPEC], 2, FAST)
    run_dir = out / "runs" / SPEC.name
    with pytest.raises(KeyboardInterrupt):
        fit(run_config(SPEC, 2, FAST), run_dir, show_progress=False, on_epoch=kill)
    assert R.load_checkpoint(run_dir / R.CHECKPOINT)["epoch"] == 0 and not (run_dir / R.RESULTS).exists()
    return run_dir


@pytest.mark.parametrize(
    "legacy", [False, True], ids=["results-of-this-version", "results-without-checkpoint"]
)
def test_eval_of_a_killed_benchmark_run_is_partial_and_the_benchmark_resumes_it(tmp_path, capsys, legacy):
    out = tmp_path / "bench"
    run_dir = _killed_benchmark(out)
    capsys.readouterr()
    assert main(["eval", str(run_dir)]) == 0
    err = capsys.readouterr().err
    assert "unfinished" in err and "epoch 1 of 2" in err and "marked partial" in err
    results = json.loads((run_dir / R.RESULTS).read_text())
    assert results["checkpoint"] == {"epoch": 1, "epochs": 2, "complete": False}
    if legacy:  # as difair <= 0.1.0's eval wrote it: the record does not say which epoch
        del results["checkpoint"]
        (run_dir / R.RESULTS).write_text(json.dumps(results))

    assert (
        main(["benchmark", "--report-only", str(out)]) == 0
    )  # tabled now: marked, not as the budget's result
    md = (out / "table.md").read_text()
    assert "| digits | ce | mls | 1 | 1/2 partial |" in md and "1 run(s) unfinished" in md
    rows = json.loads((out / "table.json").read_text())["rows"]
    assert all(r["checkpoint"] == {"epoch": 1, "epochs": 2, "complete": False} for r in rows)

    capsys.readouterr()
    assert main(_argv(out)) == 0
    assert json.loads((out / "timing.json").read_text())[SPEC.name]["how"] == "resumed"  # not "reused"
    assert json.loads((run_dir / R.RESULTS).read_text())["checkpoint"] == {
        "epoch": 2,
        "epochs": 2,
        "complete": True,
    }
    md = (out / "table.md").read_text()
    assert "| digits | ce | mls | 1 | 2/2 |" in md and "partial" not in md and "unfinished" not in md
    assert "**Budget: 2 epochs per run**" in md
    csv_lines = (out / "table.csv").read_text().splitlines()
    assert csv_lines[0].endswith(",checkpoint_epoch,epochs,complete") and csv_lines[1].endswith(",2,2,true")


def test_a_run_of_another_epoch_budget_is_refused_in_one_line(tmp_path):
    run_dir = tmp_path / SPEC.name
    fit(run_config(SPEC, 1, FAST), run_dir, show_progress=False)
    assert run_status(run_config(SPEC, 1, FAST), run_dir) == "done"
    with pytest.raises(DifairError, match="holds a run of 1 epochs, not 2: rerun with --epochs 1") as err:
        run_status(run_config(SPEC, 2, FAST), run_dir)
    assert "\n" not in str(err.value)


def _result(split: int, epoch: int | None, epochs: int, auroc: float) -> dict:
    m = {"closed_set_accuracy": 0.9, "auroc": auroc, "oscr": 0.8}
    res = {
        "dataset": "digits",
        "method": "ce",
        "split": split,
        "score": "mls",
        "epochs": epochs,
        "scores": {"mls": m},
    }
    if epoch is not None:
        res["checkpoint"] = {"epoch": epoch, "epochs": epochs, "complete": epoch == epochs}
    return res


def test_partial_and_finished_runs_are_never_averaged_together():
    rows = aggregate(
        [_result(0, 4, 4, 0.9), _result(1, 4, 4, 0.8), _result(2, 2, 4, 0.5), _result(3, None, 4, 0.1)]
    )
    got = [
        (r["splits"], r["checkpoint"]["epoch"], r["checkpoint"]["complete"], r["auroc"]["mean"]) for r in rows
    ]
    assert got == [([0, 1], 4, True, pytest.approx(0.85)), ([3], None, False, 0.1), ([2], 2, False, 0.5)]
    md = to_markdown(rows)
    assert (
        "| digits | ce | mls | 2 | 4/4 |" in md
        and "| 1 | 2/4 partial |" in md
        and "| 1 | ?/4 partial |" in md
    )
