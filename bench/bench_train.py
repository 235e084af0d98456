"""Training throughput on MIRFLICKR-shaped data: an SSAH epoch with xmhash's fused native pairwise loss against
the pure-PyTorch reference (``pairwise_backend="torch"``), and the share of the epoch spent in the pairwise terms.

``pytest bench --benchmark-disable`` (CI) runs tiny shapes. ``XMHASH_BENCH_FULL=1`` uses the MIRFLICKR shape:
10,000 training items, 4,096-d image features, 1,386-d tags, 24 labels, 64 bits, the published network sizes.
The epoch table in bench/README.md comes from ``python bench/bench_train.py`` (see ``main``).
"""

from __future__ import annotations

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
def _time(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def ssah_epoch_seconds(backend: str, data, *, steps: int, repeats: int) -> dict:
    """Seconds of one SSAH epoch with every sub-stage capped at one pass (lab 2, dis 2, img 3, txt 3 passes of
    N // 128 steps, plus the published code's monitors after each pass), from timed steps of every stage."""
    tr = make_trainer(backend, data=data)
    per_step = {}
    for stage in STAGES:
        one_step(tr, stage)  # warm-up
        per_step[stage] = _time(lambda: [one_step(tr, stage, i) for i in range(steps)], repeats) / steps
    monitors = {"lab": _time(tr._monitor_lab, repeats), "img": _time(lambda: tr._monitor_modality("img"), repeats),
                "txt": _time(lambda: tr._monitor_modality("txt"), repeats)}
    passes = {"lab": 2, "dis": 2, "img": 3, "txt": 3}
    spp = tr.steps_per_pass
    epoch = sum(passes[s] * spp * per_step[s] for s in STAGES) + sum(passes[s] * monitors[s] for s in monitors)
    return {"epoch": epoch, "per_step": per_step, "monitors": monitors, "steps_per_pass": spp}


def dcmh_epoch_seconds(backend: str, data, *, steps: int, repeats: int) -> float:
    tr = make_trainer(backend, method="dcmh", data=data)
    total = 0.0
    for stage in ("img", "txt"):
        one_step(tr, stage)
        total += _time(lambda: [one_step(tr, stage, i) for i in range(steps)], repeats) / steps * tr.steps_per_pass
    return total


def _without_pairwise():
    """Stand-ins that keep the graph (so the networks' backward still runs) but cost nothing."""
    saved = (ssah_module.pairwise_loss, ssah_module.pairwise_monitor)
    ssah_module.pairwise_loss = lambda a, b, la, lb, **kw: a.sum() * 0.0
    ssah_module.pairwise_monitor = lambda a, b, la, lb, **kw: 0.0
    return saved


def main() -> None:  # pragma: no cover - the measurement behind bench/README.md
    import argparse

    import xmhash

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    data = mirflickr_shaped(N_TRAIN)
    res = {b: ssah_epoch_seconds(b, data, steps=args.steps, repeats=args.repeats) for b in ("native", "torch")}
    saved = _without_pairwise()
    try:
        bare = ssah_epoch_seconds("native", data, steps=args.steps, repeats=args.repeats)
    finally:
        ssah_module.pairwise_loss, ssah_module.pairwise_monitor = saved
    dcmh = {b: dcmh_epoch_seconds(b, data, steps=args.steps, repeats=args.repeats) for b in ("native", "torch")}
    print(f"xmhash {xmhash.__version__}, isa {xmhash.build_info()['isa']}, torch {torch.__version__}, "
          f"{args.threads} threads, N={N_TRAIN}, {res['native']['steps_per_pass']} steps/pass")
    print("| | native pairwise | torch pairwise | torch / native |")
    print("|---|---:|---:|---:|")
    for s in STAGES:
        a, b = res["native"]["per_step"][s], res["torch"]["per_step"][s]
        print(f"| SSAH {s} step (s) | {a:.3f} | {b:.3f} | {b / a:.2f}x |")
    for s in ("lab", "img", "txt"):
        a, b = res["native"]["monitors"][s], res["torch"]["monitors"][s]
        print(f"| SSAH {s} monitor (s) | {a:.3f} | {b:.3f} | {b / a:.2f}x |")
    a, b = res["native"]["epoch"], res["torch"]["epoch"]
    print(f"| **SSAH epoch (s)** | **{a:.1f}** | **{b:.1f}** | **{b / a:.2f}x** |")
    print(f"| DCMH epoch (s) | {dcmh['native']:.1f} | {dcmh['torch']:.1f} | {dcmh['torch'] / dcmh['native']:.2f}x |")
    for name, r in (("native", res["native"]), ("torch", res["torch"])):
        share = 1 - bare["epoch"] / r["epoch"]
        print(f"share of the SSAH epoch in the pairwise terms ({name}): {100 * share:.0f}% "
              f"(epoch without them: {bare['epoch']:.1f} s)")


if __name__ == "__main__":  # pragma: no cover
    main()
