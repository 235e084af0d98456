"""Training throughput on MIRFLICKR-shaped data: an SSAH epoch with xmhash's fused native pairwise loss against
the pure-PyTorch reference (``pairwise_backend="torch"``), and the share of the epoch spent in the pairwise terms.

``pytest bench --benchmark-disable`` (CI) runs tiny shapes. ``XMHASH_BENCH_FULL=1`` uses the MIRFLICKR shape:
10,000 training items, 4,096-d image features, 1,386-d tags, 24 labels, 64 bits, the published network sizes.
The epoch table in bench/README.md comes from ``python bench/bench_train.py`` (see ``main``).
"""

from __future__ import annotations

import contextlib
import os
import time
import types

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("xmhash.nn.functional")

from xmhash.train import TrainConfig  # noqa: E402
from xmhash.train import ssah as ssah_module  # noqa: E402
from xmhash.train.dataset import prepare  # noqa: E402
from xmhash.train.dcmh import DCMHTrainer  # noqa: E402
from xmhash.train.loop import build_model  # noqa: E402
from xmhash.train.ssah import SSAHTrainer  # noqa: E402

FULL = os.environ.get("XMHASH_BENCH_FULL") == "1"
N_TRAIN = 10_000 if FULL else 200
IMAGE_DIM, TEXT_DIM = (4096, 1386) if FULL else (256, 300)
SIZES = {} if FULL else {"model.text_hidden": 64, "model.label_hidden": 64, "model.dcmh_text_hidden": 64,
                         "model.semantic_dim": 32}
STAGES = ("lab", "dis", "img", "txt")


def mirflickr_shaped(n_train: int, seed: int = 0):
    """Random data of MIRFLICKR's shape (the content does not matter for speed)."""
    rng = np.random.default_rng(seed)
    n = n_train + 200
    labels = (rng.random((n, 24)) < 0.15).astype(np.float32)
    labels[np.arange(n), rng.integers(0, 24, n)] = 1
    image = np.maximum(rng.standard_normal((n, IMAGE_DIM), dtype=np.float32), 0)
    text = (rng.random((n, TEXT_DIM)) < 0.008).astype(np.float32)
    idx = np.arange(n)
    splits = {"train": idx[:n_train], "val": idx[n_train:n_train + 100], "query": idx[n_train + 100:],
              "retrieval": idx[:n_train + 100]}
    return types.SimpleNamespace(image=image, text=text, labels=labels, splits=splits)


def make_trainer(backend: str, method: str = "ssah", data=None, seed: int = 0):
    cfg = TrainConfig().replace(method=method, bits=64, pairwise_backend=backend, **SIZES)
    td = prepare(data if data is not None else mirflickr_shaped(N_TRAIN), cfg)
    torch.manual_seed(seed)
    model = build_model(cfg, td)
    cls = SSAHTrainer if method == "ssah" else DCMHTrainer
    return cls(model, td, cfg, np.random.default_rng(seed), torch.device("cpu"))


def one_step(trainer, stage: str, step: int = 0):
    rows = np.sort(np.random.default_rng(step).choice(trainer.n, trainer.batch, replace=False))
    return trainer.step(stage, rows, {"epoch": 0, "stage": stage, "sub": 0, "pass": 0, "step": step})


@pytest.fixture(scope="module")
def data():
    return mirflickr_shaped(N_TRAIN)


@pytest.mark.parametrize("stage", STAGES)
def test_backends_give_the_same_losses(data, stage):
    """Checked before timing: both pairwise backends see the same step and return the same terms."""
    terms = {b: one_step(make_trainer(b, data=data), stage) for b in ("native", "torch")}
    for k, v in terms["native"].items():
        np.testing.assert_allclose(float(v), float(terms["torch"][k]), rtol=2e-4, err_msg=k)


@pytest.mark.benchmark(group="train-step")
@pytest.mark.parametrize("backend", ["native", "torch"])
@pytest.mark.parametrize("stage", STAGES)
def test_ssah_step(benchmark, data, stage, backend):
    trainer = make_trainer(backend, data=data)
    one_step(trainer, stage)
    benchmark.extra_info.update(stage=stage, backend=backend, n_train=N_TRAIN, bits=64,
                                threads=torch.get_num_threads())
    terms = benchmark(one_step, trainer, stage)
    assert all(np.isfinite(float(v)) for v in terms.values())


# --------------------------------------------------------------------------------------------- epoch table
class _Bare:
    """The pairwise terms replaced by stand-ins that keep the graph (so the networks' backward still runs) but
    cost nothing: what is left is the epoch without the pairwise terms."""

    def __enter__(self):
        self.saved = (ssah_module.pairwise_loss, ssah_module.pairwise_monitor)
        ssah_module.pairwise_loss = lambda a, b, la, lb, **kw: a.sum() * 0.0
        ssah_module.pairwise_monitor = lambda a, b, la, lb, **kw: 0.0

    def __exit__(self, *exc):
        ssah_module.pairwise_loss, ssah_module.pairwise_monitor = self.saved


