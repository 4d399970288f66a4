"""Name -> object registries, filled by a decorator (the pattern timm uses for models).

Recipes and command lines name spaces, networks, datasets and strategies by a short name; an
unknown name is a one-line error that lists what exists.
"""
from __future__ import annotations

from typing import Callable, Generic, Iterator, TypeVar

T = TypeVar("T")


from lightning_nas.errors import UnknownNameError  # noqa: E402  (re-exported)


class Registry(Generic[T]):
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
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
