"""The one exception type for problems a user can fix."""

from __future__ import annotations


class DifairError(Exception):
    """A problem with the user's input or environment, with a one-line message that names the fix.

    The CLI prints it as a single line on stderr and exits with code 2.
    """


class TrainingDiverged(DifairError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


def check_choice(name: str, value: object, options: tuple[str, ...]) -> None:
    """Raise ``DifairError`` naming the choices when ``value`` is not one of ``options`` (option ``name``)."""
    if value not in options:
        raise DifairError(f"unknown {name} {value!r}: choose one of {', '.join(options)}")
