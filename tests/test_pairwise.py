"""Pairwise similarity loss: the native kernel against the pure-PyTorch reference, gradients, bad input."""

from __future__ import annotations

import contextlib
import ctypes
import re
import threading
import types

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

from xmhash.nn import PackedLabels, pack_labels  # noqa: E402
from xmhash.nn import pairwise as pairwise_module  # noqa: E402
from xmhash.nn.functional import pairwise_nll, pairwise_nll_reference, sign_ste  # noqa: E402

F64 = torch.float64


def _make(rng, n, N, d, c, *, dtype=F64, magnitude=1.0, density=0.2, need_b=True):
    a = torch.from_numpy(rng.standard_normal((n, d)) * magnitude).to(dtype).requires_grad_(True)
    b = torch.from_numpy(rng.standard_normal((N, d))).to(dtype).requires_grad_(need_b)
    la = torch.from_numpy(rng.random((n, c)) < density).to(dtype)
    lb = torch.from_numpy(rng.random((N, c)) < density).to(dtype)
    return a, b, la, lb


def _grads(loss, a, b):
    ins = [t for t in (a, b) if t.requires_grad]
    gs = torch.autograd.grad(loss, ins)
    out = dict(zip([id(t) for t in ins], gs))
    return out.get(id(a)), out.get(id(b))


def _bounds(a, b, la, lb, *, scale, variant, reduction, similar_weight, dissimilar_weight):
    """Magnitude bounds of the loss and of each gradient entry: tolerances are relative to these (so they stay
    tight where values are large and meaningful where sums cancel)."""
    A, B = a.detach().to(F64).abs(), b.detach().to(F64).abs()
    M = abs(scale) * (A @ B.T)  # |theta| as computed, before cancellation
    similar = (la.to(F64) @ lb.to(F64).T) > 0
    w = torch.where(similar, abs(similar_weight), abs(dissimilar_weight)).to(F64)
    if variant == "nll":
        value, slope = M + 1, 1 + M
    else:
        value, slope = (M + 1) ** 2, 2 * (M + 1) * (1 + M)
    div = a.shape[0] * b.shape[0] if reduction == "mean" else 1
    g = w * slope * abs(scale) / div
    return (w * value).sum().item() / div, g @ B, g.T @ A


def _assert_matches_reference(a, b, la, lb, *, rtol, threads=None, **kw):
    kw = {"scale": 0.5, "variant": "nll", "reduction": "sum", "similarity_scale": 1.0, "similar_weight": 1.0,
          "dissimilar_weight": 1.0, **kw}
    loss = pairwise_nll(a, b, la, lb, threads=threads, **kw)
    assert loss.dtype == a.dtype and loss.shape == ()
    ga, gb = _grads(loss, a, b)
    # The oracle: the reference evaluated in float64 on the same (possibly float32) inputs.
    a64 = a.detach().to(F64).requires_grad_(a.requires_grad)
    b64 = b.detach().to(F64).requires_grad_(b.requires_grad)
    ref = pairwise_nll_reference(a64, b64, la, lb, **kw)
    ra, rb = _grads(ref, a64, b64)
    bl, ba, bb = _bounds(a, b, la, lb, **{k: kw[k] for k in ("scale", "variant", "reduction", "similar_weight",
                                                              "dissimilar_weight")})
    assert torch.isfinite(loss)
    assert abs(loss.item() - ref.item()) <= rtol * bl + 1e-300
    for got, want, bound in ((ga, ra, ba), (gb, rb, bb)):
        if want is None:
            assert got is None
            continue
        assert got.dtype == a.dtype and torch.isfinite(got).all()
        assert ((got.to(F64) - want).abs() <= rtol * bound + 1e-300).all()


RTOL = {torch.float64: 1e-12, torch.float32: 2e-5}


# ------------------------------------------------------------------------------------------------ values, grads


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    n=st.integers(1, 20),
    N=st.integers(1, 150),
    d=st.integers(1, 40),
    c=st.sampled_from([1, 7, 24, 32, 33, 64, 65, 100]),
    dtype=st.sampled_from([torch.float64, torch.float32]),
    variant=st.sampled_from(["nll", "squared"]),
    reduction=st.sampled_from(["sum", "mean"]),
    magnitude=st.sampled_from([1e-3, 1.0, 10.0, 1e3]),
    density=st.sampled_from([0.0, 0.05, 0.3, 1.0]),
    similarity_scale=st.sampled_from([1.0, 0.999]),
    weights=st.sampled_from([(1.0, 1.0), (2.0, 0.25)]),
    need_b=st.booleans(),
    threads=st.sampled_from([1, 3, 0]),
    seed=st.integers(0, 2**32 - 1),
)
def test_native_equals_reference(isa, n, N, d, c, dtype, variant, reduction, magnitude, density, similarity_scale,
                                 weights, need_b, threads, seed):
    rng = np.random.default_rng(seed)
    a, b, la, lb = _make(rng, n, N, d, c, dtype=dtype, magnitude=magnitude, density=density, need_b=need_b)
    _assert_matches_reference(a, b, la, lb, rtol=RTOL[dtype], threads=threads, variant=variant,
                              reduction=reduction, similarity_scale=similarity_scale, similar_weight=weights[0],
                              dissimilar_weight=weights[1])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("variant", ["nll", "squared"])
@pytest.mark.parametrize("density", [0.0, 1.0, 0.3], ids=["all-dissimilar", "all-similar", "mixed"])
def test_huge_theta_stays_finite_and_exact(isa, dtype, variant, density):
    # |theta| up to 1e4: log(1 + exp(theta)) overflows in the published code; here every value stays finite.
    rng = np.random.default_rng(1)
    a, b, la, lb = _make(rng, 9, 70, 4, 24, dtype=dtype, density=density)
    with torch.no_grad():
        a.mul_(1e4 / (0.5 * (a @ b.T)).abs().max())
    _assert_matches_reference(a, b, la, lb, rtol=RTOL[dtype], variant=variant)


@pytest.mark.parametrize("n,N,d", [(1, 1, 1), (1, 300, 3), (300, 1, 5), (2, 3, 1), (17, 129, 16), (5, 70, 67)])
def test_edge_shapes(isa, n, N, d):
    rng = np.random.default_rng(n * 1000 + N + d)
    for dtype in (torch.float64, torch.float32):
        a, b, la, lb = _make(rng, n, N, d, 24, dtype=dtype)
        _assert_matches_reference(a, b, la, lb, rtol=RTOL[dtype])


