"""The engine's exceptions, all of them: what a user can fix, apart from what is a bug.

A `UserError` is bad input, a bad configuration or a lake in a state a run cannot use:
the command line prints its message as one line and exits 2. An `EngineError`, and
anything else that escapes a command, is a failure of the engine or of Spark: exit 1.
Every message names the file, table, column, key or value it is about.
"""
from __future__ import annotations


class UserError(Exception):
    """A problem the user can fix; the message names the file, table, column, key or value."""


class EngineError(Exception):
    """A failure of the engine itself (a bug, or an output it refuses to write)."""


# -- Bad input and configuration (exit 2) ------------------------------------------------------

class UsageError(UserError, ValueError):
    """A command line that cannot be parsed."""


class ConfigError(UserError, ValueError):
    """A configuration file that cannot be used; the message names the key."""


class VocabularyError(UserError, ValueError):
    """A vocabulary file that cannot be used; the message names the file, line and value."""


class IngestError(UserError, ValueError):
    """The extract cannot be ingested at all (a missing table or column, an unreadable file)."""


class ExtractMisread(UserError, ValueError):
    """An extract read wrongly as a whole (an encoding, a date form, a renamed column,
    drug names the vocabulary does not know): the run stops before writing anything."""


class ExtractMisreadError(IngestError, ExtractMisread):
    """The extract was read wrongly as a whole (an encoding, a date form): nothing is written."""


class CannotWrite(UserError, ValueError):
    """An output folder or lake root that cannot be created or written."""


# -- The lake's state (exit 2) -----------------------------------------------------------------

class LakeError(UserError, RuntimeError):
    """A lake operation that cannot go ahead; the message names the table."""


class LakeBusy(LakeError):
    """Another run holds the lake's lock."""


class StageError(UserError, RuntimeError):
    """A stage that cannot run (for example, its input tables were never built)."""


# -- The engine's own failures (exit 1) ----------------------------------------------------------

class LinesInputError(EngineError, ValueError):
    """Input the line builder cannot use (unsorted or badly partitioned data)."""


class LakeTableError(EngineError, ValueError):
    """A frame that does not fit its table's declaration; the message names the table and column."""


class DisclosureError(EngineError, ValueError):
    """An output that would disclose a patient; the message names the column or file."""
