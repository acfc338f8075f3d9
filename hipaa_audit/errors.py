"""The one base of every error the tool raises on purpose.

Each error carries a message a user can act on; the CLI prints it and exits 2 (bad usage or input)
or 1 (internal). Catching :class:`HipaaAuditError` catches them all; anything else that escapes
is a bug, reported by ``cli.main`` without values.
"""

from __future__ import annotations


class HipaaAuditError(Exception):
    """Base of every project exception: the message says what went wrong and what to fix."""


class ScannerSetupError(HipaaAuditError):
    """A scan that cannot start: a bad target, policy, file or credential (exit 2).

    Every scanner's plan step raises it (or a subclass) with a clear message, before anything is
    scanned.
    """
