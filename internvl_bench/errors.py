"""User-facing errors.

Every problem a user can fix (a missing file, a malformed line, an unknown name) is raised as a
``BenchError``: the CLI prints its message as one line and exits non-zero, without a traceback.
Messages name the file or name at fault and say what to do about it.
"""
from __future__ import annotations

import difflib
from collections.abc import Iterable


class BenchError(Exception):
    """A problem in the user's input, reported as one line by the CLI (exit status 2)."""

    exit_code = 2


def unknown_name_error(kind: str, name: str, known: Iterable[str]) -> BenchError:
    """Build the 'unknown X' error with close matches and the full list of what exists."""
    known = sorted(known)
    close = difflib.get_close_matches(name, known, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    return BenchError(f"unknown {kind} '{name}'.{hint} Known: {', '.join(known) or '(none)'}")
