"""Deterministic properties of the code, computed when the docs are rendered.

A docs block ``<!-- generated:code/NAME -->`` is filled with ``PROPERTIES[NAME]()``: parameter counts,
space sizes and cell counts that follow from the code alone (no training, no data, no clock), so a
change to a network or a space changes the docs with it and ``tests/test_published.py`` fails until
``python -m lightning_nas.results render`` is run. Networks are built on torch's ``meta`` device (no
memory is allocated, only shapes), which keeps every block below a second or two on one core.

What the papers or the benchmarks publish (the "published"/"official" columns) are constants cited
here, not computed: they are what our numbers are compared with.
"""
from __future__ import annotations

from typing import Callable

import torch


def _parameters(module: torch.nn.Module, skip: str = "") -> int:
    return sum(p.numel() for name, p in module.named_parameters() if not (skip and name.startswith(skip)))


def _int(value: int) -> str:
    return f"{value:,}"


def nb201_parameters() -> str:
    """The stand-alone NB201 network (C=16, N=5, 10 classes) of the benchmark's smallest and largest cell;
    NAS-Bench-201 (Dong & Yang 2020) lists 0.073 MB and 1.531 MB of parameters for them."""
    from lightning_nas.nn.nb201 import NB201Network
    from lightning_nas.spaces.nb201 import NB201Architecture

    lines = ["| cell (every edge) | parameters, C=16, N=5, 10 classes |", "|---|---:|"]
    with torch.device("meta"):
        for op in ("none", "nor_conv_3x3"):
            net = NB201Network(num_classes=10, C=16, N=5, arch=NB201Architecture((op,) * 6))
            lines.append(f"| `{op}` | {_int(_parameters(net))} |")
    return "\n".join(lines)


#: the benchmark's own counts (``trainable_parameters``): its README's query output of the
#: Inception-like cell, and the record of row ``00005c14...`` in ``nasbench_only108.tfrecord``
NB101_OFFICIAL_PARAMETERS = {"inception": 2_694_282, "official": 8_555_530}


def nb101_cells() -> dict:
    """The cells of ``docs/nb101.md``'s parameter table (those of ``tests/test_nb101.py``)."""
    from lightning_nas.spaces.nb101 import NB101Cell

    conv1, conv3, pool = "conv1x1-bn-relu", "conv3x3-bn-relu", "maxpool3x3"
    return {
        "input -> output": NB101Cell(((0, 1), (0, 0)), ("input", "output")),
        "input -> conv3x3 -> output": NB101Cell(((0, 1, 0), (0, 0, 1), (0, 0, 0)), ("input", conv3, "output")),
        "inception": NB101Cell.from_parents([[0], [0], [0], [3], [0], [1, 2, 4, 5]], [conv1, conv3, conv3, conv3, pool]),
        "official": NB101Cell(((0, 1, 0, 0, 1, 1, 0), (0, 0, 1, 0, 0, 0, 0), (0, 0, 0, 1, 0, 0, 1),
                               (0, 0, 0, 0, 0, 1, 0), (0, 0, 0, 0, 0, 1, 0), (0, 0, 0, 0, 0, 0, 1), (0,) * 7),
                              ("input", conv3, pool, conv3, conv3, conv1, "output")),
    }


def nb101_parameters() -> str:
    from lightning_nas.nn.nb101 import NB101Network
    from lightning_nas.spaces.nb101 import NB101Space

    label = {"input -> output": "input -> output (derived by hand in the test)",
             "input -> conv3x3 -> output": "input -> conv3x3 -> output (derived by hand in the test)",
             "inception": "Inception-like cell of the benchmark README",
             "official": "official row `00005c14...`"}
    lines = ["| cell | ours | official |", "|---|---:|---:|"]
    with torch.device("meta"):
        for key, cell in nb101_cells().items():
            ours = _parameters(NB101Network(NB101Space(), arch=cell))
            official = NB101_OFFICIAL_PARAMETERS.get(key)
            lines.append(f"| {label[key]} | {_int(ours)} | {_int(official) if official else '-'} |")
    return "\n".join(lines)


#: Yu et al. 2020, Table 6: unique NB101 cells with at most n vertices (as printed); n = 7 is the
#: benchmark's 423,624 (Ying et al. 2019, Sec. 2.2)
NB101_PUBLISHED_UNIQUE = {4: "91", 5: "2.5K", 6: "64K", 7: "423K (Ying et al.: 423,624)"}


def nb101_unique_cells() -> str:
    """One cell per graph hash among all cells with at most n vertices, for the n cheap to enumerate at
    render time; n = 6 and 7 take minutes (``enumerate_unique_cells(n)``) and are left to the command."""
    from lightning_nas.spaces.nb101 import enumerate_unique_cells

    lines = ["| n (vertices, at most) | unique cells (ours, fast key) | published |", "|---|---:|---:|"]
    for n in (4, 5):
        lines.append(f"| {n} | {_int(sum(1 for _ in enumerate_unique_cells(n, official_hash=False)))} | "
                     f"{NB101_PUBLISHED_UNIQUE[n]} |")
    for n in (6, 7):
        lines.append(f"| {n} | not counted at render time | {NB101_PUBLISHED_UNIQUE[n]} |")
    return "\n".join(lines)


