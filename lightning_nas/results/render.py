"""Regenerate every published table and figure from the shipped records.

``python -m lightning_nas.results render`` rewrites, in README.md and docs/*.md, the content of every
generated block

    <!-- generated:EXPERIMENT/TABLE -->
    ...
    <!-- /generated:EXPERIMENT/TABLE -->

with ``tables.TABLES[TABLE]`` computed from ``results/EXPERIMENT/``, or, where EXPERIMENT is a shipped
table file (``nb201_digits_729.csv``), a statistic of that table (``ground_truth.py``), or, where
EXPERIMENT is ``code``, a deterministic property of the code such as a parameter count
(``properties.py``), or, where EXPERIMENT is ``speed``, a table of a speed record
``results/speed/*.json`` (``speed.py``) (text outside the markers is never touched), and draws the
figures of every shipped experiment to ``docs/figures/EXPERIMENT_*.png`` (and the factor experiments,
``results/findings_*``, together to ``docs/figures/findings_factors.png``).
``--check`` writes nothing and exits 1 listing the blocks whose text differs (the drift test runs it).
"""
from __future__ import annotations

import re
from pathlib import Path

from lightning_nas.report.common import ReportError
from lightning_nas.results.tables import TABLES, Records

BLOCK = re.compile(r"<!-- generated:(?P<name>[\w.-]+/[\w.-]+) -->\n(?P<body>.*?)<!-- /generated:(?P=name) -->",
                   re.DOTALL)
ROOT = Path(__file__).resolve().parent.parent.parent
#: shipped experiments named so are one-factor experiments, drawn together in docs/figures/findings_factors.png
FACTOR_PREFIX = "findings_"


def documents(root: Path) -> list[Path]:
    return [p for p in [root / "README.md", *sorted((root / "docs").glob("*.md"))] if p.is_file()]


def block_text(name: str, results: Path, cache: dict[str, Records]) -> str:
    experiment, table = name.split("/", 1)
    if experiment == "code":  # parameter counts, space sizes: computed from the code (results/properties.py)
        from lightning_nas.results.properties import PROPERTIES

        if table not in PROPERTIES:
            raise ReportError(f"generated block {name!r}: no property {table!r} (properties: {', '.join(PROPERTIES)})")
        return PROPERTIES[table]().rstrip("\n") + "\n"
    if experiment.endswith(".csv"):  # statistics of a shipped ground-truth table (results/ground_truth.py)
        from lightning_nas.results.ground_truth import table_block

        return table_block(experiment, table).rstrip("\n") + "\n"
    if experiment == "speed":  # the shipped speed records (results/speed/*.json)
        from lightning_nas.results.speed import speed_block

        return speed_block(results / experiment, table).rstrip("\n") + "\n"
    if table not in TABLES:
        raise ReportError(f"generated block {name!r}: no table {table!r} (tables: {', '.join(TABLES)})")
    if experiment not in cache:
        cache[experiment] = Records.load(results / experiment)
    return TABLES[table](cache[experiment]).rstrip("\n") + "\n"


def render_text(text: str, results: Path, cache: dict[str, Records]) -> tuple[str, list[str]]:
    """``text`` with every block regenerated, and the names of the blocks that changed."""
    changed: list[str] = []

    def replace(match: re.Match) -> str:
        name = match.group("name")
        body = block_text(name, results, cache)
        if body != match.group("body"):
            changed.append(name)
        return f"<!-- generated:{name} -->\n{body}<!-- /generated:{name} -->"

    return BLOCK.sub(replace, text), changed


def render(root: Path = ROOT, results: Path | None = None, check: bool = False,
           figures: bool = True) -> list[str]:
    """Regenerate (or with ``check`` only compare) every block; returns 'FILE: NAME' of those that
    differed. Figures are drawn unless ``check`` or not ``figures``."""
    root = Path(root)
    results = Path(results) if results else root / "results"
    cache: dict[str, Records] = {}
    drift: list[str] = []
    from lightning_nas.io import atomic_write_text

    for path in documents(root):
        text = path.read_text()
        new, changed = render_text(text, results, cache)
        drift += [f"{path.relative_to(root)}: {name}" for name in changed]
        if changed and not check:
            atomic_write_text(path, new)
    if figures and not check and results.is_dir():
        from lightning_nas.results.figures import draw_all

        from lightning_nas.results.factors import factor_figure

        loaded = [cache.get(folder.name) or Records.load(folder) for folder in sorted(
            p for p in results.iterdir() if (p / "trials.jsonl").is_file() or (p / "trajectories.jsonl").is_file())]
        for records in loaded:
            draw_all(records, root / "docs" / "figures")
        # the factor experiments together, in the layout of "How to Train Your Super-Net", Figure 10
        factor_figure([r for r in loaded if r.name.startswith(FACTOR_PREFIX)],
                      root / "docs" / "figures" / "findings_factors.png")
    return drift
