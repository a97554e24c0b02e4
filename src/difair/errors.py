"""The one exception type for problems a user can fix."""

from __future__ import annotations


class DifairError(Exception):
    """A problem with the user's input or environment, with a one-line message that names the fix.

    The CLI prints it as a single line on stderr and exits with code 2.
    """


class TrainingDiverged(DifairError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""
