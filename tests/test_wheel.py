"""The distribution a user installs: `python -m build` makes an sdist and a wheel built from it, `twine check`
passes, the wheel carries every non-Python file of the package, and the wheel installed outside the source tree
runs `difair --help`, `difair presets list` and a one-epoch digits run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "difair"


def _require(*modules: str) -> None:
    import importlib.util

    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        reason = f"{', '.join(missing)} not installed: pip install -e '.[release]'"
        if os.environ.get(
            "DIFAIR_CI"
        ):  # .ci/run installs the release extra: a skip there would hide a bad wheel
            pytest.fail(reason)
        pytest.skip(reason)


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _package_data() -> set[str]:
    """Every file under src/difair that is not Python source: what the wheel must carry besides the modules."""
    files = (p for p in PACKAGE.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    return {f"difair/{p.relative_to(PACKAGE).as_posix()}" for p in files if p.suffix not in (".py", ".pyc")}


def test_wheel_builds_checks_installs_and_runs_outside_the_source_tree(tmp_path: Path) -> None:
    _require("build", "twine", "setuptools")
    dist = tmp_path / "dist"
    # --no-isolation: the build backend (setuptools, in the release extra) comes from this environment, so the
    # build runs offline and in seconds. Without --sdist/--wheel, build makes the sdist and the wheel *from the
    # sdist*, so a file missing from the sdist is missing from the wheel and this test sees it.
    # From a copy of what the sdist is made of, as a fresh checkout has it: a src/difair.egg-info left by an
    # earlier build or editable install lists its files, and setuptools would put them in whatever pyproject says.
    source = tmp_path / "source"
    shutil.copytree(PACKAGE, source / "src" / "difair", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    _run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(source)], cwd=tmp_path)
    wheels, sdists = sorted(dist.glob("difair-*.whl")), sorted(dist.glob("difair-*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, sorted(p.name for p in dist.iterdir())
    _run([sys.executable, "-m", "twine", "check", "--strict", str(wheels[0]), str(sdists[0])], cwd=tmp_path)

    names = set(zipfile.ZipFile(wheels[0]).namelist())
    expected = _package_data()
    assert {"difair/py.typed", "difair/data/ssb_splits.json"} <= expected
    assert any(n.startswith("difair/presets/") and n.endswith(".yaml") for n in expected)
    assert not expected - names, f"package data missing from the wheel: {sorted(expected - names)}"
    assert not [n for n in names if n.startswith(("tests/", "docs/", "benchmarks/"))]

    # A new environment that sees this one's packages (torch and the rest: reinstalling them would download
    # ~2 GB and take minutes in CI) but gets difair only from the wheel. `venv --system-site-packages` would
    # see the base interpreter's packages, not this virtual environment's, so a .pth file names this
    # environment's site-packages instead: plain path entries, whose own .pth files (this environment's editable
    # difair) are not run. --no-deps installs nothing else; --ignore-installed does not stop at the difair
    # metadata visible through those paths.
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp_path)
    bindir = venv / ("Scripts" if os.name == "nt" else "bin")
    py = bindir / "python"
    site = Path(
        _run(
            [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp_path
        ).strip()
    )
    ours = dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))
    (site / "difair-test-deps.pth").write_text("".join(f"{p}\n" for p in ours))
    pip = [str(py), "-m", "pip", "install", "--quiet", "--no-deps", "--ignore-installed", "--no-index"]
    _run([*pip, str(wheels[0])], cwd=tmp_path)

    work = (
        tmp_path / "elsewhere"
    )  # outside the source tree, no PYTHONPATH: only the installed wheel is importable
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"OMP_NUM_THREADS": "1"}
    where = _run([str(py), "-c", "import difair; print(difair.__file__)"], cwd=work, env=env).strip()
    assert Path(where).resolve().is_relative_to(venv.resolve()), (
        f"difair imported from {where}, not the wheel"
    )

    difair = str(bindir / "difair")
    assert "usage: difair" in _run([difair, "--help"], cwd=work, env=env)
    listed = _run([difair, "presets", "list"], cwd=work, env=env)
    presets = sorted(p.stem for p in (PACKAGE / "presets").glob("*.yaml"))
    assert [ln.split()[0] for ln in listed.splitlines() if ln.strip()] == presets

    tiny = ["data.image_size=8", "model.width=0.25", "batch_size=64", "augment.randaugment_n=0"]
    sets = [a for s in tiny for a in ("--set", s)]
    cmd = [difair, "train", "--method", "difair", "--dataset", "digits", "--split", "0", "--epochs", "1"]
    _run([*cmd, "--out", "run", "--quiet", *sets], cwd=work, env=env)
    results = json.loads((work / "run" / "results.json").read_text())
    assert results["checkpoint"] == {"epoch": 1, "epochs": 1, "complete": True}
    assert 0.0 <= results["auroc"] <= 1.0 and results["n_known"] > 0 and results["n_unknown"] > 0
