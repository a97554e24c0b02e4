"""The learning-rate schedule against the values tabulated from both reference codes (reference-notes 4.1)."""

from __future__ import annotations

import pytest
import torch

from difair.config import ScheduleConfig, TrainConfig
from difair.engine.schedule import EpochSchedule, lr_at_epoch

EPOCHS = [0, 1, 5, 10, 11, 50, 100, 150, 199, 200, 201, 599]
VAZE = [
    3e-4,
    0.030086,
    0.149228,
    0.298155,
    0.298155,
    0.257761,
    0.152504,
    0.045867,
    3.74e-4,
    3.18e-4,
    0.3,
    3.74e-4,
]
AUTHORS = [
    3e-4,
    0.030086,
    0.149228,
    0.298155,
    0.298154,
    0.257732,
    0.152400,
    0.045689,
    1.64e-4,
    1.08e-4,
    0.3,
    1.64e-4,
]


@pytest.mark.parametrize("floor, expected", [("vaze", VAZE), ("reference", AUTHORS)])
def test_paper_schedule_matches_the_reference_table(floor: str, expected: list[float]) -> None:
    cfg = ScheduleConfig(warmup_epochs=10, floor=floor)
    got = [lr_at_epoch(e, 0.3, 600, cfg) for e in EPOCHS]
    assert got == pytest.approx(expected, abs=1.5e-6, rel=5e-3)


def test_budget_keeps_the_shape() -> None:
    cfg = TrainConfig(epochs=30).resolve()
    assert cfg.schedule.warmup_epochs == 1  # 10 epochs per 600
    lrs = [lr_at_epoch(e, 0.3, 30, cfg.schedule) for e in range(30)]
    restarts = [e for e in range(1, 30) if lrs[e] > lrs[e - 1] + 0.1]
    assert restarts == [1, 11, 21]  # end of warmup, then two warm restarts at E/3 and 2E/3 (t = e - 1)
    assert min(lrs) == pytest.approx(0.3e-3, rel=0.5)


def test_constant_and_single_cosine() -> None:
    assert lr_at_epoch(17, 0.1, 30, ScheduleConfig(name="constant")) == 0.1
    cos = ScheduleConfig(name="cosine_warmup", warmup_epochs=0)
    lrs = [lr_at_epoch(e, 0.1, 20, cos) for e in range(20)]
    assert lrs[0] == pytest.approx(0.1) and all(a >= b for a, b in zip(lrs, lrs[1:], strict=False))


def test_epoch_schedule_sets_the_optimizer_and_round_trips() -> None:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.3)
    sched = EpochSchedule(opt, 0.3, 600, ScheduleConfig(warmup_epochs=10))
    assert sched.set_epoch(50) == pytest.approx(0.257761, abs=1e-6)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.257761, abs=1e-6)
    other = EpochSchedule(opt, 0.3, 600, ScheduleConfig(warmup_epochs=10))
    other.load_state_dict(sched.state_dict())
    assert other.epoch == 50


def test_every_schedule_name_is_implemented_and_no_other_falls_through():
    from difair.config import SCHEDULES, ScheduleConfig
    from difair.engine.schedule import lr_at_epoch
    from difair.errors import DifairError

    curves = {}
    for name in SCHEDULES:
        cfg = ScheduleConfig(name=name, warmup_epochs=1)
        curves[name] = [lr_at_epoch(e, 0.1, 30, cfg) for e in range(30)]
    assert len({tuple(c) for c in curves.values()}) == len(SCHEDULES)  # each name a schedule of its own
    with pytest.raises(DifairError, match="unknown schedule.name 'cosine'"):
        lr_at_epoch(3, 0.1, 30, ScheduleConfig(name="cosine", warmup_epochs=1))  # once a silent cosine_warmup
