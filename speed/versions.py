"""Loading another version of a project module (a file from an older commit) beside the current one,
so a speed script can time both in one process (ratios measured side by side)."""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any


def load_unregistered(path: Path, module_name: str, attribute: str) -> Any:
    """``attribute`` of the module at ``path``, imported as ``module_name`` with registration switched
    off (the registries already hold the current version under the same names)."""
    from lightning_nas import registry

    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    original = registry.Registry.register
    registry.Registry.register = lambda self, name: (lambda obj: obj)
    try:
        spec.loader.exec_module(module)
    finally:
        registry.Registry.register = original
    return getattr(module, attribute)
