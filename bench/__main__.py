"""`python -m bench [COMMAND] [options]`: run Tally's benchmarks.

Commands: `dashboard` (the dashboard query set: Tally vs hand-written DuckDB SQL vs pandas),
`data` (build the cached data only), `profile` (where Tally's time goes on the dashboard set),
`cli` (the `tally` command's start-up and a query as whole processes).
With no command, every benchmark runs (today: `dashboard`) with the options given.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

BENCHMARKS = {"dashboard": "bench.dashboard", "ingest": "bench.ingest", "rollups": "bench.rollups", "api": "bench.api"}
TOOLS = {"data": "bench.data", "profile": "bench.tally_profile", "cli": "bench.cli"}
COMMANDS = {**BENCHMARKS, **TOOLS}


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in COMMANDS:
        name, rest = argv[0], argv[1:]
        module = importlib.import_module(COMMANDS[name])
        parser = argparse.ArgumentParser(prog=f"python -m bench {name}", description=module.__doc__.splitlines()[0])
        module.add_arguments(parser)
        module.main(parser.parse_args(rest))
        return
    if argv and not argv[0].startswith("-") and argv[0] not in ("all",):
        raise SystemExit(f"unknown command {argv[0]!r} (use one of: {', '.join(COMMANDS)}, or none for all benchmarks)")
    rest = argv[1:] if argv and argv[0] == "all" else argv
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=None, help="order lines (default 10,000,000)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--reps", type=int, default=None)
    parser.add_argument("--warmup", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--json", type=Path, help="write every benchmark's numbers to this JSON file")
    args = parser.parse_args(rest)
    reports = {}
    for name, path in BENCHMARKS.items():
        module = importlib.import_module(path)
        sub = argparse.ArgumentParser()
        module.add_arguments(sub)
        options = sub.parse_args([])
        for key in ("rows", "seed", "reps", "warmup", "rounds"):
            if getattr(args, key) is not None and hasattr(options, key):
                setattr(options, key, getattr(args, key))
        reports[name] = module.main(options)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(reports, indent=2, default=str) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
