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
import struct
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import IO, Any, Optional

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
        target_module, _, target_name = checked_global(self.allowed, self.source, module, name).rpartition(".")
        return super().find_class(target_module, target_name)


def checked_global(allowed: frozenset[str], source: str, module: str, name: str) -> str:
    """The canonical dotted name of ``module.name`` if ``allowed``; else the one-line refusal naming it."""
    dotted = canonical_global(module, name)
    if dotted not in allowed:
        raise UnsafePickleError(
            f"{source}: refused to load: it names the global {module}.{name}, which this file format "
            f"does not need (allowed: {', '.join(sorted(allowed))}); the file may be tampered with or "
            "not the file this option expects")
    return dotted


def load(path: str | Path, allowed: Iterable[str] = NUMPY_GLOBALS | CONTAINER_GLOBALS, *,
         encoding: str = "ASCII", what: str = "pickle") -> Any:
    """Unpickle ``path`` allowing only ``allowed`` globals.

    ``encoding`` is passed to the unpickler (``"bytes"`` or ``"latin1"`` for Python 2 pickles such as
    the CIFAR batches). A truncated or malformed file is one :class:`DatasetError` naming it and
    ``what`` it should have been.
    """
    path = Path(path)
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        raise DatasetError(f"{path}: no such file (expected a {what})") from None
    with handle:
        return load_stream(handle, allowed, source=str(path), encoding=encoding, what=what)


#: what a damaged or foreign pickle (or its compressed / zipped container) can raise while loading
DAMAGE = (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, AttributeError, ImportError,
          OverflowError, MemoryError, KeyError, OSError, struct.error)


def load_stream(handle: IO[bytes], allowed: Iterable[str] = NUMPY_GLOBALS | CONTAINER_GLOBALS, *, source: str,
                encoding: str = "ASCII", what: str = "pickle", unpickler: Optional[type] = None,
                **kwargs: Any) -> Any:
    """``load`` for an open binary stream (a bz2 file, a member of a zip archive); ``source`` names it in
    errors. ``unpickler`` (default :class:`AllowListUnpickler`) may be a :class:`StreamingUnpickler`
    subclass; ``kwargs`` go to it."""
    cls = unpickler or AllowListUnpickler
    try:
        return cls(handle, allowed=allowed, source=source, encoding=encoding, **kwargs).load()
    except DatasetError:  # refusals (UnsafePickleError, ForgottenObjectError) are already one line
        raise
    except DAMAGE as error:
        raise DatasetError(f"{source} is not a readable {what} ({type(error).__name__}: {error})") from None


class ForgottenObjectError(DatasetError):
    """A streamed pickle refers back to an object its reader already dropped (see ``StreamingUnpickler``)."""


class StreamingUnpickler(pickle._Unpickler):  # type: ignore[name-defined]  # the pure-Python unpickler
    """The allow-list unpickler in pure Python, for files too large to hold unpickled at once.

    The C unpickler keeps every object of a file alive until the end (its memo references them, so
    that later opcodes may refer back). This one lets a reader consume a record as soon as it is
    complete: after each ``SETITEM``/``SETITEMS`` it calls :meth:`filled` with the dictionary just
    filled; the reader extracts what it needs, empties the dictionary in place and calls
    :meth:`forget_since` to drop the memo entries created since the record began. A later reference
    to a dropped entry is one :class:`ForgottenObjectError` line (never a wrong value).

    ``substitutes`` maps allowed dotted names to stand-ins (e.g. tensor rebuilders, when the reader
    never needs the tensors); persistent ids (torch storages) load as ``None``.
    """

    dispatch = dict(pickle._Unpickler.dispatch)  # type: ignore[attr-defined]

    def __init__(self, file, *, allowed: Iterable[str], source: str = "<stream>",
                 substitutes: Optional[Mapping[str, Any]] = None, **kwargs: Any) -> None:
        super().__init__(file, **kwargs)
        self.substitutes = dict(substitutes or {})
        self.allowed = frozenset(allowed) | frozenset(self.substitutes)
        self.source = source
        self.next_memo = 0                     # the next memo index (MEMOIZE), whatever was dropped
        self.dict_memo: dict[int, int] = {}    # id(dict) -> its memo index
        self.forgotten: list[tuple[int, int]] = []  # [start, end) ranges forget_since went over (one per record)

    def find_class(self, module: str, name: str) -> Any:
        dotted = canonical_global(module, name)
        if dotted in self.substitutes:
            return self.substitutes[dotted]
        target_module, _, target_name = checked_global(self.allowed, self.source, module, name).rpartition(".")
        return super().find_class(target_module, target_name)

    def persistent_load(self, pid: Any) -> Any:
        return None

    def filled(self, mapping: dict) -> None:
        """Called with each dictionary after items were set into it; the default keeps everything."""

    def memo_index(self, obj: dict) -> Optional[int]:
        """The memo index a dictionary was stored under (None: never memoised)."""
        return self.dict_memo.get(id(obj))

    def forget_since(self, start: int, keep: Callable[[Any], bool]) -> None:
        """Drop memo entries ``start``.. whose value ``keep`` rejects (a record that was consumed)."""
        memo = self.memo
        for index in range(start, self.next_memo):
            value = memo.get(index)
            if value is not None and not keep(value):
                del memo[index]
                if type(value) is dict:
                    self.dict_memo.pop(id(value), None)
        self.forgotten.append((start, self.next_memo))

    def _put(self, index: int) -> None:
        value = self.stack[-1]
        self.memo[index] = value
        if type(value) is dict:
            self.dict_memo[id(value)] = index
        if index >= self.next_memo:
            self.next_memo = index + 1

    def _get(self, index: int) -> None:
        try:
            self.append(self.memo[index])
        except KeyError:
            if any(start <= index < end for start, end in self.forgotten):
                raise ForgottenObjectError(
                    f"{self.source}: object {index} is shared between records, which streaming cannot read; "
                    "load this file without streaming (stream: false)") from None
            raise pickle.UnpicklingError(f"memo value not found at index {index}") from None

    def _load_put(self):
        self._put(int(self.readline()[:-1]))

    def _load_binput(self):
        self._put(self.read(1)[0])

    def _load_long_binput(self):
        self._put(struct.unpack("<I", self.read(4))[0])

    def _load_memoize(self):
        self._put(self.next_memo)

    def _load_get(self):
        self._get(int(self.readline()[:-1]))

    def _load_binget(self):
        self._get(self.read(1)[0])

    def _load_long_binget(self):
        self._get(struct.unpack("<I", self.read(4))[0])

    def _load_setitem(self):
        value, key = self.stack.pop(), self.stack.pop()
        mapping = self.stack[-1]
        mapping[key] = value
        if type(mapping) is dict:
            self.filled(mapping)

    def _load_setitems(self):
        items = self.pop_mark()
        mapping = self.stack[-1]
        for i in range(0, len(items), 2):
            mapping[items[i]] = items[i + 1]
        if type(mapping) is dict:
            self.filled(mapping)

    for _code, _method in ((pickle.PUT, _load_put), (pickle.BINPUT, _load_binput),
                           (pickle.LONG_BINPUT, _load_long_binput), (pickle.MEMOIZE, _load_memoize),
                           (pickle.GET, _load_get), (pickle.BINGET, _load_binget),
                           (pickle.LONG_BINGET, _load_long_binget), (pickle.SETITEM, _load_setitem),
                           (pickle.SETITEMS, _load_setitems)):
        dispatch[_code[0]] = _method
    del _code, _method