@pytest.mark.parametrize("d", [4000, 4001])
def test_large_batch_is_split_into_groups(d):
    # Wide rows push the per-chunk d loss / d A partials past the kernel's memory budget, so A is processed in
    # groups of rows (here 32, 32, 6) whose d loss / d B contributions add up.
    rng = np.random.default_rng(d)
    a, b, la, lb = _make(rng, 70, 1024, d, 24, magnitude=0.05)
    _assert_matches_reference(a, b, la, lb, rtol=1e-12)


@pytest.mark.parametrize("c", [1, 8, 32, 33, 64, 65, 200])
def test_label_widths(c):
    # 1-4 bytes, 5-8 bytes and wider label rows take different similarity paths in the kernel.
    rng = np.random.default_rng(c)
    a, b, la, lb = _make(rng, 11, 90, 6, c, density=1.5 / c)
    _assert_matches_reference(a, b, la, lb, rtol=1e-12)
    _assert_matches_reference(a, b, la, lb, rtol=1e-12, variant="squared")


@pytest.mark.parametrize("variant", ["nll", "squared"])
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_gradcheck_float64(variant, reduction):
    rng = np.random.default_rng(3)
    a, b, la, lb = _make(rng, 5, 23, 4, 24, magnitude=2.0)

    def f(a, b):
        return pairwise_nll(a, b, la, lb, variant=variant, reduction=reduction, similarity_scale=0.999,
                            similar_weight=1.5, dissimilar_weight=0.5)

    assert torch.autograd.gradcheck(f, (a, b))


def test_mean_is_sum_over_pairs():
    rng = np.random.default_rng(4)
    a, b, la, lb = _make(rng, 6, 40, 5, 24)
    s = pairwise_nll(a, b, la, lb, reduction="sum")
    m = pairwise_nll(a, b, la, lb, reduction="mean")
    assert torch.allclose(m, s / (6 * 40), rtol=1e-14, atol=0)


def test_known_values():
    # theta = 0: softplus(0) = log 2 per pair; similar pairs subtract s * 0 = 0; gradient 0.5 * (0.5 - s) * b.
    a = torch.zeros(2, 3, dtype=F64, requires_grad=True)
    b = torch.ones(4, 3, dtype=F64)
    la = torch.tensor([[1, 0], [0, 1]])
    lb = torch.tensor([[1, 0], [1, 0], [0, 0], [1, 1]])
    loss = pairwise_nll(a, b, la, lb)
    assert loss.item() == pytest.approx(8 * np.log(2), rel=1e-15)
    (ga,) = torch.autograd.grad(loss, a)
    sim = torch.tensor([[1, 1, 0, 1], [0, 0, 0, 1]], dtype=F64)
    assert torch.allclose(ga, 0.5 * (0.5 - sim) @ b, rtol=1e-15, atol=0)
    sq = pairwise_nll(a, b, la, lb, variant="squared", similarity_scale=0.999)
    assert sq.item() == pytest.approx(8 * np.log(2) ** 2, rel=1e-15)


def test_packed_and_dense_labels_agree():
    rng = np.random.default_rng(5)
    a, b, la, lb = _make(rng, 7, 50, 8, 21)
    dense = pairwise_nll(a, b, la, lb)
    packed = pairwise_nll(a, b, pack_labels(la), pack_labels(lb))
    numpy_bool = pairwise_nll(a, b, la.numpy() > 0, lb.numpy().astype(np.int64))
    assert dense.item() == packed.item() == numpy_bool.item()
    mixed = pairwise_nll(a, b, pack_labels(la), lb, backend="torch")
    assert mixed.item() == pytest.approx(dense.item(), rel=1e-12)


def test_packed_labels_select_rows():
    rng = np.random.default_rng(6)
    labels = torch.from_numpy(rng.random((30, 21)) < 0.3)
    packed = pack_labels(labels)
    assert packed.shape == (30, 21) and len(packed) == 30 and packed.bits.shape == (30, 3)
    idx = torch.tensor([4, 0, 29, 4])
    assert (packed[idx].to_dense() == labels[idx].numpy()).all()
    assert (packed[2:5].to_dense() == labels[2:5].numpy()).all()
    assert (packed[7].to_dense() == labels[7:8].numpy()).all()
    assert torch.equal(packed.to_dense(dtype=torch.float32), labels.float())
    assert (packed.bits == np.packbits(labels.numpy(), axis=1, bitorder="little")).all()


def test_results_identical_across_threads_and_runs():
    rng = np.random.default_rng(7)
    a, b, la, lb = _make(rng, 33, 3000, 24, 24, dtype=torch.float32)
    outs = []
    for threads in (1, 2, 3, 0, 1):
        loss = pairwise_nll(a, b, la, lb, threads=threads)
        outs.append((loss.item(), *[g.clone() for g in _grads(loss, a, b)]))
    for o in outs[1:]:
        assert o[0] == outs[0][0] and torch.equal(o[1], outs[0][1]) and torch.equal(o[2], outs[0][2])


def test_concurrent_calls_from_python_threads():
    rng = np.random.default_rng(8)
    a, b, la, lb = _make(rng, 16, 2000, 16, 24, need_b=False)
    with torch.no_grad():
        want = pairwise_nll(a, b, la, lb).item()
    got, errors = [], []

    def work():
        try:
            for _ in range(5):
                with torch.no_grad():
                    got.append(pairwise_nll(a, b, la, lb, threads=2).item())
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    ts = [threading.Thread(target=work) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout=60)
    assert not errors and len(got) == 20 and all(g == want for g in got)


def test_gradients_follow_requires_grad_and_grad_mode():
    rng = np.random.default_rng(9)
    a, b, la, lb = _make(rng, 4, 30, 3, 24, need_b=False)
    loss = pairwise_nll(a, b, la, lb)
    assert loss.requires_grad
    loss.backward()
    assert a.grad is not None and b.grad is None
    with torch.no_grad():
        assert not pairwise_nll(a, b, la, lb).requires_grad
    frozen = pairwise_nll(a.detach(), b, la, lb)
    assert not frozen.requires_grad


