"""The benchmark grid on a local Ray (2 CPUs): it finishes and gives the same tables as the sequential runner."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from difair.bench.grid import make_grid
from difair.bench.runner import run_grid
from difair.errors import DifairError
from tiny import TINY

ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'difair[ray]'")

from difair.bench.ray_backend import run_benchmark_ray, run_grid_ray  # noqa: E402

FAST = [*(o for o in TINY if not o.startswith("data.name=")), "optim.lr=0.05", "precision=32-true",
        "channels_last=false", "accelerator=cpu"]  # fmt: skip
TABLES = ("table.md", "table.csv", "table.json")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_ray_grid_gives_the_sequential_tables(local_ray, tmp_path: Path) -> None:
    specs = make_grid(["difair", "ce"], ["digits"], [0])  # 2 runs, one task each
    run_grid(tmp_path / "seq", specs, epochs=2, overrides=FAST, show_progress=False)
    run_benchmark_ray(tmp_path / "ray", specs, epochs=2, overrides=FAST, gpus_per_run=0, cpus_per_run=1)
    for name in TABLES:
        assert (tmp_path / "ray" / name).read_bytes() == (tmp_path / "seq" / name).read_bytes(), name
    assert sorted(p.name for p in (tmp_path / "ray" / "runs").iterdir()) == [
        s.name for s in sorted(specs, key=lambda s: s.name)
    ]

    # plain jobs: results in job order; a failing job names itself
    assert run_grid_ray([functools.partial(pow, 2, k) for k in range(4)], gpus_per_run=0) == [1, 2, 4, 8]
    with pytest.raises(DifairError, match=r"bad-job failed on Ray: ValueError: invalid literal"):
        run_grid_ray([functools.partial(int, "x")], gpus_per_run=0, names=["bad-job"])
