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


# ---- data (xmhash.data: convert / info)
def _data_logging(quiet: bool) -> None:
    import logging

    log = logging.getLogger("xmhash")
    log.setLevel(logging.WARNING if quiet else logging.INFO)
    if not any(getattr(h, "_xmhash_cli", False) for h in log.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler._xmhash_cli = True
        log.addHandler(handler)


def _data_convert(args: argparse.Namespace) -> int:
    import xmhash.data

    _data_logging(args.quiet)
    progress = not (args.no_progress or args.quiet)
    data = xmhash.data.load(args.src, args.dataset, args.variant, image=args.image, splits=args.splits,
                            seed=args.seed, val_size=args.val_size, unlabeled=args.unlabeled, n_items=args.n_items,
                            image_root=args.image_root, progress=progress)
    data.save(args.dst, progress=progress)
    print(f"wrote {args.dst}: {data!r}")
    return 0


def _data_info(args: argparse.Namespace) -> int:
    import json

    import xmhash.data

    _data_logging(args.quiet or args.json)
    data = xmhash.data.load(args.path, args.dataset, args.variant, splits="none", save_splits=False,
                            verify="all" if args.verify else True)
    if args.json:
        print(json.dumps({"summary": data.summary(), "provenance": data.provenance}, indent=2, default=str))
    else:
        print(data.describe())
    return 0


def _add_data_commands(sub) -> None:
    p = sub.add_parser("data", help="convert and inspect datasets (MIRFLICKR-25K, NUS-WIDE, MS-COCO, xmhash files)")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION")
    dsub.required = True
    c = dsub.add_parser("convert", help="read a published dataset file or folder and write the xmhash HDF5 format")
    c.add_argument("src", help="dataset file or folder (any supported layout)")
    c.add_argument("dst", help="xmhash data file to write (atomically)")
    c.add_argument("--dataset", help="mirflickr25k, nus-wide-tc10, nus-wide-tc21, coco (detected if omitted)")
    c.add_argument("--variant", help="single-file, split-files, coco-lists, unified-raw (detected if omitted)")
    c.add_argument("--image", choices=["features", "raw"], help="image side when the release has both")
    c.add_argument("--splits", default="standard", help="standard (seeded), dcmh, none, or an index file path")
    c.add_argument("--seed", type=int, default=0, help="split seed (default 0)")
    c.add_argument("--val-size", type=int, help="validation items carved from the training draw (default 10%%)")
    c.add_argument("--unlabeled", choices=["keep", "drop", "error"], default="keep",
                   help="what to do with items that have no label (default keep; counted either way)")
    c.add_argument("--n-items", type=int, help="number of items, when the shapes cannot decide the orientation")
    c.add_argument("--image-root", help="image folder for MS-COCO imgList.mat")
    c.add_argument("--no-progress", action="store_true", help="no progress bars")
    c.add_argument("--quiet", action="store_true", help="warnings and errors only")
    c.set_defaults(func=_data_convert)
    i = dsub.add_parser("info", help="detect, check and describe a dataset file or folder, or an xmhash data file")
    i.add_argument("path")
    i.add_argument("--dataset")
    i.add_argument("--variant")
    i.add_argument("--verify", action="store_true", help="also check the raw images' checksum (xmhash files)")
    i.add_argument("--json", action="store_true", help="machine-readable output")
    i.add_argument("--quiet", action="store_true", help="no detection log")
    i.set_defaults(func=_data_info)


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

    _add_data_commands(sub)

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
