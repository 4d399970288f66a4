"""Display names of strategies and recipes: the one place a figure or table gets its group names.

A group is named by its recipe file's stem (``recipes/nb201_digits_strategies/darts_2nd.yaml`` ->
"DARTS (2nd order)") when the experiment varies the recipe, else by the strategy class; other factors
follow as ``key=value``.
"""
from __future__ import annotations

from pathlib import PurePosixPath

DISPLAY = {  # recipe file stem or strategy class name (lower case) -> display name
    "spos": "SPOS",
    "fairnas": "FairNAS",
    "enas": "ENAS",
    "darts": "DARTS (1st order)",
    "darts_1st": "DARTS (1st order)",
    "darts_2nd": "DARTS (2nd order)",
    "gdas": "GDAS",
    "pcdarts": "PC-DARTS",
    "random": "Random search",
    "random_sampling": "Random search",
    "randomsampling": "Random search",
    "standalone": "Stand-alone",
    "bayesnas": "BayesNAS",
    "nao": "NAO",
}
#: the order groups are listed in (others follow in the order met)
ORDER = ["SPOS", "FairNAS", "ENAS", "NAO", "DARTS (1st order)", "DARTS (2nd order)", "GDAS", "PC-DARTS", "BayesNAS",
         "Random search"]


def display_name(key: str) -> str:
    """"darts_2nd" / "DARTS" / "lightning_nas.strategies.GDAS" -> a human-readable name."""
    stem = PurePosixPath(str(key)).stem if str(key).endswith((".yaml", ".yml")) else str(key).rsplit(".", 1)[-1]
    return DISPLAY.get(stem.lower(), stem)


def _names_strategy(value: str, strategy: str) -> bool:
    """A factor value that only chooses the strategy (``lightning_nas.strategies.SPOS``)."""
    return str(value).rsplit(".", 1)[-1].replace("_", "").lower() == strategy.replace("_", "").lower()


def group_label(strategy: str, factors: dict[str, str]) -> str:
    """The strategy's display name (from a recipe-valued factor when there is one: its stem says the
    variant, darts_2nd.yaml -> "DARTS (2nd order)") and the other factors as ``key=value``."""
    recipe = [v for v in factors.values() if str(v).endswith((".yaml", ".yml"))]
    name = display_name(recipe[0]) if len(recipe) == 1 else display_name(strategy)
    rest = [f"{k}={_short(v)}" for k, v in factors.items()
            if not str(v).endswith((".yaml", ".yml")) and not _names_strategy(v, strategy)]
    return " ".join([name, *rest])


def _short(value: str) -> str:
    return str(value).rsplit(".", 1)[-1] if "." in str(value) and not _is_number(value) else str(value)


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def order_key(label: str) -> tuple[int, str]:
    head = next((name for name in ORDER if label == name or label.startswith(name + " ")), None)
    return (ORDER.index(head) if head else len(ORDER), label)