def test_batch_against_itself():
    # LabNet-style: the same tensor as batch and memory; autograd adds both gradients into it.
    rng = np.random.default_rng(15)
    a, _, la, _ = _make(rng, 20, 1, 8, 24)
    (g,) = torch.autograd.grad(pairwise_nll(a, a, la, la), a)
    (r,) = torch.autograd.grad(pairwise_nll_reference(a, a, la, la), a)
    assert torch.allclose(g, r, rtol=1e-12, atol=1e-13)


def test_non_finite_inputs_propagate():
    rng = np.random.default_rng(16)
    a, b, la, lb = _make(rng, 3, 5, 2, 24)
    with torch.no_grad():
        a[1, 0] = float("nan")
    assert torch.isnan(pairwise_nll(a, b, la, lb))


def test_upstream_gradient_scales_the_result():
    rng = np.random.default_rng(10)
    a, b, la, lb = _make(rng, 4, 30, 3, 24)
    g1 = _grads(pairwise_nll(a, b, la, lb), a, b)
    g3 = _grads(-3.0 * pairwise_nll(a, b, la, lb), a, b)
    for got, want in zip(g3, g1):
        assert torch.allclose(got, -3 * want, rtol=1e-15, atol=0)


def test_non_contiguous_inputs_are_handled():
    rng = np.random.default_rng(11)
    base_a = torch.from_numpy(rng.standard_normal((12, 9))).requires_grad_(True)
    base_b = torch.from_numpy(rng.standard_normal((12, 40))).requires_grad_(True)
    a, b = base_a[::2, ::3], base_b.T[::2, ::4]  # (6, 3) and (20, 3), both strided
    assert not a.is_contiguous() and not b.is_contiguous()
    la = torch.from_numpy(rng.random((6, 24)) < 0.3)[:, :]
    lb = torch.from_numpy(rng.random((24, 20)) < 0.3).T  # non-contiguous labels too
    loss = pairwise_nll(a, b, la, lb)
    ref = pairwise_nll(a.detach().contiguous(), b.detach().contiguous(), la.contiguous(), lb.contiguous())
    assert loss.item() == ref.item()
    ga, gb = torch.autograd.grad(loss, (base_a, base_b))
    ra, rb = torch.autograd.grad(pairwise_nll_reference(a, b, la, lb), (base_a, base_b))
    assert torch.allclose(ga, ra, rtol=1e-12, atol=1e-14) and torch.allclose(gb, rb, rtol=1e-12, atol=1e-14)


def test_backend_torch_is_the_reference():
    rng = np.random.default_rng(12)
    a, b, la, lb = _make(rng, 5, 20, 4, 24)
    x = pairwise_nll(a, b, la, lb, backend="torch", variant="squared", reduction="mean")
    y = pairwise_nll_reference(a, b, la, lb, variant="squared", reduction="mean")
    assert x.item() == y.item()


def test_native_has_no_double_backward():
    rng = np.random.default_rng(13)
    a, b, la, lb = _make(rng, 3, 5, 2, 24)
    with pytest.raises(RuntimeError, match=r"pairwise_nll\(backend='native'\) has first-order gradients only"):
        torch.autograd.grad(pairwise_nll(a, b, la, lb), a, create_graph=True)
    (ga,) = torch.autograd.grad(pairwise_nll(a, b, la, lb, backend="torch"), a, create_graph=True)
    assert ga.requires_grad


# ------------------------------------------------------------------------------------------------ bad input


def _ok(**over):
    rng = np.random.default_rng(0)
    a, b, la, lb = _make(rng, 4, 6, 3, 24)
    args = {"a": a, "b": b, "labels_a": la, "labels_b": lb, **over}
    return args


@pytest.mark.parametrize(
    "over,exc,match",
    [
        ({"b": torch.zeros(6, 5, dtype=F64)}, ValueError,
         r"a and b must have the same number of columns d, got a \(4, 3\) and b \(6, 5\)"),
        ({"labels_b": torch.zeros(6, 25)}, ValueError,
         "labels_a and labels_b must have the same number of classes, got 24 and 25"),
        ({"labels_b": torch.zeros(5, 24)}, ValueError, r"labels_b must have one row per row of b \(6\), got 5"),
        ({"labels_a": torch.zeros(4)}, ValueError, r"labels_a must be a 2-D \(rows, num_classes\) multi-hot matrix"),
        ({"labels_a": [[0, 1]] * 4}, TypeError, "labels_a must be a multi-hot torch tensor / numpy array or"),
        ({"labels_b": torch.full((6, 24), 2.0)}, ValueError, "labels_b must be multi-hot: every value 0 or 1"),
        ({"labels_b": torch.full((6, 24), float("nan"))}, ValueError, "labels_b must be multi-hot"),
        ({"a": torch.zeros(4, 3, dtype=torch.float16)}, TypeError, "a must be float32 or float64, got torch.float16"),
        ({"b": torch.zeros(6, 3, dtype=torch.float32)}, TypeError,
         "a and b must have the same dtype, got torch.float64 and torch.float32"),
        ({"b": torch.zeros(6, 3, dtype=torch.int64)}, TypeError, "b must be float32 or float64, got torch.int64"),
        ({"a": np.zeros((4, 3))}, TypeError, "a must be a torch.Tensor, got ndarray"),
        ({"a": torch.zeros(3, dtype=F64)}, ValueError, r"a must be a 2-D tensor \(n, d\), got shape \(3,\)"),
        ({"b": torch.zeros(0, 3, dtype=F64), "labels_b": torch.zeros(0, 24)}, ValueError,
         r"b must have at least one row, got shape \(0, 3\)"),
        ({"a": torch.zeros(4, 0, dtype=F64), "b": torch.zeros(6, 0, dtype=F64)}, ValueError,
         r"a and b must have at least one column"),
        ({"a": torch.zeros(4, 3, dtype=F64, device="meta")}, ValueError, "a and b must be on the same device"),
    ],
)
def test_bad_input(over, exc, match):
    with pytest.raises(exc, match=match):
        pairwise_nll(**_ok(**over))


