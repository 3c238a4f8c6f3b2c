"""The engine's exceptions: what a user can fix, apart from what is a bug.

A `UserError` is bad input, a bad configuration or a lake in a state a run cannot
use: the command line prints its message as one line and exits 2. Anything else
that escapes a command is a failure of the engine or of Spark: exit 1.
"""
from __future__ import annotations


class UserError(Exception):
    """A problem the user can fix; the message names the file, table, column, key or value."""


class ExtractMisread(UserError, ValueError):
    """An extract read wrongly as a whole (an encoding, a date form, a renamed column,
    drug names the vocabulary does not know): the run stops before writing anything."""
