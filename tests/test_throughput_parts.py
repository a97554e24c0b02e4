"""Unit tests of the engine pieces behind the fast path and DDP: the callable epoch, sharding, seeds, digests."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pytest
import torch

from difair.bench import ray_backend
from difair.data import get_dataset
from difair.engine import ddp
from difair.engine.fit import fit, run_epoch
from difair.engine.loop import build_loop, epoch_batches, train_one_epoch
from difair.engine.schedule import lr_at_epoch, set_lr
from difair.errors import DifairError
from tiny import tiny_config


def test_epoch_batches_shard_each_global_batch() -> None:
    perm = torch.randperm(37, generator=torch.Generator().manual_seed(0))
    single = list(epoch_batches(perm, 8))
    assert [len(b) for b in single] == [8, 8, 8, 8, 5]  # the last partial batch is kept
    assert torch.equal(torch.cat(single), perm)
    ranks = [list(epoch_batches(perm, 8, r, 2)) for r in range(2)]
    assert [len(b) for b in ranks[0]] == [4, 4, 4, 4, 3] and [len(b) for b in ranks[1]] == [4, 4, 4, 4, 2]
    for whole, a, b in zip(single, *ranks, strict=True):  # global batch = union of the ranks' batches
        assert sorted(whole.tolist()) == sorted(a.tolist() + b.tolist())
    assert len(list(epoch_batches(torch.arange(9), 8))) == 1  # a 1-sample batch cannot train BatchNorm
    # a global batch of 3 would leave one rank a single sample: every rank skips it
    assert all(len(list(epoch_batches(torch.arange(11), 8, r, 2))) == 1 for r in range(2))


def test_rank_seeds() -> None:
    assert ddp.rank_seed(123, 0) == 123  # a single process keeps its seeds
    assert len({ddp.rank_seed(123, r) for r in range(4)}) == 4


def test_train_one_epoch_runs_without_a_run_folder_and_is_fits_epoch(tmp_path: Path) -> None:
    cfg = tiny_config("difair", epochs=2).resolve()
    fit(cfg, tmp_path / "run", show_progress=False)
    first = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[0])

    data = get_dataset(cfg.data)
    loop = build_loop(cfg, data)
    set_lr(loop.optimizer, lr_at_epoch(0, cfg.optim.lr, cfg.epochs, cfg.schedule))
    row = run_epoch(loop, 0)
    assert row["train_loss"] == first["train_loss"] and row["train_accuracy"] == first["train_accuracy"]

    before = ddp.parameter_digest(loop.model)
    set_lr(loop.optimizer, 0.05)
    stats = train_one_epoch(loop, [torch.arange(16), torch.arange(16, 48)], torch.Generator())
    assert stats.steps == 2 and stats.seen == 48 and set(stats.sums) >= {"loss"}
    assert ddp.parameter_digest(loop.model) != before


def test_parameter_digest_sees_every_parameter() -> None:
    m = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Linear(2, 1))
    d = ddp.parameter_digest(m)
    assert d == ddp.parameter_digest(m) and len(d) == 16
    with torch.no_grad():
        m[1].bias.add_(1e-7)
    assert ddp.parameter_digest(m) != d


def test_reduce_epoch_sums_adds_over_ranks() -> None:
    class TwoRanks:  # stands in for Fabric: two identical ranks
        device = torch.device("cpu")

        def all_reduce(self, t, reduce_op):
            assert reduce_op == "sum"
            return t * 2

    sums, correct, seen = ddp.reduce_epoch_sums(
        TwoRanks(), {"loss": torch.tensor(3.0), "distance": torch.tensor(1.5)}, torch.tensor(7), 10
    )
    assert float(sums["loss"]) == 6.0 and float(sums["distance"]) == 3.0
    assert float(correct) == 14.0 and seen == 20


def test_compile_switch_is_recorded_but_not_part_of_the_digest() -> None:
    off, on = tiny_config(), tiny_config(extra=["compile=true"])
    assert on.compile and not off.compile
    assert on.digest() == off.digest()
    assert "compile: true" in on.to_yaml()


def test_ray_options_and_a_missing_ray_name_the_extra(monkeypatch) -> None:
    p = argparse.ArgumentParser()
    ray_backend.add_ray_arguments(p)
    assert p.parse_args([]).ray is None
    assert p.parse_args(["--ray"]).ray == ""  # local Ray
    a = p.parse_args(["--ray", "ray://head:10001", "--gpus-per-run", "0.5"])
    assert a.ray == "ray://head:10001" and a.gpus_per_run == 0.5 and a.cpus_per_run == 1
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    with pytest.raises(DifairError, match=r"pip install 'difair\[ray\]'"):
        ray_backend.run_grid_ray([], gpus_per_run=0)
