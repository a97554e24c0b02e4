"""Helpers shared by the ``difair`` command and its plugins (``difair.bench.commands``, ``difair.viz.commands``):
the config flags, split lists and name checks, each reading the one place that owns the fact.

Building the parser must stay fast (``difair --help`` should not import torch), so the library is imported
inside the helpers that need it (function-level imports marked "start-up time"). Modules: ``help`` (help texts),
``argtypes`` (argument types, name checks), ``layering`` (how a command builds a config), ``notes`` (what a
command says around its work), ``process`` (signals, warnings and errors of the command's process); every name is importable from ``difair.cliutil``.
"""

from difair.cliutil.argtypes import (
    check_dataset_name,
    check_method_name,
    count,
    finite_float,
    parse_methods,
    parse_names,
    parse_splits,
    positive,
)
from difair.cliutil.help import (
    AUTHORS_HELP,
    FAST_HELP,
    JOBS_HELP,
    KEEP_HELP,
    LazyHelp,
    config_default,
    dataset_help,
    demo_epochs_help,
    method_help,
    split_help,
    with_default,
)
from difair.cliutil.layering import (
    add_config_flags,
    base_config,
    check_preset_flags,
    flag_overrides,
    layered_config,
    method_dataset_overrides,
    preset_note,
)
from difair.cliutil.notes import (
    evaluation_process,
    interrupted_hint,
    torch_device_type,
    unfinished_note,
    unfinished_text,
)
from difair.cliutil.process import describe_error, one_line_warnings, sigterm_as_interrupt

__all__ = [
    "AUTHORS_HELP",
    "FAST_HELP",
    "JOBS_HELP",
    "KEEP_HELP",
    "LazyHelp",
    "add_config_flags",
    "base_config",
    "check_dataset_name",
    "check_method_name",
    "check_preset_flags",
    "config_default",
    "count",
    "describe_error",
    "dataset_help",
    "demo_epochs_help",
    "evaluation_process",
    "finite_float",
    "flag_overrides",
    "interrupted_hint",
    "layered_config",
    "method_dataset_overrides",
    "method_help",
    "one_line_warnings",
    "parse_methods",
    "parse_names",
    "parse_splits",
    "positive",
    "preset_note",
    "sigterm_as_interrupt",
    "split_help",
    "torch_device_type",
    "unfinished_note",
    "unfinished_text",
    "with_default",
]
