"""User-facing errors. Each message names the file, field or option at fault and what to do.

The CLI prints these as one line (exit code 2) instead of a traceback; library users catch
:class:`AlignbenchError`.
"""
from __future__ import annotations


class AlignbenchError(Exception):
    """Base of every error alignbench raises on purpose."""


class InvalidInputError(AlignbenchError, ValueError):
    """Bad input: a corrupt file, a wrong shape, an out-of-range value, an unknown option."""


class DataUnavailableError(AlignbenchError, FileNotFoundError):
    """Data that is neither in the cache nor downloadable (offline, or the server refused)."""


class WeightsUnavailableError(AlignbenchError, FileNotFoundError):
    """Model weights that are neither in the cache nor downloadable."""


class UnknownModelError(AlignbenchError, KeyError):
    """A model id that is not in the catalog; the message suggests close matches."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""
