"""Pairwise loss on the GPU, forward + backward: xmhash's CUDA kernels vs the pure-PyTorch reference on CUDA.

Skipped unless xmhash was built with its CUDA kernels, a GPU is visible and torch has CUDA. Both peers get the
same CUDA tensors (the batch requires grad, the memory does not, as in SSAH/DCMH training) and packed labels;
they are checked for the same loss and gradient before anything is timed; each timed step ends with a device
sync. ``test_speed_and_memory`` prints (run with ``-s``) the speed ratio (min over interleaved rounds) and the
peak additional CUDA memory of one step of each peer (torch.cuda.max_memory_allocated over what was allocated
before: the native peer's outputs and workspace come from torch's allocator too).

Small sizes by default (a smoke run); XMHASH_BENCH_FULL=1 uses the pairwise-loss issue's n = 128, N = 10,000,
d in {16, 64, 512}, 24 labels:

    XMHASH_BENCH_FULL=1 python -m pytest bench/bench_cuda_pairwise.py -s --benchmark-group-by=group
"""

from __future__ import annotations

import os
import time

import pytest

from cuda_env import cuda_skip_reason

_reason = cuda_skip_reason()
if _reason is not None:
    pytest.skip(_reason, allow_module_level=True)
import torch  # noqa: E402

from xmhash.nn import pack_labels  # noqa: E402
from xmhash.nn.functional import pairwise_nll  # noqa: E402

FULL = os.environ.get("XMHASH_BENCH_FULL") == "1"
N_BATCH, N_MEMORY, N_CLASSES = (128, 10_000, 24) if FULL else (32, 1_000, 24)
DIMS = (16, 64, 512) if FULL else (16, 64)
PEERS = ("native", "torch")
DTYPES = {"float32": torch.float32, "float64": torch.float64}


def make_inputs(d: int, dtype, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(N_BATCH, d, generator=g, dtype=dtype).cuda().requires_grad_(True)
    b = torch.randn(N_MEMORY, d, generator=g, dtype=dtype).cuda()
    la = pack_labels(torch.rand(N_BATCH, N_CLASSES, generator=g) < 0.1)
    lb = pack_labels(torch.rand(N_MEMORY, N_CLASSES, generator=g) < 0.1)
    return a, b, la, lb


def step(peer: str, a, b, la, lb):
    loss = pairwise_nll(a, b, la, lb, backend=peer)
    loss.backward()
    grad, a.grad = a.grad, None
    torch.cuda.synchronize()
    return loss.detach(), grad


def check_same_results(inputs) -> None:
    (l_nat, g_nat), (l_ref, g_ref) = (step(p, *inputs) for p in PEERS)
    assert abs(l_nat.item() - l_ref.item()) <= 1e-5 * abs(l_ref.item())
    assert torch.allclose(g_nat, g_ref, rtol=1e-4, atol=1e-5 * g_ref.abs().max().item())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("d", DIMS)
@pytest.mark.parametrize("peer", PEERS)
def test_fwd_bwd(benchmark, peer, d, dtype):
    inputs = make_inputs(d, DTYPES[dtype])
    check_same_results(inputs)
    benchmark.group = f"cuda-pairwise n={N_BATCH} N={N_MEMORY} d={d} {dtype}"
    benchmark.extra_info.update(peer=peer, n=N_BATCH, N=N_MEMORY, d=d, dtype=dtype,
                                device=torch.cuda.get_device_name())
    benchmark(step, peer, *inputs)


def peak_additional_bytes(peer: str, inputs) -> int:
    step(peer, *inputs)  # warm-up
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    step(peer, *inputs)
    return torch.cuda.max_memory_allocated() - before


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("d", DIMS)
def test_speed_and_memory(d, dtype, record_property):
    inputs = make_inputs(d, DTYPES[dtype])
    check_same_results(inputs)
    rounds = 51 if FULL else 3
    times: dict[str, list[float]] = {p: [] for p in PEERS}
    for _ in range(rounds):  # interleaved
        for p in PEERS:
            t0 = time.perf_counter()
            step(p, *inputs)
            times[p].append(time.perf_counter() - t0)
    best = {p: min(v) for p, v in times.items()}
    mem = {p: peak_additional_bytes(p, inputs) for p in PEERS}
    speedup, ratio = best["torch"] / best["native"], mem["native"] / max(mem["torch"], 1)
    record_property("speedup", speedup)
    record_property("memory_ratio", ratio)
    print(f"cuda pairwise n={N_BATCH} N={N_MEMORY} d={d} {dtype} on {torch.cuda.get_device_name()}: "
          f"native {best['native'] * 1e3:.3f} ms, torch {best['torch'] * 1e3:.3f} ms, speedup {speedup:.2f}x; "
          f"peak additional memory native {mem['native'] / 2**20:.2f} MiB, torch {mem['torch'] / 2**20:.2f} MiB, "
          f"ratio {ratio:.3f}")
