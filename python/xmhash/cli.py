"""The ``xmhash`` command line. Subcommands import what they need lazily."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence


def _demo_search(args: argparse.Namespace) -> int:
    import numpy as np

    import xmhash

    rng = np.random.default_rng(args.seed)
    db = rng.integers(0, 256, (args.n, args.bits // 8), dtype=np.uint8)
    flips = rng.integers(0, args.bits, (args.queries, 2))
    q = db[: args.queries].copy()
    bits = xmhash.unpack(q)
    rows = np.arange(args.queries)[:, None]
    bits[rows, flips] ^= True  # each query is a stored code with up to 2 bits flipped
    q = xmhash.pack(bits)
    print(f"xmhash {xmhash.__version__} | {xmhash.build_info()['isa']} | {args.n:,} random {args.bits}-bit codes")
    t0 = time.perf_counter()
    D, I = xmhash.search(q, db, k=args.k)
    t1 = time.perf_counter()
    res = xmhash.search(q, db, radius=2)
    t2 = time.perf_counter()
    found = int(sum(int(i) in set(ids.tolist()) for i, (ids, _) in enumerate(res)))
    print(f"k-NN k={args.k}: {args.queries / (t1 - t0):,.0f} queries/s; nearest of query 0: ids {I[0, :5].tolist()} "
          f"at distances {D[0, :5].tolist()}")
    print(f"radius 2: {args.queries / (t2 - t1):,.0f} queries/s; {found}/{args.queries} queries found their source code")
    return 0 if found == args.queries else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xmhash", description="Cross-modal hashing: Hamming search and training.",
                                     allow_abbrev=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("info", help="print build facts (version, CPU code path, CUDA)")
    p.set_defaults(func=lambda a: (print(__import__("json").dumps(__import__("xmhash").build_info(), indent=2)), 0)[1])

    p = sub.add_parser("demo-search", help="search random codes and report queries/s")
    p.add_argument("--n", type=int, default=1_000_000, help="database size (default 1,000,000)")
    p.add_argument("--bits", type=int, default=64, choices=[16, 32, 64, 128, 256])
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_demo_search)

    from .train.cli import add_commands as add_training_commands  # train, ablate, sweep, encode, eval

    add_training_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, TypeError, FileNotFoundError, FileExistsError) as exc:
        print(f"xmhash {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
