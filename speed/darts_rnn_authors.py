"""The DARTS recurrent search step against DARTS' own code (quark0/darts, ``rnn/model_search.py``),
side by side in one process: operators, matrix products, CPU time, and the logits' agreement.

    git clone https://github.com/quark0/darts /tmp/darts      # the authors' code, not vendored here
    OMP_NUM_THREADS=1 python speed/darts_rnn_authors.py --darts /tmp/darts \\
        [--hidden 300 --batch 32 --bptt 35 --vocab 10000 --rounds 5 --threads 1] [--before OLD/darts_rnn.py]

Both networks are built with the DARTS search recipe (``recipes/darts_rnn_ptb_darts.yaml``: 8 nodes,
``none`` + four activations, one matrix per node, BatchNorm after s0 and every node, dropout 0.75 /
dropouth 0.25 / dropoutx 0.75 / dropouti 0.2, TAR 1e-3, tied embedding) and carry the same weights
(ours copied into theirs). One search step, written out the same way for both (DARTS first order,
``rnn/train_search.py`` with ``small_batch_size = batch_size``): architecture forward on one window,
NLL, backward, Adam step on alpha; then weight forward on another window, NLL + TAR, backward,
clipping at 0.25, SGD step. Hidden states start from zero every step on both sides. No Lightning on
either side (``speed/strategy_step_time.py`` measures our strategy inside a Trainer).

Operators are counted with ``strategy_step_time.kernel_counter`` (views excluded). Times are
interleaved: every round runs each side's step once, in rotating order, so machine load affects all
sides alike; the figure is the median over rounds of each side's time divided by the authors'.
``--before``: a ``lightning_nas/nn/darts_rnn.py`` of another commit, run as a third side with the
same weights (ours before a change).

Agreement: log-probabilities of both networks on the same window with the same softmax(alpha), in
evaluation mode (BatchNorm's running statistics) and in training mode without dropout (batch
statistics): the largest absolute difference is printed, and relative to the largest value (at
initialisation, evaluation mode with BatchNorm's initial running statistics lets relu/identity
nodes grow over the window, so the log-probabilities there are huge on both sides).

``--record FILE`` also writes the run into a JSON record (``results/speed/darts_rnn_authors.json``),
one entry per shape (replacing that shape's previous entry): the options, the environment (torch
build, CPU kind, commit; the record itself does not count as a change), the commit of the authors'
checkout, the load average before and after, per side the operators, matrix products and median time
ratio to the authors' (with every round's times), and the agreement. ``python -m lightning_nas.results
render`` turns it into the block ``speed/darts_rnn_authors`` of docs/benchmarks.md
(``lightning_nas.results.speed``).

The authors' code is Python 2-era PyTorch; three shims make it run on CPU with torch 2: ``.cuda()``
is the identity, ``embedded_dropout`` uses ``F.embedding`` (same row mask), and the arch weights
are built on the CPU.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "speed"))

from lightning_nas.nn.darts_rnn import DartsRNNNetwork  # noqa: E402
from lightning_nas.spaces.darts_rnn import OPERATIONS, DartsRNNSpace  # noqa: E402
from strategy_step_time import environment, kernel_counter  # noqa: E402
from versions import load_unregistered  # noqa: E402

RECIPE = dict(weight_sharing="node", batchnorm="nodes", output="mean", init_range=0.04, tie_weights=True,
              dropout=0.75, dropout_h=0.25, dropout_x=0.75, dropout_input=0.2, dropout_embedding=0.0, tar=1e-3)
DROPOUTS = ("dropout", "dropout_h", "dropout_x", "dropout_input", "dropout_embedding")
LR, CLIP, ARCH_LR, ARCH_WD, WD, TAR = 20.0, 0.25, 3e-3, 1e-3, 5e-7, 1e-3  # train_search.py defaults


def load_authors(darts: Path):
    """Import the authors' ``rnn/model_search.py`` with the CPU shims."""
    rnn = darts / "rnn"
    if not (rnn / "model_search.py").is_file():
        raise SystemExit(f"--darts {darts}: no rnn/model_search.py there (a checkout of github.com/quark0/darts)")
    sys.path.insert(0, str(rnn))
    torch.Tensor.cuda = lambda self, *args, **kwargs: self  # their code moves everything to the GPU
    import model as their_model  # noqa: E402  (the authors' module names)
    import model_search  # noqa: E402

    def embedded_dropout(embed, words, dropout=0.1, scale=None):  # theirs, without the removed _backend API
        weight = embed.weight
        if dropout:
            mask = weight.new_empty((weight.size(0), 1)).bernoulli_(1 - dropout).expand_as(weight) / (1 - dropout)
            weight = mask * weight
        return F.embedding(words, weight)

    their_model.embedded_dropout = embedded_dropout
    return model_search


