"""Pairwise loss, forward + backward: the fused native kernel vs the pure-PyTorch reference, same process.

Default sizes are small (a CI smoke run with ``--benchmark-disable``); ``XMHASH_BENCH_FULL=1`` runs the issue's
sizes: a batch of n = 128 against a memory of N = 10,000, d in {16, 64, 512}, 24 labels, 2 threads
(``torch.set_num_threads(2)``, which the native backend follows; ``XMHASH_BENCH_THREADS`` changes it). The
batch requires grad, the memory does not (as in SSAH/DCMH training). Both peers get the same multi-hot float
labels, packed per call by the native one.

``test_speed_and_memory`` prints (run with ``-s``) the speed ratio, min over interleaved rounds of wall time,
or of the process's CPU time with one thread (which a loaded machine disturbs less), and the peak additional
memory of one forward + backward step of each peer. Memory is measured in a fresh process per peer: after a
warm-up step the kernel's peak-RSS counter is reset (``/proc/self/clear_refs``) and one more step runs; peak
additional = VmHWM - VmRSS before the step. ``MALLOC_MMAP_THRESHOLD_=65536`` makes every allocation above
64 KiB a fresh mapping returned on free, so RSS follows live memory for torch and for the native kernel alike
(tracemalloc and torch.profiler each see only one of the two allocators).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

import xmhash  # noqa: E402
from xmhash.nn.functional import pairwise_nll  # noqa: E402

FULL = os.environ.get("XMHASH_BENCH_FULL") == "1"
N_BATCH, N_MEMORY, N_CLASSES = (128, 10_000, 24) if FULL else (32, 1_000, 24)
DIMS = (16, 64, 512) if FULL else (16, 64)
THREADS = int(os.environ.get("XMHASH_BENCH_THREADS", "2"))
PEERS = ("native", "torch")


def make_inputs(d: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(N_BATCH, d, generator=g).requires_grad_(True)
    b = torch.randn(N_MEMORY, d, generator=g)
    la = (torch.rand(N_BATCH, N_CLASSES, generator=g) < 0.1).float()
    lb = (torch.rand(N_MEMORY, N_CLASSES, generator=g) < 0.1).float()
    return a, b, la, lb


def step(peer: str, a, b, la, lb):
    loss = pairwise_nll(a, b, la, lb, backend=peer)
    loss.backward()
    grad, a.grad = a.grad, None
    return loss.detach(), grad


def _status(key: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key))


def _measure_here(peer: str, d: int) -> int:
    """Peak additional bytes of one step in this (fresh) process; see the module docstring."""
    torch.set_num_threads(THREADS)
    inputs = make_inputs(d)
    step(peer, *inputs)  # warm-up: code pages, thread pools, allocator state
    rss = _status("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # VmHWM := VmRSS
    step(peer, *inputs)
    return _status("VmHWM") - rss


@pytest.fixture(autouse=True)
def torch_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    yield
    torch.set_num_threads(before)


_checked: set[int] = set()


def check_same_results(d: int, inputs) -> None:
    """Both peers compute the same loss and gradient before anything is timed."""
    if d in _checked:
        return
    (l_nat, g_nat), (l_ref, g_ref) = (step(p, *inputs) for p in PEERS)
    assert abs(l_nat.item() - l_ref.item()) <= 1e-5 * abs(l_ref.item())
    assert torch.allclose(g_nat, g_ref, rtol=1e-4, atol=1e-5 * g_ref.abs().max().item())
    _checked.add(d)


@pytest.mark.parametrize("d", DIMS)
@pytest.mark.parametrize("peer", PEERS)
def test_fwd_bwd(benchmark, peer, d):
    inputs = make_inputs(d)
    check_same_results(d, inputs)
    benchmark.group = f"pairwise n={N_BATCH} N={N_MEMORY} d={d}"
    benchmark.extra_info.update(peer=peer, n=N_BATCH, N=N_MEMORY, d=d, classes=N_CLASSES, threads=THREADS,
                                isa=xmhash.get_isa())
    benchmark(step, peer, *inputs)


def peak_additional_bytes(peer: str, d: int) -> int | None:
    if not os.path.exists("/proc/self/clear_refs"):
        return None
    path = os.pathsep.join([str(Path(xmhash.__file__).parents[1]), os.environ.get("PYTHONPATH", "")])
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", PYTHONPATH=path)
    out = subprocess.run([sys.executable, __file__, peer, str(d)], capture_output=True, text=True, env=env,
                         check=True, timeout=600)
    return int(out.stdout.strip())


@pytest.mark.parametrize("d", DIMS)
def test_speed_and_memory(d, record_property):
    inputs = make_inputs(d)
    check_same_results(d, inputs)
    rounds = 21 if FULL else 3
    # One thread: CPU time of the process (robust on a loaded machine); more: wall time.
    clock = time.process_time if THREADS == 1 else time.perf_counter
    times: dict[str, list[float]] = {p: [] for p in PEERS}
    for _ in range(rounds):  # interleaved, so load changes on a shared machine hit both peers alike
        for p in PEERS:
            t0 = clock()
            step(p, *inputs)
            times[p].append(clock() - t0)
    best = {p: min(v) for p, v in times.items()}
    measure = FULL or d == DIMS[0]  # each measurement starts two Python processes: once in a smoke run
    mem = {p: peak_additional_bytes(p, d) if measure else None for p in PEERS}
    speedup = best["torch"] / best["native"]
    record_property("speedup", speedup)
    line = (f"pairwise n={N_BATCH} N={N_MEMORY} d={d} threads={THREADS} isa={xmhash.get_isa()} "
            f"({'cpu' if THREADS == 1 else 'wall'} time): "
            f"native {best['native'] * 1e3:.2f} ms, torch {best['torch'] * 1e3:.2f} ms, speedup {speedup:.2f}x")
    if mem["native"] is not None:
        ratio = mem["native"] / max(mem["torch"], 1)
        record_property("memory_ratio", ratio)
        line += (f"; peak additional memory native {mem['native'] / 2**20:.2f} MiB, "
                 f"torch {mem['torch'] / 2**20:.2f} MiB, ratio {ratio:.3f}")
    print(line)


if __name__ == "__main__":  # the memory-measuring child: bench_pairwise.py PEER D
    print(_measure_here(sys.argv[1], int(sys.argv[2])))
