"""``python -m lightning_nas.results extract EXPERIMENT_DIR`` / ``rescore RESULTS_DIR --previous T`` / ``render``."""
from __future__ import annotations

import argparse
import sys
import time
from typing import Optional

from lightning_nas.report.common import ReportError


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lightning_nas.results", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    extract = commands.add_parser("extract", help="write results/NAME/{experiment.json,trials.jsonl}")
    extract.add_argument("experiment_dir", metavar="EXPERIMENT_DIR")
    extract.add_argument("--name", default=None, help="the results folder's name (default: the directory's name)")
    extract.add_argument("--out", default="results", help="where results folders live (default: results)")
    extract.add_argument("--host-cpu", action="store_true",
                         help="runs whose run.json has no CPU kind ran on this machine: record this machine's")
    extract.add_argument("--append", action="store_true",
                         help="add these trials to those already in OUT/NAME (more seeds of the same experiment)")
    rescore = commands.add_parser("rescore", help="score RESULTS_DIR's records anew with a new version of their table")
    rescore.add_argument("results_dir", metavar="RESULTS_DIR")
    rescore.add_argument("--previous", required=True,
                         help="the table the records were scored against (checked by its sha256)")
    rescore.add_argument("--table", default=None,
                         help="the new table (default: the shipped table of the name the records give)")
    render = commands.add_parser("render", help="regenerate the docs' generated blocks and figures")
    render.add_argument("--root", default=None, help="repository root (default: this checkout)")
    render.add_argument("--results", default=None, help="results folder (default: ROOT/results)")
    render.add_argument("--check", action="store_true", help="write nothing; exit 1 when a block differs")
    render.add_argument("--no-figures", action="store_true", help="tables only")
    args = parser.parse_args(argv)
    try:
        if args.command == "extract":
            from lightning_nas.results.extract import extract as run_extract

            folder = run_extract(args.experiment_dir, args.name, args.out, host_cpu=args.host_cpu,
                                 append=args.append)
            print(f"[lightning_nas] records written to {folder}")
            return 0
        if args.command == "rescore":
            from lightning_nas.results.rescore import rescore as run_rescore

            benchmark = run_rescore(args.results_dir, args.previous, args.table)
            print(f"[lightning_nas] {args.results_dir} re-scored against {benchmark['table']} "
                  f"(sha256 {benchmark['sha256'][:12]})")
            return 0
        from lightning_nas.results.render import ROOT
        from lightning_nas.results.render import render as run_render

        start = time.perf_counter()
        drift = run_render(args.root or ROOT, args.results, check=args.check, figures=not args.no_figures)
    except ReportError as error:
        print(f"results: error: {error}", file=sys.stderr)
        return 2
    if args.check:
        for line in drift:
            print(f"drift: {line}")
        return 1 if drift else 0
    print(f"[lightning_nas] {len(drift)} block(s) regenerated in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
