"""Name -> factory registries for tasks and models.

A task or model registers itself with a decorator in its own module; the registry imports every
module of its home package (``tasks`` or ``model_zoo``) before the first lookup, so registration
never depends on which modules happened to be imported. Third-party packages add entries through
the entry-point groups ``internvl_bench.tasks`` and ``internvl_bench.models``: each entry point names
a module, and importing it runs its decorators.

Model names may carry an argument after a colon (``openclip:ViT-B-32``): the part before the colon
is the registered *family* and the factory receives the rest.
"""
from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

from internvl_bench.errors import BenchError, unknown_name_error

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    obj: T
    description: str
    takes_argument: bool = False
    #: what the entry is (models: "contrastive" or "chat"), checked before anything is loaded
    kind: str | None = None


class Registry(Generic[T]):
    """Holds named objects of one kind, filled by decorators in the modules of ``package``."""

    def __init__(self, kind: str, package: str, entry_point_group: str) -> None:
        self.kind = kind
        self.package = package
        self.entry_point_group = entry_point_group
        self._entries: dict[str, Entry[T]] = {}
        self._loaded = False

    def register(self, name: str, description: str = "", takes_argument: bool = False,
                 kind: str | None = None) -> Callable[[T], T]:
        """Decorator: register ``obj`` under ``name`` (description defaults to its docstring's first line)."""

        def decorate(obj: T) -> T:
            if name in self._entries and self._entries[name].obj is not obj:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            doc = description or (getattr(obj, "__doc__", None) or "").strip().split("\n")[0]
            self._entries[name] = Entry(name, obj, doc, takes_argument, kind)
            return obj

        return decorate

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        package = importlib.import_module(self.package)
        for module in pkgutil.walk_packages(package.__path__, prefix=f"{self.package}."):
            if not module.name.rsplit(".", 1)[-1].startswith("_"):
                importlib.import_module(module.name)
        for entry_point in entry_points(group=self.entry_point_group):
            entry_point.load()

    def entries(self) -> list[Entry[T]]:
        self._load()
        return [self._entries[name] for name in sorted(self._entries)]

    def names(self) -> list[str]:
        return [entry.name for entry in self.entries()]

    def resolve(self, spec: str) -> tuple[Entry[T], str | None]:
        """Return the entry for ``spec`` and the argument after ``family:`` (None without one)."""
        self._load()
        if spec in self._entries and not self._entries[spec].takes_argument:
            return self._entries[spec], None
        family, sep, argument = spec.partition(":")
        entry = self._entries.get(family)
        if entry is not None and entry.takes_argument:
            if not sep or not argument:
                raise BenchError(f"{self.kind} '{family}' needs an argument: use '{family}:NAME'")
            return entry, argument
        if entry is not None and sep:
            raise BenchError(f"{self.kind} '{family}' takes no ':' argument (got '{spec}')")
        raise unknown_name_error(self.kind, spec, self._display_names())

    def get(self, name: str) -> T:
        entry, _ = self.resolve(name)
        return entry.obj

    def _display_names(self) -> list[str]:
        return [f"{e.name}:ARG" if e.takes_argument else e.name for e in self._entries.values()]


def describe(registry: Registry[Any]) -> list[tuple[str, str]]:
    """(display name, one-line description) for every entry, for ``internvl-bench list``."""
    return [
        (f"{e.name}:ARG" if e.takes_argument else e.name, e.description) for e in registry.entries()
    ]
