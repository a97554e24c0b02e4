"""CLI plugin: ``difair hardware``, what ``--fast`` computes with on this machine and why, without training."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from difair.cliutil import (
    base_config,
    dataset_help,
    flag_overrides,
    layered_config,
    method_dataset_overrides,
    method_help,
)
from difair.errors import DifairError

if TYPE_CHECKING:
    from difair.config import TrainConfig

ROWS = (  # report key, label
    ("precision", "precision"),
    ("cpu_threads", "threads"),
    ("channels_last", "channels_last"),
    ("cpu_allocator", "cpu_allocator"),
)


def hardware_config(args: argparse.Namespace) -> TrainConfig:
    """The run config the report is about, layered as ``difair train --fast`` layers it: defaults < --preset <
    --config < ``FAST_PATH`` < --set < --method, --dataset."""
    overrides = flag_overrides(True, False, args.overrides) + method_dataset_overrides(
        args.method, args.dataset
    )
    return layered_config(base_config(args.preset, args.config), overrides)


def _cmd_hardware(args: argparse.Namespace) -> int:
    from difair.data import get_dataset  # start-up time
    from difair.engine.machine import machine_report

    cfg = hardware_config(args)
    cfg.data.download = False  # a report fetches nothing: the shape of data at hand, or none
    try:
        data = get_dataset(cfg.data)
        workload, missing = (tuple(data.train_images.shape[1:]), data.num_classes), ""
    except DifairError as exc:  # the report stands without the data; only the memory-format verdict needs it
        workload, missing = None, str(exc)
    report = machine_report(cfg, workload, probe=args.probe)
    report["workload"] = {
        "method": cfg.method,
        "backbone": cfg.model.backbone,
        "dataset": cfg.data.name,
        "batch_size": cfg.batch_size,
        "input": list(workload[0]) if workload else None,
        "classes": workload[1] if workload else None,
        **({"data_missing": missing} if missing else {}),
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(format_report(report))
    return 0


def format_report(r: dict[str, Any]) -> str:
    """The report as aligned ``label  value`` lines."""
    cpus = r["cpus"]
    limit = cpus["cgroup_cpu_limit"]
    quota = f", cgroup CPU quota {limit:g}" if limit is not None else ""
    w = r["workload"]
    lines = [
        ("machine", f"{r['cpu']}; torch {r['torch']}; device {r['device']}"),
        ("cpus", f"{cpus['affinity']} in the affinity mask{quota}: {cpus['usable']} usable"),
        (
            "vector isa",
            f"{r['vector_isa']}; native bf16: {', '.join(r['native_bf16']) or 'none'}"
            + (f"; ONEDNN_MAX_CPU_ISA={r['onednn_max_cpu_isa']}" if r["onednn_max_cpu_isa"] else ""),
        ),
        (
            "workload",
            f"{w['method']} / {w['backbone']} on {w['dataset']}, batch {w['batch_size']}"
            + (f", input {'x'.join(map(str, w['input']))}, {w['classes']} classes" if w["input"] else "")
            + (f" (data not loaded: {w['data_missing']})" if "data_missing" in w else ""),
        ),
    ]
    for key, label in ROWS:
        lines.append((label, _choice_text(r[key])))
    for precision, p in r.get("peak_gflops", {}).items():
        lines.append((f"peak {precision}", f"{p['gflops']:.0f} GFLOP/s ({p['how']})"))
    width = max(len(label) for label, _ in lines)
    return "\n".join(f"{label:<{width}}  {text}" for label, text in lines)


def _choice_text(c: dict[str, Any]) -> str:
    """``VALUE  auto: why`` (``?`` where it is decided when the run starts), or ``VALUE  set explicitly``."""
    value = c.get("resolved", c["requested"])
    shown = "?" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
    why = c["why"]
    if why.startswith("auto -> "):  # "auto -> VALUE: reason", as config.yaml records it
        why = why.split(": ", 1)[1] if ": " in why else why
    prefix = "auto: " if c["requested"] == "auto" else ""
    return f"{shown:<10}  {prefix}{why}"


def register(sub: argparse._SubParsersAction) -> None:
    h = sub.add_parser(
        "hardware",
        help="what --fast computes with on this machine, and why (precision, threads, memory format, peak)",
    )
    h.add_argument("--method", help=method_help())
    h.add_argument("--dataset", help=dataset_help("the workload the memory-format probe times; "))
    h.add_argument("--preset", help="the workload of a paper preset, e.g. difair-cifar10")
    h.add_argument("--config", type=Path, help="a YAML config file over --preset")
    h.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="ask for another value, e.g. --set precision=32-true --set cpu_threads=1",
    )  # fmt: skip
    h.add_argument(
        "--probe",
        action="store_true",
        help="time the channels_last probe now when no verdict is cached (a run would at its start)",
    )
    h.add_argument("--json", action="store_true", help="the report as JSON")
    h.set_defaults(func=_cmd_hardware)