def nb101_space_sizes() -> str:
    """``NB101Space(n).size``: valid decided n-vertex cells (``VALID_EDGE_PATTERNS[n]`` x 3^(n-2))."""
    from lightning_nas.spaces.nb101 import VALID_EDGE_PATTERNS, NB101Space

    lines = ["| n | valid edge patterns | operations per intermediate vertex | size |", "|---|---:|---:|---:|"]
    for n in sorted(VALID_EDGE_PATTERNS):
        space = NB101Space(num_vertices=n)
        lines.append(f"| {n} | {_int(VALID_EDGE_PATTERNS[n])} | {len(space.operations)} | {_int(space.size)} |")
    return "\n".join(lines)


def nb1shot1_counts() -> str:
    """The counts of ``NB1Shot1Space.count`` beside Table 1 of Zela et al. (2020) (``PUBLISHED_COUNTS``);
    the loose-end-free combinations and their hashes are enumerated for spaces 1 and 2 only (space 3
    has 1.3 million combinations)."""
    from lightning_nas.spaces.nb1shot1 import PUBLISHED_COUNTS, NB1Shot1Space

    lines = ["| space | combinations | with loose ends (ours / Table 1) | w/o loose ends (ours / Table 1) | "
             "loose-end-free combinations | their distinct hashes |", "|---|---:|---:|---:|---:|---:|"]
    for s in (1, 2, 3):
        space = NB1Shot1Space(s)
        with_loose, without = PUBLISHED_COUNTS[s]
        if s < 3:
            counts = space.count()
            free, hashes = _int(counts["combinations_without_loose_ends"]), _int(counts["unique_cells_without_loose_ends"])
        else:
            free = hashes = "-"
        lines.append(f"| {s} | {_int(space.size)} | {_int(space.count_with_loose_ends())} / {_int(with_loose)} | "
                     f"{_int(space.count_without_loose_ends())} / {_int(without)} | {free} | {hashes} |")
    return "\n".join(lines)


def nb1shot1_parameters() -> str:
    """The one-shot network of each space in both macros (C=16, 3 stacks of 3 cells)."""
    from lightning_nas.nn.nb1shot1 import NB1Shot1Network
    from lightning_nas.spaces.nb1shot1 import NB1Shot1Space

    lines = ["| macro | space 1 | space 2 | space 3 |", "|---|---:|---:|---:|"]
    with torch.device("meta"):
        for macro in ("oneshot1", "nb101"):
            counts = [_parameters(NB1Shot1Network(NB1Shot1Space(s), macro=macro)) for s in (1, 2, 3)]
            lines.append(f"| `{macro}` | " + " | ".join(_int(c) for c in counts) + " |")
    return "\n".join(lines)


def darts_cnn_parameters() -> str:
    """Published cells in DARTS' evaluation network (C=36, 20 cells), with and without the auxiliary
    head (DARTS' code leaves it out of "param size")."""
    from lightning_nas.nn.darts_cnn import DartsCNNNetwork
    from lightning_nas.spaces.darts_cnn import PUBLISHED, DartsCNNSpace

    names = {"DARTS_V2": "DARTS V2", "DARTS_V1": "DARTS V1", "ENAS": "ENAS", "NAO": "NAO (NAO-WS cell)",
             "AmoebaNet": "AmoebaNet-A", "NASNet": "NASNet-A"}
    lines = ["| genotype | without auxiliary head | with auxiliary head |", "|---|---:|---:|"]
    head = (0, 0)
    with torch.device("meta"):
        for key, label in names.items():
            net = DartsCNNNetwork(DartsCNNSpace(), arch=PUBLISHED[key], C=36, layers=20, auxiliary=True,
                                  affine=True, pool_bn=False)
            total, without = _parameters(net), _parameters(net, skip="auxiliary_head.")
            if key == "DARTS_V2":
                head = (total - without, net.auxiliary_head.features[0].in_channels)
            lines.append(f"| {label} | {_int(without)} | {_int(total)} |")
    lines.append(f"| DARTS V2's auxiliary head alone ({head[1]} input channels) | - | {_int(head[0])} |")
    return "\n".join(lines)


def darts_rnn_parameters() -> str:
    """DARTS V2's PTB language model (850 units, tied softmax, 10k words); DARTS reports 23 M (Table 2)."""
    from lightning_nas.nn.darts_rnn import DartsRNNNetwork
    from lightning_nas.spaces.darts_rnn import DartsRNNSpace
    from lightning_nas.spaces.darts_rnn_genotypes import genotype

    with torch.device("meta"):
        net = DartsRNNNetwork(space=DartsRNNSpace(), num_classes=10000, embedding_size=850, hidden_size=850,
                              arch=genotype("darts_v2"), seed=0)
    parts: dict[str, int] = {}
    for name, p in net.named_parameters():
        parts[name.split(".")[0]] = parts.get(name.split(".")[0], 0) + p.numel()
    lines = ["| module | parameters |", "|---|---:|"]
    lines += [f"| `{name}` | {_int(count)} |" for name, count in parts.items()]
    lines.append(f"| total | {_int(_parameters(net))} |")
    return "\n".join(lines)


PROPERTIES: dict[str, Callable[[], str]] = {
    "nb201_parameters": nb201_parameters,
    "nb101_parameters": nb101_parameters,
    "nb101_unique_cells": nb101_unique_cells,
    "nb101_space_sizes": nb101_space_sizes,
    "nb1shot1_counts": nb1shot1_counts,
    "nb1shot1_parameters": nb1shot1_parameters,
    "darts_cnn_parameters": darts_cnn_parameters,
    "darts_rnn_parameters": darts_rnn_parameters,
}
