"""The project's own error types: the only exceptions ``train.py`` turns into one-line messages.

Every error a user can cause by what they wrote (a recipe key, an architecture string, a dataset
folder, a ground-truth table, a space/strategy pair that cannot work) is raised as one of these,
with a message that names the key, file or value and says what would be right. Anything else
(``ValueError`` from deep inside torch, ``KeyError``, ...) is a programming error and keeps its
traceback. Each class also derives from the builtin it refines, so ``except ValueError`` code
written against the builtins keeps working.
"""
from __future__ import annotations


class LightningNASError(Exception):
    """Base of every user-facing error; ``str(error)`` is the whole message."""


class RecipeError(LightningNASError, ValueError):
    """A recipe or command line that cannot run; the message names the key and what is expected."""


class ArchitectureError(LightningNASError, ValueError):
    """A malformed or out-of-space architecture; the message says what a valid one looks like."""


class DatasetError(LightningNASError, FileNotFoundError):
    """A dataset that is missing, corrupt or of the wrong format; the message names the file."""


class GroundTruthError(LightningNASError, LookupError):
    """A benchmark that cannot answer: missing table, malformed row (file:line), unknown key."""


class UnsupportedCombinationError(LightningNASError, ValueError):
    """A (space, strategy) pair that cannot work; the message names both and what is missing."""


class UnknownNameError(LightningNASError, LookupError):
    """A registry lookup failed; the message lists the names that do exist."""