@pytest.mark.parametrize(
    "kw,exc,match",
    [
        ({"reduction": "none"}, ValueError, "reduction must be 'sum' or 'mean', got 'none'"),
        ({"variant": "bce"}, ValueError, "variant must be 'nll' or 'squared', got 'bce'"),
        ({"backend": "cuda"}, ValueError, "backend must be 'native' or 'torch', got 'cuda'"),
        ({"scale": float("nan")}, ValueError, "scale must be finite, got nan"),
        ({"scale": "0.5"}, TypeError, "scale must be a real number, got str"),
        ({"similarity_scale": float("inf")}, ValueError, "similarity_scale must be finite"),
        ({"similar_weight": True}, TypeError, "similar_weight must be a real number, got bool"),
        ({"threads": -1}, ValueError, r"threads must be None \(torch's thread count\) or an int >= 0"),
    ],
)
def test_bad_options(kw, exc, match):
    with pytest.raises(exc, match=match):
        pairwise_nll(**_ok(), **kw)


def test_meta_device_needs_the_torch_backend():
    a = torch.zeros(4, 3, device="meta")
    with pytest.raises(ValueError, match=r"backend='native' runs on CPU or CUDA tensors, got device meta"):
        pairwise_nll(a, torch.zeros(6, 3, device="meta"), torch.zeros(4, 2), torch.zeros(6, 2))


def test_packed_labels_validation():
    with pytest.raises(ValueError, match=r"bits must have ceil\(num_classes / 8\) = 3 bytes per row"):
        PackedLabels(np.zeros((2, 2), np.uint8), 24)
    with pytest.raises(TypeError, match="bits must be a 2-D uint8 numpy array"):
        PackedLabels(np.zeros((2, 3), np.int8), 24)
    with pytest.raises(ValueError, match="labels must have at least one class"):
        pack_labels(np.zeros((3, 0)))
    with pytest.raises(TypeError, match="labels must hold bools or 0/1 numbers"):
        pack_labels(np.zeros((3, 2), dtype=complex))
    with pytest.raises(ValueError, match="labels must be multi-hot"):
        pack_labels(np.array([[0, -1]]))


@pytest.mark.parametrize(
    "make, exc, message",
    [
        (lambda: PackedLabels(np.zeros((2, 3), np.int8), 24), TypeError,
         "bits must be a 2-D uint8 numpy array of packed labels; use xmhash.nn.pack_labels()"),
        (lambda: PackedLabels([[0]], 8), TypeError,
         "bits must be a 2-D uint8 numpy array of packed labels; use xmhash.nn.pack_labels()"),
        (lambda: PackedLabels(np.zeros((2, 1), np.uint8), 0), ValueError, "num_classes must be an int >= 1, got 0"),
        (lambda: PackedLabels(np.zeros((2, 1), np.uint8), True), ValueError,
         "num_classes must be an int >= 1, got True"),
        (lambda: PackedLabels(np.zeros((2, 1), np.uint8), 8.0), ValueError,
         "num_classes must be an int >= 1, got 8.0"),
        (lambda: PackedLabels(np.zeros((2, 2), np.uint8), 24), ValueError,
         "bits must have ceil(num_classes / 8) = 3 bytes per row for 24 classes, got 2"),
        (lambda: pack_labels(torch.zeros(2, 3, dtype=torch.complex64)), TypeError,
         "labels must hold bools or 0/1 numbers, got dtype torch.complex64"),
        (lambda: pack_labels(np.zeros((2, 3), dtype="U1")), TypeError,
         "labels must hold bools or 0/1 numbers, got dtype <U1"),
        (lambda: pack_labels([[0, 1]]), TypeError,
         "labels must be a torch tensor, a numpy array or PackedLabels, got list"),
        (lambda: pack_labels(np.zeros(3)), ValueError,
         "labels must be a 2-D (rows, num_classes) multi-hot matrix, got shape (3,)"),
        (lambda: pack_labels(torch.zeros(3, 0)), ValueError,
         "labels must have at least one class (column), got shape (3, 0)"),
        (lambda: pack_labels(np.array([[0, -1]])), ValueError,
         "labels must be multi-hot: every value 0 or 1 (or bool), found other values"),
        (lambda: pack_labels(torch.tensor([[0.0, 2.0]])), ValueError,
         "labels must be multi-hot: every value 0 or 1 (or bool), found other values"),
    ],
)
def test_label_packing_errors_exact_messages(make, exc, message):
    with pytest.raises(exc, match=f"^{re.escape(message)}$"):
        make()


# ------------------------------------------------------------------------------------------------ sign_ste


def test_sign_ste_forward_and_straight_through_backward():
    x = torch.tensor([-2.0, -0.0, 0.0, 1e-30, 3.0, float("nan")], requires_grad=True)
    y = sign_ste(x)
    assert y.dtype == x.dtype
    assert y[:5].tolist() == [-1.0, 1.0, 1.0, 1.0, 1.0] and torch.isnan(y[5])
    g = torch.arange(6.0)
    (gx,) = torch.autograd.grad(y, x, g)
    assert torch.equal(gx, g)


def test_sign_ste_float64_and_vmap():
    x = torch.randn(3, 4, dtype=F64)
    assert torch.equal(torch.func.vmap(sign_ste)(x), torch.where(x >= 0, 1.0, -1.0).to(F64))


def test_sign_ste_rejects_integers():
    with pytest.raises(TypeError, match="x must be a floating-point tensor, got torch.int64"):
        sign_ste(torch.tensor([1, -1]))
    with pytest.raises(TypeError, match=r"^x must be a torch.Tensor, got ndarray$"):
        sign_ste(np.ones(3, dtype=np.float32))


# ------------------------------------------------------------------------------------------------ CUDA
# Without a GPU, the CUDA path is checked in two layers on the CPU: `_core._pairwise_tiles_model` runs the very
# block schedule and per-thread phases of cuda/pairwise.cu (csrc/include/xmhash/pairwise_tiles.hpp, threads run
# in turn between barriers), and a fake launcher that runs that model at the addresses it is given stands in for
# `_core.cuda_pairwise_loss`, so the Python glue (pointers, stream, outputs, autograd) is exercised end to end.
# Tests marked `cuda` compare the real kernels with the CPU kernel and the reference on a GPU.


