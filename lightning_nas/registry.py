"""Name -> object registries, filled by a decorator (the pattern timm uses for models).

Recipes and command lines name spaces, networks, datasets and strategies by a short name; an
unknown name is a one-line error that lists what exists. Registration is one step: the packages
that hold registered classes (``spaces``, ``nn``, ``strategies``) import every module of their
own (``import_modules``), so a new file with its decorator is registered - and covered by the
registry-driven tests - without an import line anywhere.

A registered class is checked when it is registered: a class with a ``check_contract`` classmethod
(``SearchSpace``, ``SuperNet``, ``SearchStrategy`` define one) raises ``ContractError`` at import,
naming the class and the member it lacks, instead of failing at the first use of that member.
Abstract intermediates (``BilevelStrategy``) are never registered, so they are not checked.
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import Callable, Generic, Iterable, Iterator, TypeVar

from lightning_nas.errors import UnknownNameError  # noqa: F401  (re-exported)

T = TypeVar("T")


class ContractError(TypeError):
    """A registered class does not meet the contract of its base class (a programming error: it
    keeps its traceback, and it is raised when the module defining the class is imported)."""


class Registry(Generic[T]):
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            check = getattr(obj, "check_contract", None)
            if callable(check):
                check()  # ContractError naming the class and what it lacks
            self._entries[name] = obj
            return obj

        return decorator

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries)) or "none"
            raise UnknownNameError(f"unknown {self.kind} {name!r}; known: {known}") from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def values(self) -> list[T]:
        """The registered objects, in name order."""
        return [self._entries[name] for name in sorted(self._entries)]

    def name_of(self, obj: object) -> str | None:
        """The name ``obj`` is registered under; None for an object outside this registry."""
        return next((name for name, entry in self._entries.items() if entry is obj), None)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._entries))


#: Search spaces by short name; a space module registers its class with ``@SPACES.register("name")``.
SPACES: Registry = Registry("search space")
#: Each space's network (super-net and stand-alone), registered under the space's name.
NETWORKS: Registry = Registry("network")
#: Search strategies by short name (recipes also name them by class path).
STRATEGIES: Registry = Registry("search strategy")


def import_modules(package: str, path: Iterable[str]) -> None:
    """Import every public module of ``package`` (its ``__path__``), so that their registration
    decorators run when the package is imported. Modules whose name starts with ``_`` are left out."""
    for module in pkgutil.iter_modules(list(path)):
        if not module.name.startswith("_"):
            importlib.import_module(f"{package}.{module.name}")
