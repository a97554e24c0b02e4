"""The one exception type for problems a user can fix."""

from __future__ import annotations


class DifairError(Exception):
    """A problem with the user's input or environment, with a one-line message that names the fix.

    The CLI prints it as a single line on stderr and exits with code 2.
    """


class TrainingDiverged(DifairError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


class DatasetNotFound(DifairError):
    """A dataset's files are not where the configuration says. The message names the training options that fix
    it; ``for_run`` says what to do for a trained run instead, whose options are fixed."""

    def __init__(self, message: str, what: str, run_fix: str | None = None):
        super().__init__(message)
        self.what = what  # "MNIST not found at PATH"
        self.run_fix = run_fix or (
            "put the data there, or point data.root in the run's config.yaml (not part of the run's identity) at "
            "the folder holding it"
        )

    def __reduce__(self):  # a worker process's error reaches the parent pickled
        return type(self), (self.args[0], self.what, self.run_fix)

    def for_run(self, run_dir: object) -> str:
        """The one line for a command on the trained run ``run_dir``."""
        return f"{self.what}, where {run_dir} reads it: {self.run_fix}"


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, ``timeout``, a scheduler's preemption, ``docker stop``), raised where Ctrl-C would be, so
    a run cleans up and says how to continue exactly as after Ctrl-C."""


def check_choice(name: str, value: object, options: tuple[str, ...]) -> None:
    """Raise ``DifairError`` naming the choices when ``value`` is not one of ``options`` (option ``name``)."""
    if value not in options:
        raise DifairError(f"unknown {name} {value!r}: choose one of {', '.join(options)}")
