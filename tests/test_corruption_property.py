"""Issue 11, "Done when": random corruptions of a finished run's files never give a traceback, never run code
and never lose a file.

Each case corrupts one of config.yaml, results.json, metrics.jsonl and checkpoints/last.pt of a copy of one tiny
finished run (truncation at a random offset, random bytes overwritten, an empty file, a list or a number where a
mapping belongs, a mapping with wrong value types, a pickle or YAML tag that would create a marker file) and runs
one of ``difair eval``, ``train --resume``, ``predict`` and ``report`` on it. The cases are drawn from a seeded RNG:
``DIFAIR_PROPERTY_SEED=N`` draws others, and every assertion message names the seed and the case.
"""

from __future__ import annotations

import copy
import io
import json
import os
import pickle
import random
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from difair.cli import main
from difair.engine import rundir as R
from difair.engine.feature_cache import FEATURES_DIR
from tiny import tiny_overrides

pytestmark = pytest.mark.slow

SEED = int(os.environ.get("DIFAIR_PROPERTY_SEED", "11"))
MARKER = "difair-evil-ran"
TARGETS = (R.CONFIG, R.RESULTS, R.METRICS, R.CHECKPOINT)
KINDS = ("truncate", "bytes", "empty", "list", "number", "wrong_values", "code")
COMMANDS = ("eval", "resume", "predict", "report")
# what each command documents that it may rewrite: eval recomputes results.json; resume re-evaluates a finished
# run and drops metric lines its checkpoint does not cover (torn or unreadable ones)
REWRITES = {"eval": {R.RESULTS}, "resume": {R.RESULTS, R.METRICS}, "predict": set(), "report": set()}
THRESHOLD = "threshold.json"  # predict recalibrates a run whose checkpoint changed (docs/visualization.md)


class _Evil:
    """Unpickling this calls ``Path.touch`` on a marker file: what a crafted file would do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _draw_cases() -> list[tuple[str, str, str, int]]:
    """Every (file, corruption) once with a random command, plus the code case of every file with every
    command: 28 + 12 cases (the code case drawn once already is not repeated)."""
    rng = random.Random(SEED)
    cases = {}
    for target in TARGETS:
        for kind in KINDS:
            cases[(target, kind, rng.choice(COMMANDS))] = rng.randrange(2**32)
        for command in COMMANDS:
            cases.setdefault((target, "code", command), rng.randrange(2**32))
    return [(*k, s) for k, s in cases.items()]


def _wrong(rng: random.Random, value: object) -> object:
    """A value of another type than ``value``."""
    choices = ["abc", [1, "x"], {"a": 1}, None, -7, 1e308, True]
    return rng.choice([c for c in choices if type(c) is not type(value)])


def _wrong_mapping(rng: random.Random, data: dict) -> dict:
    """``data`` with one to three of its values (at any depth) replaced by values of other types."""
    data = copy.deepcopy(data)
    for _ in range(rng.randint(1, 3)):
        node = data
        while True:
            key = rng.choice(sorted(node, key=str))
            if isinstance(node[key], dict) and node[key] and rng.random() < 0.6:
                node = node[key]
                continue
            node[key] = _wrong(rng, node[key])
            break
    return data


def _torch_bytes(obj: object) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def corrupt(target: str, kind: str, original: bytes, rng: random.Random, marker: Path) -> bytes:
    """The corrupted content of ``target`` (whose content was ``original``)."""
    is_pt, is_yaml = target.endswith(".pt"), target.endswith(".yaml")
    if kind == "truncate":
        return original[: rng.randrange(len(original))]
    if kind == "bytes":
        data = bytearray(original)
        for _ in range(rng.randint(1, 24)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        return bytes(data)
    if kind == "empty":
        return b""
    if kind in ("list", "number"):
        value: object = [1, "two", [3]] if kind == "list" else rng.choice([3, -1.5, 0])
        if is_pt:
            return _torch_bytes(value)
        return (yaml.safe_dump(value) if is_yaml else json.dumps(value) + "\n").encode()
    if kind == "wrong_values":
        if is_pt:
            state = torch.load(io.BytesIO(original), weights_only=False)
            keys = [
                "model",
                "epoch",
                "num_classes",
                "channels",
                "mean",
                "std",
                "class_names",
                "rng",
                "schedule",
            ]
            for key in rng.sample(keys, rng.randint(1, 3)):
                state[key] = _wrong(rng, state[key])
            return _torch_bytes(state)
        if is_yaml:
            return yaml.safe_dump(_wrong_mapping(rng, yaml.safe_load(original))).encode()
        if target == R.RESULTS:
            return json.dumps(_wrong_mapping(rng, json.loads(original))).encode()
        rows = [json.loads(ln) for ln in original.decode().splitlines()]
        return "".join(json.dumps(_wrong_mapping(rng, r)) + "\n" for r in rows).encode()
    assert kind == "code"
    if is_pt:  # a torch zip file or a bare (legacy format) pickle
        evil = {"model": {}, "epoch": 0, "config_digest": "x", "payload": _Evil(marker)}
        return _torch_bytes(evil) if rng.random() < 0.5 else pickle.dumps(evil)
    if is_yaml:  # what yaml.load (not safe_load) would run
        return f"!!python/object/apply:pathlib.Path.touch [{str(marker)!r}]\n".encode()
    return pickle.dumps(_Evil(marker))


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("property")
    out = base / "run"
    sets = [a for o in tiny_overrides("difair", 1) for a in ("--set", o)]
    assert main(["train", "--quiet", "--out", str(out), *sets]) == 0
    assert main(["calibrate", str(out)]) == 0  # predict writes threshold.json on first use otherwise
    image = base / "seven.png"
    Image.fromarray(np.full((8, 8), 200, dtype=np.uint8)).save(image)
    return out, image


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _metric_rows(data: bytes) -> list[str]:
    """The lines of a metrics.jsonl that are rows of the finished run's one epoch: what a rewrite must keep."""
    rows = []
    for ln in data.decode(errors="replace").splitlines():
        try:
            row = json.loads(ln)
        except ValueError:
            continue
        if isinstance(row, dict) and type(row.get("epoch")) is int and row["epoch"] <= 1:
            rows.append(ln)
    return rows