def load_before(path: Path):
    """The network class of another version of its file, without registering it twice."""
    return load_unregistered(path, "darts_rnn_before", "DartsRNNNetwork")


def build(args, model_search, before_cls, dropout: bool):
    space = DartsRNNSpace(8, operations=OPERATIONS)
    options = dict(RECIPE) if dropout else {**RECIPE, **{k: 0.0 for k in DROPOUTS}}
    torch.manual_seed(0)
    ours = DartsRNNNetwork(space=space, num_classes=args.vocab, embedding_size=args.hidden, hidden_size=args.hidden,
                           seed=0, **options)
    rates = [options[k] for k in ("dropout", "dropout_h", "dropout_x", "dropout_input", "dropout_embedding")]
    theirs = model_search.RNNModelSearch(args.vocab, args.hidden, args.hidden, args.hidden, *rates)
    state = ours.state_dict()
    with torch.no_grad():
        theirs.encoder.weight.copy_(state["encoder.weight"])  # tied to their decoder
        theirs.decoder.bias.copy_(state["decoder.bias"])
        cell = theirs.rnns[0]
        cell._W0.copy_(state["cell.w0"])
        for i, w in enumerate(cell._Ws, start=1):
            w.copy_(state[f"cell.node_weights.node{i}"])
    alpha = (torch.randn(len(space.edges), len(space.operations), generator=torch.Generator().manual_seed(1)) * 1e-3)
    theirs.weights = alpha.clone().requires_grad_()
    theirs._arch_parameters = [theirs.weights]
    cell.weights = theirs.weights
    ours_alpha = alpha.clone().requires_grad_()
    sides = {"ours": (ours, ours_alpha), "authors": (theirs, theirs.weights)}
    if before_cls is not None:
        torch.manual_seed(0)
        old = before_cls(space=space, num_classes=args.vocab, embedding_size=args.hidden, hidden_size=args.hidden,
                         seed=0, **options)
        old.load_state_dict(state)
        sides["before"] = (old, alpha.clone().requires_grad_())
    return sides


def log_probs(side: str, net, alpha, x: torch.Tensor) -> torch.Tensor:
    """(B*T, V) log-probabilities, row b*T + t, from zero hidden state."""
    if side == "authors":
        out, _ = net(x.t().contiguous(), net.init_hidden(x.shape[0]))  # time-major (T, B, V)
        return out.transpose(0, 1).reshape(-1, out.shape[-1])
    return F.log_softmax(net.forward_weighted(x, {"ops": F.softmax(alpha, dim=-1)}), dim=-1)


def make_step(side: str, net, alpha, windows):
    """One first-order DARTS search step of ``side`` (module docstring)."""
    weights = [p for p in net.parameters() if p is not alpha]
    sgd = torch.optim.SGD(weights, lr=LR, weight_decay=WD)
    adam = torch.optim.Adam([alpha], lr=ARCH_LR, weight_decay=ARCH_WD)
    (xa, ya), (xw, yw) = windows

    def step() -> None:
        net.train()
        adam.zero_grad()
        F.nll_loss(log_probs(side, net, alpha, xa), ya).backward()
        adam.step()
        sgd.zero_grad()
        if side == "authors":
            out, _, raw, _ = net(xw.t().contiguous(), net.init_hidden(xw.shape[0]), return_h=True)
            logp = out.transpose(0, 1).reshape(-1, out.shape[-1])
            loss = F.nll_loss(logp, yw) + TAR * (raw[-1][1:] - raw[-1][:-1]).pow(2).mean()
        else:
            loss = F.nll_loss(log_probs(side, net, alpha, xw), yw) + net.regularisation_loss()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(weights, CLIP)
        sgd.step()

    return step


def shape_key(options: dict) -> str:
    """The record's key of one shape: ``hidden300_batch32_bptt35_vocab10000``."""
    return "_".join(f"{k}{options[k]}" for k in ("hidden", "batch", "bptt", "vocab"))


