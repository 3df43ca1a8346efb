"""``python -m benchmarks [-k PATTERN] [--repeat N] [--json PATH]``: run and report."""

from __future__ import annotations

import argparse
import fnmatch
import sys

from ._harness import REGISTRY, discover, format_table, run_one, write_json


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("-k", "--filter", default="*", help="glob over benchmark names")
    parser.add_argument("--repeat", type=int, default=15, help="timed runs of each side")
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs of each side")
    parser.add_argument("--json", default="benchmarks/results/latest.json", help="report path")
    args = parser.parse_args(argv)
    discover()
    results = []
    for name in sorted(REGISTRY):
        if fnmatch.fnmatch(name, args.filter):
            results.append(run_one(REGISTRY[name], warmup=args.warmup, repeat=args.repeat))
            print(f"  {name}: ratio {results[-1].ratio:.3f}", file=sys.stderr, flush=True)
    print(format_table(results))
    write_json(results, args.json)
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
