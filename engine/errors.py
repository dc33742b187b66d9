"""The engine's own exceptions: each names the offending field or column and the fix."""

from __future__ import annotations


class EngineError(ValueError):
    """Base class for every input problem the engine reports.

    ``field`` names what the caller sent that is wrong (a column, a budget key), so a
    service can point its user at it; ``hint`` says how to fix it.
    """

    def __init__(self, message: str, *, field: str | None = None, hint: str | None = None):
        super().__init__(message if hint is None else f"{message} {hint}")
        self.field = field
        self.hint = hint
        self.message = message


class UnknownColumnError(EngineError):
    """A task or feature names a column the table does not have."""


class LabelError(EngineError):
    """A label column cannot serve as a task (single class, bad values, too many classes)."""


class NoFeaturesError(EngineError):
    """After preparation no usable feature column is left."""


class TooFewRowsError(EngineError):
    """Too few labelled rows to split into train, validation and test."""


class SpecError(EngineError):
    """The task spec or budget is inconsistent (duplicate names, bad ranges, ...)."""


class FeaturisationError(EngineError):
    """Raw inputs (e.g. SMILES strings) could not be turned into features."""


class MissingDependencyError(EngineError):
    """An optional dependency needed for this call is not installed."""


class Cancelled(Exception):  # noqa: N818 - reads better at call sites than CancelledError
    """Raised by a progress callback to stop training between chunks."""
