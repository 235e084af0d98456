"""``xmhash train | encode | eval | ablate | sweep``: argument parsing here (no torch import), work in the
training modules, imported when a command runs."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

__all__ = ["add_commands"]

log = logging.getLogger("xmhash")


def _csv(kind):
    def parse(text: str):
        try:
            return [kind(v) for v in text.split(",") if v.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list, got {text!r}") from None
    return parse


def _common(p: argparse.ArgumentParser, *, methods: bool = True) -> None:
    if methods:
        p.add_argument("--method", type=_csv(str), default=None,
                       help="ssah, dcmh or both comma-separated (default for train: ssah,dcmh)")
    p.add_argument("--data", default=None, help="dataset file/folder (xmhash.data.load) or 'synthetic' (default)")
    p.add_argument("--bits", type=_csv(int), default=None, help="code lengths, e.g. 16,32,64")
    p.add_argument("--out", default=None, help="output folder (one sub-folder per run, plus report/)")
    p.add_argument("--config", default=None, help="a TOML config (see config.toml in any run folder)")
    p.add_argument("--preset", default=None, choices=["demo", "published"],
                   help="defaults before --config/--set: 'demo' (fast, the default on synthetic data) or "
                        "'published' (the published schedule and network sizes; the default otherwise)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config key, e.g. --set ssah.alpha=0.1 --set epochs=5 (repeatable)")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--threads", type=int, default=None, help="torch threads (0: torch's default)")
    p.add_argument("--device", default=None, help="cpu (default) or cuda")
    p.add_argument("--pairwise-backend", choices=["native", "torch"], default=None,
                   help="pairwise loss: xmhash's fused native kernel (default) or the pure-PyTorch reference")
    p.add_argument("--resume", action="store_true", help="continue interrupted runs; finished runs are kept")
    p.add_argument("--quiet", action="store_true", help="no progress bars, warnings only")


def add_commands(sub) -> None:
    p = sub.add_parser("train", help="train SSAH / DCMH and write codes, index, checkpoints and a report",
                       description="Train cross-modal hashing models; one run per (method, bits). Prints the mAP "
                                   "table and writes OUT/report/ (summary.md, metrics.json, PNG figures).")
    _common(p)
    p.add_argument("--variant", choices=["paper", "published-code"], default=None)
    p.add_argument("--ablation", choices=["none", "ssah-1", "ssah-2", "ssah-3"], default=None)
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("ablate", help="SSAH and its ablations SSAH-1/2/3 (and the published-code variant)")
    _common(p, methods=False)
    p.add_argument("--no-published", action="store_true", help="skip the published-code variant")
    p.set_defaults(func=_cmd_ablate)

    p = sub.add_parser("sweep", help="sensitivity: train once per value of a config key",
                       description="e.g. xmhash sweep --param alpha=0.1,1,10 --method ssah --bits 32")
    _common(p)
    p.add_argument("--param", required=True, metavar="KEY=V1,V2,...", help="config key and its values")
    p.set_defaults(func=_cmd_sweep)

    p = sub.add_parser("encode", help="packed codes of a dataset split with a trained checkpoint")
    p.add_argument("checkpoint", help="best.pt / last.pt of a run")
    p.add_argument("--data", default=None, help="dataset (default: the one the run was trained on)")
    p.add_argument("--split", default="retrieval", help="split to encode (default retrieval; 'all' for every item)")
    p.add_argument("--modality", choices=["image", "text", "both"], default="both")
    p.add_argument("--out", required=True, help="output folder: <split>_<modality>.npy (+ .xmhidx index)")
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_encode)

    p = sub.add_parser("eval", help="re-evaluate the runs under a folder and rewrite its report")
    p.add_argument("runs", help="a run folder, or the --out folder of xmhash train/ablate/sweep")
    p.add_argument("--data", default=None, help="dataset (default: the one each run was trained on)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_eval)


# ------------------------------------------------------------------------------------------ helpers
def _setup(args) -> None:
    from ..cli import _data_logging  # the data commands' handler: one per process

    _data_logging(args.quiet)


def _base_config(args, *, method: str | None = None, bits: int | None = None, extra: dict | None = None):
    from .config import load_config

    data = args.data or "synthetic"
    preset = args.preset or ("demo" if data == "synthetic" else "published")
    overrides = {"data.path": data}
    for key, flag in (("epochs", args.epochs), ("seed", args.seed), ("threads", args.threads),
                      ("device", args.device), ("pairwise_backend", args.pairwise_backend),
                      ("variant", getattr(args, "variant", None)), ("ablation", getattr(args, "ablation", None))):
        if flag is not None:
            overrides[key] = flag
    if method is not None:
        overrides["method"] = method
    if bits is not None:
        overrides["bits"] = bits
    for item in args.overrides:
        if "=" not in item:
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        overrides[k.strip()] = v.strip()
    overrides.update(extra or {})
    return load_config(args.config, overrides, preset=preset), preset


def _dataset(cfg, cache: dict):
    """The dataset of ``cfg.data``, loaded (or generated) once for consecutive runs on the same data; ``cache`` keeps
    the latest one only."""
    from .dataset import load_dataset

    key = json.dumps(cfg.to_dict()["data"], sort_keys=True)
    if key not in cache:
        cache.clear()
        cache[key] = load_dataset(cfg.data)
    return cache[key]


def _run_all(args, plans: list[tuple[str, dict]], out: Path, *, label_of=None):
    """Train every (sub-folder, overrides) plan under ``out``; returns the metrics of each run."""
    from .errors import TrainingDiverged, TrainingInterrupted
    from .loop import fit

    runs, datasets = [], {}
    for sub, extra in plans:
        cfg, preset = _base_config(args, extra=extra)
        run_dir = out / sub / cfg.run_name if sub else out / cfg.run_name
        cfg = cfg.replace(out=str(run_dir))
        done = run_dir / "metrics.json"
        if args.resume and done.is_file():
            log.info("%s: finished earlier, kept", run_dir)
            m = json.loads(done.read_text())
        else:
            log.info("training %s (%s, %d bits, preset %s) -> %s", cfg.run_name, cfg.method, cfg.bits, preset,
                     run_dir)
            resume = args.resume and (run_dir / "last.pt").is_file()
            data = _dataset(cfg, datasets)
            try:
                result = fit(cfg, resume=resume, progress=not args.quiet and sys.stderr.isatty(), data=data)
            except TrainingInterrupted as exc:
                print(f"xmhash: {exc}", file=sys.stderr)
                raise SystemExit(130) from None
            except TrainingDiverged as exc:
                print(f"xmhash: {exc}", file=sys.stderr)
                raise SystemExit(3) from None
            m = result.metrics
            t = m["test"]
            log.info("%s: mAP I->T %.4f, T->I %.4f (tie-aware; best epoch %s on validation, %.1f s)",
                     cfg.run_name, t["i2t"]["map_all_average"], t["t2i"]["map_all_average"], m["best_epoch"],
                     m["train_seconds"])
        m["run_dir"] = str(run_dir)
        if label_of is not None:
            m["label"] = label_of(sub, m)
        runs.append(m)
    return runs


def _finish(runs, out: Path, title: str, notes: str = "") -> int:
    from .report import write_report

    table = write_report(runs, out / "report", title=title, notes=notes)
    print(table)
    print(f"\nreport: {out / 'report' / 'summary.md'}")
    return 0


def _default_out(args, name: str) -> Path:
    return Path(args.out or f"runs/{name}")


# ------------------------------------------------------------------------------------------ commands
def _cmd_train(args) -> int:
    _setup(args)
    methods = args.method or ["ssah", "dcmh"]
    bits = args.bits or [16, 32, 64]
    plans = [("", {"method": m, "bits": b}) for m in methods for b in bits]
    out = _default_out(args, "train")
    runs = _run_all(args, plans, out)
    return _finish(runs, out, "xmhash training report")


def _cmd_ablate(args) -> int:
    _setup(args)
    bits = args.bits or [32]
    plans = []
    for b in bits:
        for ab in ("none", "ssah-1", "ssah-2", "ssah-3"):
            plans.append(("", {"method": "ssah", "bits": b, "ablation": ab}))
        if not args.no_published:
            plans.append(("", {"method": "ssah", "bits": b, "variant": "published-code"}))
    out = _default_out(args, "ablate")
    runs = _run_all(args, plans, out)
    return _finish(runs, out, "SSAH ablations",
                   "SSAH-1: no LabNet (modalities pulled towards each other, one image-vs-text discriminator); "
                   "SSAH-2: TxtNet without the multi-scale block; SSAH-3: no adversarial networks; published code: "
                   "squared pairwise residual, S = 0.999, inert adversary.")


def _cmd_sweep(args) -> int:
    from .config import parse_value, resolve_key
    from .report import method_label

    _setup(args)
    if "=" not in args.param:
        raise ValueError(f"--param expects KEY=V1,V2,..., got {args.param!r}")
    key, values = args.param.split("=", 1)
    methods = args.method or ["ssah"]
    key = resolve_key(key.strip(), prefer=methods[0] if len(methods) == 1 else None)
    values = [v.strip() for v in values.split(",") if v.strip()]
    if not values:
        raise ValueError("--param needs at least one value")
    bits = args.bits or [32]
    plans = [(f"{key}={v}", {"method": m, "bits": b, key: v}) for v in values for m in methods for b in bits]
    out = _default_out(args, "sweep")
    runs = _run_all(args, plans, out, label_of=lambda sub, m: f"{method_label(m)} {sub}")
    return _finish(runs, out, f"Sensitivity to {key}", f"One run per value of `{key}` "
                   f"({', '.join(str(parse_value(v)) for v in values)}); everything else fixed.")


def _load_for_checkpoint(ckpt: dict, data_arg: str | None, datasets: dict | None = None):
    from .config import TrainConfig
    from .dataset import prepare

    cfg = TrainConfig.from_dict(ckpt["config"], where="checkpoint config")
    if data_arg:
        cfg = cfg.replace(**{"data.path": data_arg})
    return cfg, prepare(_dataset(cfg, {} if datasets is None else datasets), cfg)


def _cmd_encode(args) -> int:
    import numpy as np

    from ..models import load_model
    from .checkpoint import load_checkpoint
    from .outputs import save_codes

    _setup(args)
    ckpt = load_checkpoint(args.checkpoint)
    cfg, td = _load_for_checkpoint(ckpt, args.data)
    dims = ckpt["dims"]
    if dims["text_dim"] != td.text_dim or dims["image_dim"] != td.image_dim:
        raise ValueError(f"{args.checkpoint}: trained on image/text widths {dims['image_dim']}/{dims['text_dim']}, "
                         f"but the data has {td.image_dim}/{td.text_dim}")
    model = load_model(ckpt)
    if args.split == "all":
        idx = np.arange(len(td.labels))
    else:
        splits = dict(td.data.splits)
        if args.split not in splits:
            raise ValueError(f"no split {args.split!r} in the data (splits: {', '.join(sorted(splits))})")
        idx = np.asarray(splits[args.split])
    out = Path(args.out)
    mods = ["image", "text"] if args.modality == "both" else [args.modality]
    for mod in mods:
        rows = td.image_rows(idx) if mod == "image" else td.text_rows(idx)
        enc = model.encode_image if mod == "image" else model.encode_text
        codes = enc(rows, batch_size=args.batch_size)
        save_codes(out, {f"{args.split}_{mod}": codes}, model.bits)
        print(f"{out / f'{args.split}_{mod}.npy'}: {codes.shape[0]} codes of {model.bits} bits (+ .xmhidx index)")
    return 0


def _cmd_eval(args) -> int:
    from ..models import load_model
    from ._io import atomic_write_text
    from .checkpoint import load_checkpoint
    from .evaluate import test_evaluation
    from .outputs import run_metrics, save_run_codes
    from .report import collect_runs

    _setup(args)
    root = Path(args.runs)
    bests = sorted(p for p in root.rglob("best.pt"))
    if not bests:
        raise FileNotFoundError(f"no best.pt under {root}")
    datasets = {}
    for best in bests:
        ckpt = load_checkpoint(best)
        cfg, td = _load_for_checkpoint(ckpt, args.data, datasets)
        model = load_model(ckpt)
        codes, test = test_evaluation(model, td, cfg)
        save_run_codes(best.parent, codes, cfg.bits)
        mpath = best.parent / "metrics.json"
        m = json.loads(mpath.read_text()) if mpath.is_file() else run_metrics(
            cfg, best_epoch=ckpt.get("epoch"), val_map=ckpt.get("val_map"), train_seconds=float("nan"), curve=[])
        m["test"] = test
        atomic_write_text(mpath, json.dumps(m, indent=2) + "\n")
        log.info("%s: mAP I->T %.4f, T->I %.4f", best.parent, test["i2t"]["map_all_average"],
                 test["t2i"]["map_all_average"])
    return _finish(collect_runs(root), root, "xmhash evaluation report")
