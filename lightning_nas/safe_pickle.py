"""Reading pickled files without running their code: an allow-list unpickler.

The files researchers download for NAS (CIFAR python batches, ImageNet16-120, NAS-Bench-201's
``.pth``, NATS-Bench's per-architecture pickles) are pickles. ``pickle.load`` calls whatever
global a file names, so a tampered download runs arbitrary code. Here a file may name only the
globals its format needs; anything else is refused with one line naming the file and the global.

Numpy 2 moved ``numpy.core`` to ``numpy._core``; files pickled under numpy 1 (all of the above)
name the old modules, which are mapped onto the new ones before the allow-list is consulted.
"""
from __future__ import annotations

import _compat_pickle
import pickle
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from lightning_nas.errors import DatasetError

#: numpy 1 module names as they appear in old pickles -> where numpy 2 keeps them
NUMPY1_MODULES = {
    "numpy.core.multiarray": "numpy._core.multiarray",
    "numpy.core.numeric": "numpy._core.numeric",
    "numpy.core._multiarray_umath": "numpy._core._multiarray_umath",
}

#: what a pickled numpy array or scalar needs (``ndarray.__reduce__`` and ``numpy.generic.__reduce__``)
NUMPY_GLOBALS = frozenset({
    "numpy._core.multiarray._reconstruct",
    "numpy._core.multiarray.scalar",
    "numpy.ndarray",
    "numpy.dtype",
})

#: plain containers that pickles of dictionaries and records use
CONTAINER_GLOBALS = frozenset({
    "collections.OrderedDict",
    "collections.defaultdict",
    "builtins.set",
    "builtins.frozenset",
    "builtins.slice",
    "builtins.complex",
    "builtins.bytearray",
    "_codecs.encode",   # how Python 3 pickles bytes under protocol 2 (numpy arrays' buffers)
})


class UnsafePickleError(DatasetError):
    """A pickle names a global outside the allow-list of its format."""


def canonical_global(module: str, name: str) -> str:
    """``module.name`` with Python 2 names (protocol <= 2 pickles) mapped to Python 3's, as the
    standard unpickler's ``fix_imports`` does, and numpy 1 module names mapped to numpy 2's."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        module, name = _compat_pickle.NAME_MAPPING[(module, name)]
    module = _compat_pickle.IMPORT_MAPPING.get(module, module)
    return f"{NUMPY1_MODULES.get(module, module)}.{name}"


class AllowListUnpickler(pickle.Unpickler):
    """An unpickler whose ``find_class`` resolves only allow-listed globals.

    ``allowed`` holds dotted names (after the numpy 1 -> 2 mapping). A refused global raises
    :class:`UnsafePickleError` before anything from the file is called.
    """

    def __init__(self, file, *, allowed: Iterable[str], source: str = "<stream>", **kwargs: Any) -> None:
        super().__init__(file, **kwargs)
        self.allowed = frozenset(allowed)
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        dotted = canonical_global(module, name)
        if dotted not in self.allowed:
            raise UnsafePickleError(
                f"{self.source}: refused to load: it names the global {module}.{name}, which this file format "
                f"does not need (allowed: {', '.join(sorted(self.allowed))}); the file may be tampered with or "
                "not the file this option expects")
        target_module, _, target_name = dotted.rpartition(".")
        return super().find_class(target_module, target_name)


def load(path: str | Path, allowed: Iterable[str] = NUMPY_GLOBALS | CONTAINER_GLOBALS, *,
         encoding: str = "ASCII", what: str = "pickle") -> Any:
    """Unpickle ``path`` allowing only ``allowed`` globals.

    ``encoding`` is passed to the unpickler (``"bytes"`` or ``"latin1"`` for Python 2 pickles such as
    the CIFAR batches). A truncated or malformed file is one :class:`DatasetError` naming it and
    ``what`` it should have been.
    """
    path = Path(path)
    try:
        with path.open("rb") as handle:
            return AllowListUnpickler(handle, allowed=allowed, source=str(path), encoding=encoding).load()
    except UnsafePickleError:
        raise
    except FileNotFoundError:
        raise DatasetError(f"{path}: no such file (expected a {what})") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, AttributeError, ImportError,
            OverflowError, MemoryError) as error:  # what a damaged or foreign pickle can raise
        raise DatasetError(f"{path} is not a readable {what} ({type(error).__name__}: {error})") from None