def _peer_context(name: str):
    """The "bare" peer runs with the pairwise terms stubbed out; the others as they are."""
    return _Bare() if name == "bare" else contextlib.nullcontext()


_CLOCK = [time.perf_counter]  # main(--cpu-time) switches to process CPU time (robust to other jobs' load)


def _timed(fn) -> float:
    t0 = _CLOCK[0]()
    fn()
    return _CLOCK[0]() - t0


def epoch_table(data, *, steps: int, repeats: int) -> dict:
    """Per-step and per-monitor seconds of every SSAH stage and DCMH network for the native and torch pairwise
    backends and without pairwise terms ("bare"). The peers are interleaved round by round and the minimum over
    rounds is kept, so load from other processes hits them alike."""
    peers = {"native": make_trainer("native", data=data), "torch": make_trainer("torch", data=data),
             "bare": make_trainer("native", data=data)}
    dcmh = {b: make_trainer(b, method="dcmh", data=data) for b in ("native", "torch")}
    best: dict = {}

    def record(key, seconds):
        best[key] = min(best.get(key, float("inf")), seconds)

    for stage in STAGES:  # warm-up; the first step of the two backends (same seed, same state) must agree
        first = {}
        for name, tr in peers.items():
            with _peer_context(name):
                first[name] = one_step(tr, stage)
        for k, v in first["native"].items():
            np.testing.assert_allclose(float(v), float(first["torch"][k]), rtol=2e-4, err_msg=f"{stage} {k}")
    for r in range(repeats):
        for stage in STAGES:
            for name, tr in peers.items():
                with _peer_context(name):
                    record((name, stage), _timed(lambda: [one_step(tr, stage, i) for i in range(steps)]) / steps)
        for name, tr in peers.items():
            with _peer_context(name):
                record((name, "mon_lab"), _timed(tr._monitor_lab))
                for stage in ("img", "txt"):
                    record((name, f"mon_{stage}"), _timed(lambda: tr._monitor_modality(stage)))
        for name, tr in dcmh.items():
            for stage in ("img", "txt"):
                record(("dcmh_" + name, stage), _timed(lambda: [one_step(tr, stage, i) for i in range(steps)]) / steps)
    spp = peers["native"].steps_per_pass
    passes = {"lab": 2, "dis": 2, "img": 3, "txt": 3}  # every sub-stage capped at one pass
    out = {"steps_per_pass": spp, "best": best}
    for name in peers:
        out[name] = (sum(passes[s] * spp * best[(name, s)] for s in STAGES)
                     + sum(passes[s] * best[(name, f"mon_{s}")] for s in ("lab", "img", "txt")))
    for name in dcmh:
        out["dcmh_" + name] = spp * (best[("dcmh_" + name, "img")] + best[("dcmh_" + name, "txt")])
    return out


def main() -> None:  # pragma: no cover - the measurement behind bench/README.md
    import argparse

    import xmhash

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--cpu-time", action="store_true", help="time with the process CPU clock (use with --threads 1)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.cpu_time:
        _CLOCK[0] = time.process_time
    res = epoch_table(mirflickr_shaped(N_TRAIN), steps=args.steps, repeats=args.repeats)
    b = res["best"]
    print(f"xmhash {xmhash.__version__}, isa {xmhash.build_info()['isa']}, torch {torch.__version__}, "
          f"{args.threads} threads, N={N_TRAIN}, {res['steps_per_pass']} steps/pass, min of {args.repeats} rounds, "
          f"{'CPU' if args.cpu_time else 'wall'} time")
    print("| | native pairwise | torch pairwise | torch / native | without pairwise terms |")
    print("|---|---:|---:|---:|---:|")
    for s in STAGES:
        print(f"| SSAH {s} step (s) | {b[('native', s)]:.3f} | {b[('torch', s)]:.3f} | "
              f"{b[('torch', s)] / b[('native', s)]:.2f}x | {b[('bare', s)]:.3f} |")
    for s in ("lab", "img", "txt"):
        k = f"mon_{s}"
        print(f"| SSAH {s} early-stop monitor (s) | {b[('native', k)]:.3f} | {b[('torch', k)]:.3f} | "
              f"{b[('torch', k)] / b[('native', k)]:.2f}x | – |")
    print(f"| **SSAH epoch (s)** | **{res['native']:.1f}** | **{res['torch']:.1f}** | "
          f"**{res['torch'] / res['native']:.2f}x** | {res['bare']:.1f} |")
    print(f"| DCMH epoch (s) | {res['dcmh_native']:.1f} | {res['dcmh_torch']:.1f} | "
          f"{res['dcmh_torch'] / res['dcmh_native']:.2f}x | – |")
    for name in ("native", "torch"):
        print(f"share of the SSAH epoch in the pairwise terms ({name}): {100 * (1 - res['bare'] / res[name]):.0f}%")


if __name__ == "__main__":  # pragma: no cover
    main()