def _mem(addr, n, dtype):
    dtype = np.dtype(dtype)
    return np.frombuffer((ctypes.c_char * (n * dtype.itemsize)).from_address(addr), dtype=dtype)


def _model(a, b, la, lb, *, scale=0.5, similarity_scale=1.0, similar_weight=1.0, dissimilar_weight=1.0,
           variant="nll", mean=False, grads=(True, True), **plan):
    """The CPU model on numpy arrays: (loss, grad_a | None, grad_b | None, (i_groups, j_groups))."""
    ga = np.empty_like(a) if grads[0] else None
    gb = np.empty_like(b) if grads[1] else None
    loss, gi, gj = pairwise_module._core._pairwise_tiles_model(
        a, b, la, lb, scale, similarity_scale, similar_weight, dissimilar_weight, variant, mean, ga, gb, **plan)
    return loss, ga, gb, (gi, gj)


def _read_only(shape):
    x = np.zeros(shape, np.float32)
    x.flags.writeable = False
    return x


_NATIVE_BAD_INPUT = [
    ({"a": np.zeros(4, np.float32)}, "a and b must be 2-D arrays"),
    ({"la": np.zeros(4, np.uint8)}, "labels_a and labels_b must be 2-D uint8 arrays of label bits"),
    ({"b": np.zeros((6, 5), np.float32)}, "a and b must have the same number of columns, got 3 and 5"),
    ({"lb": np.zeros((5, 1), np.uint8)}, "labels_a / labels_b must have one row per row of a / b"),
    ({"lb": np.zeros((6, 2), np.uint8)}, "labels_a and labels_b must have the same number of label bytes"),
    ({"variant": "l2"}, "variant must be 'nll' or 'squared', got 'l2'"),
    ({"ga": np.zeros((4, 3), np.float64)}, "grad_a must be a C-contiguous array of the input dtype"),
    ({"gb": np.zeros((6, 4), np.float32)}, "grad_b must be a writeable array of the shape of its input"),
    ({"ga": np.zeros((4, 3), np.float32)[::-1]}, "grad_a must be a C-contiguous array of the input dtype"),
    ({"ga": _read_only((4, 3))}, "grad_a must be a writeable array of the shape of its input"),
]


@pytest.mark.parametrize("entry", ["pairwise_loss", "_pairwise_tiles_model"])
@pytest.mark.parametrize("bad,message", _NATIVE_BAD_INPUT)
def test_native_pairwise_entry_points_validate_their_arguments(entry, bad, message):
    # The Python layer validates first; the bindings check again so no caller can reach the core with bad shapes.
    args = {"a": np.zeros((4, 3), np.float32), "b": np.zeros((6, 3), np.float32), "la": np.zeros((4, 1), np.uint8),
            "lb": np.zeros((6, 1), np.uint8), "variant": "nll", "ga": None, "gb": None}
    args.update(bad)
    extra = (1,) if entry == "pairwise_loss" else ()  # threads
    with pytest.raises(ValueError, match=re.escape(message)):
        getattr(pairwise_module._core, entry)(args["a"], args["b"], args["la"], args["lb"], 0.5, 1.0, 1.0, 1.0,
                                              args["variant"], False, args["ga"], args["gb"], *extra)


class _FakeLauncher:
    """`_core.cuda_pairwise_loss` and `cuda_pairwise_workspace` on host memory: the CPU model at the given
    addresses. Records every call's arguments."""

    WORKSPACE = 4096

    def __init__(self):
        self.calls = []

    def workspace(self, n, N, d, element_bytes, want_grad_a, want_grad_b):
        assert element_bytes in (4, 8)
        return self.WORKSPACE

    def loss(self, a, b, labels_a, labels_b, n, N, d, label_bytes, dtype, scale, similarity_scale, similar_weight,
             dissimilar_weight, variant, mean, loss, grad_a, grad_b, workspace, workspace_bytes, device, stream):
        self.calls.append(dict(a=a, b=b, labels_a=labels_a, labels_b=labels_b, n=n, N=N, d=d, dtype=dtype,
                               grad_a=grad_a, grad_b=grad_b, workspace=workspace, workspace_bytes=workspace_bytes,
                               device=device, stream=stream))
        assert workspace and workspace_bytes == self.WORKSPACE
        dt = np.dtype(dtype)
        rows = lambda addr, r, w, t: None if addr == 0 else _mem(addr, r * w, t).reshape(r, w)  # noqa: E731
        value, *_ = pairwise_module._core._pairwise_tiles_model(
            rows(a, n, d, dt), rows(b, N, d, dt), rows(labels_a, n, label_bytes, np.uint8),
            rows(labels_b, N, label_bytes, np.uint8), scale, similarity_scale, similar_weight, dissimilar_weight,
            variant, mean, rows(grad_a, n, d, dt), rows(grad_b, N, d, dt))
        _mem(loss, 1, dt)[0] = value


@pytest.fixture
def probe(monkeypatch):
    """Replace the GPU probe of xmhash._cuda: probe(built, devices_or_minus_error, error_text)."""
    from xmhash import _cuda

    def set_probe(built, n, error=""):
        monkeypatch.setattr(_cuda, "_probe", lambda: (built, n, error))

    return set_probe