def _is_output_cache(name: str) -> bool:
    path = Path(name)
    return path.parent.name == FEATURES_DIR and path.name.startswith("outputs-") and path.suffix == ".pt"


def _argv(command: str, run: Path, image: Path, tmp: Path) -> list[str]:
    return {
        "eval": ["eval", str(run)],
        "resume": ["train", "--quiet", "--resume", str(run)],
        "predict": ["predict", str(run), str(image)],
        "report": ["report", str(run), "--samples", "0", "--out", str(tmp / "report.html")],
    }[command]


@pytest.mark.parametrize(
    "target, kind, command, case_seed",
    _draw_cases(),
    ids=lambda v: str(v) if not isinstance(v, int) else f"s{v}",
)
def test_a_corrupt_run_file_is_refused_or_survived(
    finished_run, tmp_path, capsys, monkeypatch, target, kind, command, case_seed
):
    source, image = finished_run
    run = tmp_path / "run"
    shutil.copytree(source, run)
    monkeypatch.chdir(tmp_path)  # anything written to the working folder lands here
    marker = tmp_path / MARKER
    path = run / target
    path.write_bytes(corrupt(target, kind, path.read_bytes(), random.Random(case_seed), marker))
    before = _snapshot(run)
    capsys.readouterr()
    with warnings.catch_warnings(record=True) as caught:  # the CLI prints warnings on stderr too
        warnings.simplefilter("always")
        code = main(_argv(command, run, image, tmp_path))
    err = capsys.readouterr().err.strip()
    shown = [f"{w.category.__name__}: {w.message}" for w in caught]
    case = f"seed={SEED} case=({target}, {kind}, {command}, {case_seed}): exit {code}, stderr {err!r} {shown}"

    assert code in (0, 2), case
    assert "Traceback" not in err, case
    if code == 2:
        assert len(err.splitlines()) == 1 and err.startswith("difair: error: ") and not shown, case
        assert "rerun with --debug" not in err, case  # the generic line of an error nobody anticipated
        assert Path(target).name in err, case  # names the file that is wrong
    assert not marker.exists(), case  # no code ran
    after = _snapshot(run)
    # a report that succeeded keeps the outputs it computed (engine.feature_cache), nothing else
    cache = {n for n in set(after) - set(before) if code == 0 and command == "report" and _is_output_cache(n)}
    assert set(after) - cache == set(before), case  # nothing deleted, nothing left behind (lock, temp files)
    rewrites = REWRITES[command] | ({THRESHOLD} if target == R.CHECKPOINT and command == "predict" else set())
    for name, data in before.items():
        if name in rewrites and code == 0:
            if name == R.METRICS:
                assert set(_metric_rows(data)) <= set(after[name].decode().splitlines()), case  # rows kept
            continue
        assert after[name] == data, f"{case}: {name} changed"