def write_record(path: Path, options: dict, authors: dict, sides: list[dict], agreement: dict,
                 load: tuple[list[float], list[float]], started: str) -> None:
    """Put this run into the record at ``path`` under its shape (the other shapes' entries stay)."""
    from lightning_nas.io import atomic_write_json

    record = json.loads(path.read_text()) if path.is_file() else {"shapes": {}}
    record["shapes"][shape_key(options)] = {
        "options": options, "environment": environment(path), "authors_code": authors, "started": started,
        "load_average": {"before": load[0], "after": load[1]}, "sides": sides, "agreement": agreement}
    record["shapes"] = dict(sorted(record["shapes"].items(), key=lambda item: (item[1]["options"]["hidden"],
                                                                               item[1]["options"]["batch"], item[0])))
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, record)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--darts", type=Path, required=True, help="a checkout of github.com/quark0/darts")
    parser.add_argument("--before", type=Path, help="another version's lightning_nas/nn/darts_rnn.py")
    parser.add_argument("--hidden", type=int, default=300)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--bptt", type=int, default=35)
    parser.add_argument("--vocab", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--record", type=Path, default=None,
                        help="also write this run into a JSON record (e.g. results/speed/darts_rnn_authors.json)")
    args = parser.parse_args()
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    load_before = [round(v, 2) for v in os.getloadavg()]
    torch.set_num_threads(args.threads)
    model_search = load_authors(args.darts)
    before_cls = load_before(args.before) if args.before else None
    gen = torch.Generator().manual_seed(2)

    def window():
        x = torch.randint(args.vocab, (args.batch, args.bptt), generator=gen)
        return x, torch.randint(args.vocab, (args.batch * args.bptt,), generator=gen)

    # agreement of the relaxed forward
    x = window()[0]
    agreement: dict[str, dict[str, dict[str, float]]] = {}
    for mode in ("eval", "train (no dropout)"):
        sides = build(args, model_search, before_cls, dropout=False)
        with torch.no_grad():
            outs = {name: log_probs(name, net.train(mode != "eval"), alpha, x) for name, (net, alpha) in sides.items()}
        scale = outs["authors"].abs().max().item()
        agreement[mode] = {name: {"max_abs_difference": (out - outs["authors"]).abs().max().item(),
                                  "max_abs_value": scale}
                           for name, out in outs.items() if name != "authors"}
        for values in agreement[mode].values():
            values["relative"] = values["max_abs_difference"] / scale
        diffs = ", ".join(f"{name} {v['max_abs_difference']:.2e} (relative to max |value| {v['relative']:.1e})"
                          for name, v in agreement[mode].items())
        print(f"log-probabilities, {mode}: max |difference| to the authors': {diffs}")

    sides = build(args, model_search, before_cls, dropout=True)
    windows = (window(), window())
    steps = {name: make_step(name, net, alpha, windows) for name, (net, alpha) in sides.items()}
    counts = {}
    for name, step in steps.items():
        step()  # warm-up
        counter = kernel_counter()
        with counter:
            step()
        counts[name] = (counter.count, counter.products)
    times: dict[str, list[float]] = {name: [] for name in steps}
    names = list(steps)
    for r in range(args.rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            start = time.perf_counter()
            steps[name]()
            times[name].append(time.perf_counter() - start)
    print(f"DARTS RNN search step (first order), hidden {args.hidden}, batch {args.batch} x bptt {args.bptt}, "
          f"vocabulary {args.vocab}, {args.threads} thread(s), {args.rounds} interleaved rounds; "
          f"{platform.processor() or platform.machine()}, torch {torch.__version__}")
    print("| side | operators / step | matrix products / step | operators / authors' | time / authors' (median of rounds) |")
    print("|---|---:|---:|---:|---:|")
    ratios = {name: statistics.median(a / b for a, b in zip(times[name], times["authors"], strict=True))
              for name in names}
    for name in names:
        print(f"| {name} | {counts[name][0]:,} | {counts[name][1]:,} | {counts[name][0] / counts['authors'][0]:.2f} | "
              f"{ratios[name]:.2f} |")
    if args.record:
        from lightning_nas.run_record import git_state

        options = {k: getattr(args, k) for k in ("hidden", "batch", "bptt", "vocab", "rounds", "threads")}
        options["before"] = str(args.before) if args.before else None
        sides_record = [{"side": name, "operators": counts[name][0], "matrix_products": counts[name][1],
                         "operators_to_authors": counts[name][0] / counts["authors"][0],
                         "median_time_to_authors": ratios[name], "times_s": times[name]} for name in names]
        authors = git_state(args.darts) if (args.darts / ".git").exists() else {"commit": None, "dirty": None}
        write_record(args.record, options, authors, sides_record, agreement,
                     (load_before, [round(v, 2) for v in os.getloadavg()]), started)


if __name__ == "__main__":
    main()