@pytest.fixture
def fake_cuda(monkeypatch, probe):
    """CPU tensors through the CUDA glue: pairwise_nll(native) on the CPU dispatches to _native_cuda, whose
    launcher is the CPU model."""
    probe(True, 1)
    fake = _FakeLauncher()
    monkeypatch.setattr(pairwise_module._core, "cuda_pairwise_loss", fake.loss, raising=False)
    monkeypatch.setattr(pairwise_module._core, "cuda_pairwise_workspace", fake.workspace, raising=False)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: types.SimpleNamespace(cuda_stream=7))
    monkeypatch.setattr(torch.cuda, "device", lambda device: contextlib.nullcontext())
    monkeypatch.setitem(pairwise_module._NATIVE, "cpu", pairwise_module._native_cuda)
    return fake


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=40)
@given(
    n=st.integers(1, 140),
    N=st.integers(1, 140),
    d=st.integers(1, 40),
    c=st.sampled_from([1, 7, 24, 64, 65, 100]),
    dtype=st.sampled_from([torch.float64, torch.float32]),
    variant=st.sampled_from(["nll", "squared"]),
    reduction=st.sampled_from(["sum", "mean"]),
    magnitude=st.sampled_from([1e-3, 1.0, 10.0]),
    density=st.sampled_from([0.0, 0.05, 0.3, 1.0]),
    similarity_scale=st.sampled_from([1.0, 0.999]),
    weights=st.sampled_from([(1.0, 1.0), (2.0, 0.25)]),
    need_b=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_cuda_schedule_equals_reference(fake_cuda, n, N, d, c, dtype, variant, reduction, magnitude, density,
                                        similarity_scale, weights, need_b, seed):
    """The GPU's tiles, phases, slots and sums (run by the CPU model, behind the CUDA glue) give the reference's
    loss and gradients: shapes across tile edges (64 rows, 16 columns), label rows of 1 to 13 bytes."""
    rng = np.random.default_rng(seed)
    a, b, la, lb = _make(rng, n, N, d, c, dtype=dtype, magnitude=magnitude, density=density, need_b=need_b)
    _assert_matches_reference(a, b, la, lb, rtol=RTOL[dtype], variant=variant, reduction=reduction,
                              similarity_scale=similarity_scale, similar_weight=weights[0],
                              dissimilar_weight=weights[1])
    assert fake_cuda.calls


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("variant", ["nll", "squared"])
@pytest.mark.parametrize("density", [0.0, 1.0, 0.3], ids=["all-dissimilar", "all-similar", "mixed"])
def test_cuda_schedule_huge_theta_stays_finite(fake_cuda, dtype, variant, density):
    rng = np.random.default_rng(1)
    a, b, la, lb = _make(rng, 9, 70, 4, 24, dtype=dtype, density=density)
    with torch.no_grad():
        a.mul_(1e4 / (0.5 * (a @ b.T)).abs().max())
    _assert_matches_reference(a, b, la, lb, rtol=RTOL[dtype], variant=variant)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("target_blocks, slot_budget", [(1, 0), (2, 0), (3, 10**9), (512, 10**9), (512, 3000)])
def test_cuda_schedule_any_cut_gives_the_cpu_result(dtype, target_blocks, slot_budget):
    """However the plan cuts the pairs into blocks and slots (one block; columns only; rows and columns; a slot
    budget that runs out), the result is the CPU kernel's."""
    rng = np.random.default_rng(target_blocks)
    n, N, d = 150, 300, 21
    a, b = rng.standard_normal((n, d)).astype(dtype), rng.standard_normal((N, d)).astype(dtype)
    la, lb = rng.integers(0, 256, (n, 2), dtype=np.uint8) & 0x11, rng.integers(0, 256, (N, 2), dtype=np.uint8) & 0x11
    ra, rb = np.empty_like(a), np.empty_like(b)
    ref = pairwise_module._core.pairwise_loss(a, b, la, lb, 0.5, 1.0, 1.0, 1.0, "nll", False, ra, rb, 1)
    loss, ga, gb, (gi, gj) = _model(a, b, la, lb, target_blocks=target_blocks, slot_budget=slot_budget)
    assert 1 <= gi * gj <= target_blocks
    tol = 1e-12 if dtype == np.float64 else 2e-5
    assert loss == pytest.approx(ref, rel=tol)
    np.testing.assert_allclose(ga, ra, rtol=tol, atol=tol * np.abs(ra).max())
    np.testing.assert_allclose(gb, rb, rtol=tol, atol=tol * np.abs(rb).max())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("d", [1, 16, 31, 32, 33, 64, 65])
@pytest.mark.parametrize("n, N", [(63, 33), (64, 64), (65, 97), (1, 129)])
def test_cuda_schedule_tile_and_slice_edges(dtype, d, n, N):
    """Row counts around the 64-row tiles (32-row for float64's B side) and widths around the 32-column slices
    (one slice: reused from the theta pass; more: restaged for the gradients)."""
    rng = np.random.default_rng(d * 1000 + n)
    a, b = rng.standard_normal((n, d)).astype(dtype), rng.standard_normal((N, d)).astype(dtype)
    la, lb = rng.integers(0, 256, (n, 3), dtype=np.uint8) & 0x21, rng.integers(0, 256, (N, 3), dtype=np.uint8) & 0x21
    for variant in ("nll", "squared"):
        ra, rb = np.empty_like(a), np.empty_like(b)
        ref = pairwise_module._core.pairwise_loss(a, b, la, lb, 0.5, 0.999, 1.5, 0.5, variant, False, ra, rb, 1)
        loss, ga, gb, _ = _model(a, b, la, lb, similarity_scale=0.999, similar_weight=1.5, dissimilar_weight=0.5,
                                 variant=variant)
        tol = 1e-12 if dtype == np.float64 else 2e-5
        assert loss == pytest.approx(ref, rel=tol)
        np.testing.assert_allclose(ga, ra, rtol=tol, atol=tol * np.abs(ra).max())
        np.testing.assert_allclose(gb, rb, rtol=tol, atol=tol * np.abs(rb).max())


def test_cuda_plan_cut_and_slot_budget():
    """Tile columns are split first, then tile rows; every extra slot fits the budget (float32: 64 x 64 tiles)."""
    rng = np.random.default_rng(2)
    n, N, d = 200, 300, 8  # 4 x 5 tiles; a slot of d loss / d A is 6400 bytes, of d loss / d B 9600
    a, b = rng.standard_normal((n, d)).astype(np.float32), rng.standard_normal((N, d)).astype(np.float32)
    la, lb = np.ones((n, 1), np.uint8), np.ones((N, 1), np.uint8)
    assert _model(a, b, la, lb)[3] == (4, 5)
    assert _model(a, b, la, lb, target_blocks=10)[3] == (2, 5)
    assert _model(a, b, la, lb, target_blocks=3)[3] == (1, 3)
    assert _model(a, b, la, lb, slot_budget=0)[3] == (1, 1)
    assert _model(a, b, la, lb, slot_budget=2 * 6400)[3] == (1, 3)
    assert _model(a, b, la, lb, slot_budget=4 * 6400 + 9600)[3] == (2, 5)
    assert _model(a, b, la, lb, slot_budget=0, grads=(False, False))[3] == (4, 5)  # no gradients: no slots
    assert _model(a, b, la, lb, slot_budget=0, grads=(False, True))[3] == (1, 5)


def test_cuda_schedule_propagates_nan():
    rng = np.random.default_rng(16)
    a, b = rng.standard_normal((70, 3)), rng.standard_normal((80, 3))
    a[65, 1] = np.nan  # in the second tile of rows
    loss, ga, gb, _ = _model(a, b, np.ones((70, 1), np.uint8), np.ones((80, 1), np.uint8))
    assert np.isnan(loss) and np.isnan(ga[65]).all() and np.isnan(gb).all()
    assert np.isfinite(np.delete(ga, 65, axis=0)).all()


def test_cuda_schedule_rejects_what_the_launcher_rejects():
    a, la = np.zeros((2, 3)), np.zeros((2, 1), np.uint8)
    with pytest.raises(ValueError, match="invalid sizes or options"):
        _model(a, a, la, la, scale=float("nan"))
    with pytest.raises(ValueError, match="invalid sizes or options"):
        _model(np.zeros((2, 0)), np.zeros((2, 0)), la, la)
    with pytest.raises(ValueError, match="variant must be 'nll' or 'squared', got 'x'"):
        _model(a, a, la, la, variant="x")


def test_cuda_glue_passes_tensor_memory_and_the_current_stream(fake_cuda):
    rng = np.random.default_rng(20)
    a, b, la, lb = _make(rng, 5, 70, 6, 24, dtype=torch.float32, need_b=False)
    loss = pairwise_nll(a, b, la, lb, reduction="mean")
    (call,) = fake_cuda.calls
    assert call["a"] == a.data_ptr() and call["b"] == b.data_ptr()  # zero-copy
    assert (call["n"], call["N"], call["d"], call["dtype"]) == (5, 70, 6, "float32")
    assert call["stream"] == 7 and call["grad_b"] == 0 and call["grad_a"] != 0
    assert loss.dtype == torch.float32 and loss.shape == () and loss.requires_grad
    (ga,) = torch.autograd.grad(3 * loss, a)
    (ra,) = torch.autograd.grad(3 * pairwise_nll_reference(a, b, la, lb, reduction="mean"), a)
    assert torch.allclose(ga, ra, rtol=1e-4, atol=1e-7)
    with torch.no_grad():
        pairwise_nll(a, b, pack_labels(la), pack_labels(lb))
    assert fake_cuda.calls[-1]["grad_a"] == 0 and fake_cuda.calls[-1]["grad_b"] == 0


def test_cuda_glue_read_only_packed_labels(fake_cuda):
    rng = np.random.default_rng(21)
    a, b, la, lb = _make(rng, 3, 9, 2, 24)
    packed = pack_labels(lb)
    packed.bits.setflags(write=False)  # e.g. a memory-mapped dataset
    assert pairwise_nll(a, b, la, packed).item() == pytest.approx(pairwise_nll_reference(a, b, la, lb).item())


def test_cuda_glue_checks_layout_and_dtype(fake_cuda):
    native = pairwise_module._native_cuda
    a = torch.zeros(4, 6, dtype=F64)
    bits = pack_labels(np.ones((4, 3)))
    with pytest.raises(ValueError, match=r"a must be C-contiguous for the CUDA kernels \(call .contiguous\(\)\)"):
        native(a[:, ::2], a[:, :3].contiguous(), bits, bits, None, True, True)
    with pytest.raises(TypeError, match="a and b must both be float32 or float64 for the CUDA kernels, got "
                                        "torch.float64 and torch.float32"):
        native(a, a.float(), bits, bits, None, True, True)
    with pytest.raises(ValueError, match=r"shapes do not match: a \(4, 6\), b \(4, 5\)"):
        native(a, a[:, :5].contiguous(), bits, bits, None, True, True)
    with pytest.raises(ValueError, match=r"labels_b \(3, 1\) \(packed\)"):
        native(a, a, bits, bits[:3], None, True, True)
    assert not fake_cuda.calls


@pytest.mark.parametrize(
    "state, reason",
    [
        ((False, 0, ""), "xmhash was built without its CUDA kernels"),
        ((True, -35, "cudaErrorInsufficientDriver: CUDA driver version is insufficient"),
         r"the CUDA kernels are built but no usable NVIDIA driver was found \(cudaErrorInsufficientDriver"),
        ((True, 0, ""), "the CUDA kernels are built but no CUDA device is visible"),
    ],
)
def test_cuda_unavailable_says_why(probe, monkeypatch, state, reason):
    probe(*state)
    monkeypatch.setattr(pairwise_module._core, "cuda_pairwise_loss", lambda *args: pytest.fail("launched"),
                        raising=False)
    a, b, la, lb = _make(np.random.default_rng(0), 2, 3, 2, 8)
    with pytest.raises(RuntimeError, match=f"pairwise_nll got CUDA tensors but cannot run them natively: {reason}"):
        pairwise_module._NATIVE["cuda"](a, b, pack_labels(la), pack_labels(lb), None, True, False)


def test_cuda_without_cuda_kernels_raises_a_clear_error(monkeypatch):
    # Exercised through the dispatch table, so the message is checked on machines without a GPU too.
    monkeypatch.delattr(pairwise_module._core, "cuda_pairwise_loss", raising=False)
    a, b, la, lb = _make(np.random.default_rng(0), 2, 3, 2, 8)
    with pytest.raises(RuntimeError, match="pairwise_nll got CUDA tensors but cannot run them natively: .+; move the"):
        pairwise_module._NATIVE["cuda"](a, b, pack_labels(la), pack_labels(lb), None, True, False)


def test_cuda_this_machine_reports_its_real_reason():
    from xmhash import _cuda

    reason = _cuda.unavailable_reason()
    if reason is None:
        pytest.skip("a usable GPU is present")
    a, b, la, lb = _make(np.random.default_rng(0), 2, 3, 2, 8)
    with pytest.raises(RuntimeError) as err:
        pairwise_module._NATIVE["cuda"](a, b, pack_labels(la), pack_labels(lb), None, True, False)
    assert reason in str(err.value)


needs_kernels = pytest.mark.skipif(not pairwise_module._core.cuda_built, reason="built without the CUDA kernels")


@needs_kernels
def test_cuda_binding_rejects_bad_arguments_before_launching():
    core = pairwise_module._core
    args = dict(a=0, b=0, labels_a=0, labels_b=0, n=1, N=1, d=1, label_bytes=1, dtype="float32", scale=0.5,
                similarity_scale=1.0, similar_weight=1.0, dissimilar_weight=1.0, variant="nll", mean=False, loss=8,
                grad_a=0, grad_b=0, workspace=0, workspace_bytes=0, device=0, stream=0)
    with pytest.raises(ValueError, match="dtype must be 'float32' or 'float64', got 'float16'"):
        core.cuda_pairwise_loss(**{**args, "dtype": "float16"})
    with pytest.raises(ValueError, match="variant must be 'nll' or 'squared', got 'l2'"):
        core.cuda_pairwise_loss(**{**args, "variant": "l2"})
    for bad in ({"d": 0}, {"label_bytes": 0}, {"scale": float("inf")}, {"loss": 0}):  # before any CUDA call
        with pytest.raises(RuntimeError, match=r"xmhash_cuda_pairwise_loss failed: cudaErrorInvalidValue"):
            core.cuda_pairwise_loss(**{**args, **bad})
    with pytest.raises(RuntimeError, match="xmhash_cuda_pairwise_workspace failed: cudaErrorInvalidValue"):
        core.cuda_pairwise_workspace(2, 3, 4, 2, True, True)


@needs_kernels
def test_cuda_workspace_stays_small():
    """Memory-light: the workspace is the extra gradient slots (at most 8 MiB) and one double per block; for
    DCMH's n = 128, N = 10,000 the reference holds several n x N matrices of 4.9 MiB each (float32)."""
    ws = pairwise_module._core.cuda_pairwise_workspace
    for d in (16, 64, 512):
        for element_bytes in (4, 8):
            assert ws(128, 10_000, d, element_bytes, True, True) <= (8 << 20) + 2 * 256 + 512 * 8
    assert ws(128, 10_000, 64, 4, False, False) <= 512 * 8  # no gradients: per-block losses only
    assert ws(1, 1, 1, 4, True, True) == 8
    assert ws(0, 5, 3, 8, True, True) == 0


def _on_gpu(*tensors):
    return [t.detach().cuda().requires_grad_(t.requires_grad) for t in tensors]


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize(
    "n,N,d,c",
    [(1, 1, 1, 1), (1, 300, 3, 24), (300, 1, 5, 24), (17, 129, 16, 7), (64, 64, 16, 64), (65, 65, 17, 65),
     (128, 10_000, 64, 24), (130, 3000, 512, 100), (3000, 130, 40, 24)],
)
@pytest.mark.parametrize("variant", ["nll", "squared"])
def test_cuda_equals_reference_and_cpu(dtype, n, N, d, c, variant):
    rng = np.random.default_rng(n + N + d)
    a, b, la, lb = _make(rng, n, N, d, c, dtype=dtype, magnitude=0.3)
    ga_, gb_ = _on_gpu(a, b)
    kw = dict(variant=variant, reduction="mean", similarity_scale=0.999, similar_weight=2.0, dissimilar_weight=0.5)
    _assert_matches_reference(ga_, gb_, la.cuda(), lb.cuda(), rtol=RTOL[dtype], **kw)
    loss = pairwise_nll(ga_, gb_, la, lb, **kw)
    assert loss.is_cuda
    cpu = pairwise_nll(a, b, la, lb, **kw)
    got, want = _grads(loss, ga_, gb_), _grads(cpu, a, b)
    bound = _bounds(a, b, la, lb, scale=0.5, variant=variant, reduction="mean", similar_weight=2.0,
                    dissimilar_weight=0.5)
    assert abs(loss.item() - cpu.item()) <= 2 * RTOL[dtype] * bound[0]
    for g, w, bd in zip(got, want, bound[1:]):
        assert ((g.cpu().to(F64) - w.to(F64)).abs() <= 2 * RTOL[dtype] * bd + 1e-300).all()


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("density", [0.0, 1.0], ids=["all-dissimilar", "all-similar"])
def test_cuda_huge_theta_stays_finite(dtype, density):
    rng = np.random.default_rng(1)
    a, b, la, lb = _make(rng, 9, 70, 4, 24, dtype=dtype, density=density)
    with torch.no_grad():
        a.mul_(1e4 / (0.5 * (a @ b.T)).abs().max())
    for variant in ("nll", "squared"):
        _assert_matches_reference(*_on_gpu(a, b), la.cuda(), lb.cuda(), rtol=RTOL[dtype], variant=variant)


@pytest.mark.cuda
def test_cuda_results_are_reproducible_bit_for_bit():
    rng = np.random.default_rng(7)
    a, b, la, lb = _on_gpu(*_make(rng, 128, 10_000, 64, 24, dtype=torch.float32))
    bits_a, bits_b = pack_labels(la), pack_labels(lb)
    outs = []
    for _ in range(3):
        loss = pairwise_nll(a, b, bits_a, bits_b)
        outs.append((loss.item(), *_grads(loss, a, b)))
    for o in outs[1:]:
        assert o[0] == outs[0][0] and torch.equal(o[1], outs[0][1]) and torch.equal(o[2], outs[0][2])


@pytest.mark.cuda
def test_cuda_side_stream_no_grad_and_strided_inputs():
    rng = np.random.default_rng(14)
    a, b, la, lb = _make(rng, 8, 100, 16, 24, dtype=torch.float32)
    ca, cb = _on_gpu(a, b)
    want = pairwise_nll(a.detach(), b.detach(), la, lb).item()
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())  # the inputs were copied on the default stream
    with torch.cuda.stream(s), torch.no_grad():
        loss = pairwise_nll(ca, cb, la.cuda(), lb.cuda())
    s.synchronize()
    assert loss.item() == pytest.approx(want, rel=1e-5)
    wide = torch.cat([cb, cb], 1).detach().requires_grad_(True)
    strided = wide[:, ::2]
    assert not strided.is_contiguous()
    ref_b = b.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(pairwise_nll(ca.detach(), strided, la, lb), wide)
    (r,) = torch.autograd.grad(pairwise_nll(a.detach(), ref_b, la, lb), ref_b)
    assert torch.allclose(g[:, ::2].cpu(), r, rtol=1e-4, atol=1e-6) and not g[:, 1::2].any()
