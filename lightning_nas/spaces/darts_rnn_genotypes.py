"""Published recurrent cells of the DARTS/ENAS space, by name, in this space's text form.

Each node is ``activation~predecessor`` (node 0 is the cell's initial state s0). Sources, checked
against the ``recurrent`` lists of DARTS' released ``rnn/genotypes.py`` (Liu et al. 2019), where
``DARTS = DARTS_V2`` is the cell of the paper's PTB result (23 M parameters, test perplexity 55.7):

- ``darts_v1``: DARTS first order (Liu et al. 2019, Table 2 "DARTS (first order)").
- ``darts_v2``: DARTS second order (Fig. 6 of the paper; the cell evaluated as "DARTS").
- ``enas``: the ENAS PTB cell as DARTS re-expressed it: 11 intermediate nodes, node 1 = tanh of
  s0, output = mean of the loose ends 2, 5, 6, 9, 10, 11 (DARTS' ``concat``), so it runs in
  ``DartsRNNSpace(num_nodes=11)`` with the network's ``output: loose_ends``.

Not included: Li & Talwalkar's random-search-with-weight-sharing cell (Random (4) Run 1, their
Fig. 2). The paper's text extraction available here does not contain the figure and its released
genotype file could not be checked, so it is left out rather than guessed; add it with
``GENOTYPES["random_ws"] = "..."`` once read off the figure.
"""
from __future__ import annotations

from lightning_nas.spaces.base import ArchitectureError
from lightning_nas.spaces.darts_rnn import DartsRNNArchitecture

GENOTYPES: dict[str, str] = {
    "darts_v1": "relu~0|relu~1|tanh~2|relu~3|relu~4|identity~1|relu~5|relu~1",
    "darts_v2": "sigmoid~0|relu~1|relu~1|identity~1|tanh~2|sigmoid~5|tanh~3|relu~5",
    "enas": "tanh~0|tanh~1|relu~1|tanh~3|tanh~3|relu~3|relu~4|relu~7|relu~8|relu~8|relu~8",
}
#: the cell output each published cell was evaluated with (``DartsRNNNetwork(output=...)``)
OUTPUTS: dict[str, str] = {"darts_v1": "mean", "darts_v2": "mean", "enas": "loose_ends"}


def genotype(name: str) -> DartsRNNArchitecture:
    """The published cell ``name`` (case-insensitive)."""
    key = name.strip().lower()
    if key not in GENOTYPES:
        raise ArchitectureError(f"unknown DARTS RNN genotype {name!r}; known: {', '.join(GENOTYPES)}")
    return DartsRNNArchitecture.from_string(GENOTYPES[key])


def loose_ends(arch: DartsRNNArchitecture) -> tuple[int, ...]:
    """Intermediate nodes (1-based) no other node takes as input: ENAS averages these."""
    used = {predecessor for _, predecessor in arch.nodes}
    return tuple(i for i in range(1, arch.num_nodes + 1) if i not in used)
