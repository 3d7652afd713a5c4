"""User-facing error types.

Every problem with the user's input (files, config, models) is raised as a subclass of
:class:`PrecursorError`. Its message is one line that names the file (or config key)
and the problem; ``main.py`` logs that line and exits non-zero.
"""

from __future__ import annotations

from os import PathLike


class PrecursorError(Exception):
    """Base class of all documented, user-facing errors."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))  # always one line


class InputDataError(PrecursorError, ValueError):
    """A data file (time series, image, array, CSV, mappings) is missing or malformed."""

    def __init__(self, path: str | PathLike | None, problem: str) -> None:
        self.path = None if path is None else str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)


class ConfigError(PrecursorError, ValueError):
    """The configuration asks for something that does not exist or cannot work."""


class ModelError(PrecursorError, ValueError):
    """A model file or model structure cannot be used as asked."""

    def __init__(self, path: str | PathLike | None, problem: str) -> None:
        self.path = None if path is None else str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)
