"""The CUDA path.

Without a GPU (this is all CI and the dev machines have) the tests that run are the CPU ones: the selection
logic the kernels share with the CPU (topk_select.hpp, code_words.hpp), run by its sequential CPU model
`_core._select_by_units` against the numpy oracles; the device="..." dispatch; and the RuntimeError for each
reason the GPU can be missing. Tests marked `cuda` compare every CUDA result with the CPU result on the same
inputs; conftest skips them, with the reason, when no usable GPU (or no CUDA-enabled torch) is present.
"""

import contextlib
import ctypes
import types

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import xmhash
from xmhash import _cuda
from xmhash._native import _core
from reference import ref_cdist, ref_knn, ref_range


def _codes(rng, n, nbytes, ties):
    if ties:  # few distinct codes: maximal ties and duplicates
        pool = rng.integers(0, 256, (3, nbytes), dtype=np.uint8)
        return pool[rng.integers(0, 3, n)]
    return rng.integers(0, 256, (n, nbytes), dtype=np.uint8)


def _misaligned(a: np.ndarray) -> np.ndarray:
    """The same codes, C-contiguous, starting one byte past an aligned address: the 1-byte-word path."""
    buf = np.empty(a.size + 1, dtype=np.uint8)
    view = buf[1:].reshape(a.shape)
    view[...] = a
    return view


def _data(nq, nb, nbytes, seed=0, ties=False):
    rng = np.random.default_rng(seed)
    return _codes(rng, nq, nbytes, ties), _codes(rng, nb, nbytes, ties)


def _assert_range(res, ref):
    np.testing.assert_array_equal(np.asarray(res.lims), ref.lims)
    np.testing.assert_array_equal(np.asarray(res.distances), ref.distances)
    np.testing.assert_array_equal(np.asarray(res.indices), ref.indices)


# ---------------------------------------------------------------------------------------- shared logic, on CPU


@st.composite
def selection_cases(draw):
    # 1/2/4/8/16/32 bytes hit the fixed-size 8-byte-word paths (where aligned), 4/12 the 4-byte words, odd
    # sizes the byte path; larger sizes the run-time word loops.
    nbytes = draw(st.sampled_from([1, 2, 3, 4, 5, 8, 12, 16, 24, 32, 40]))
    nq = draw(st.integers(0, 4))
    nb = draw(st.integers(0, 300))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    ties = draw(st.booleans())
    q, db = _codes(rng, nq, nbytes, ties), _codes(rng, nb, nbytes, ties)
    if draw(st.booleans()):
        q, db = _misaligned(q), _misaligned(db)
    limit = draw(st.integers(0, nbytes * 8))
    k = draw(st.one_of(st.just(0), st.integers(1, nb + 3)))
    units = draw(st.integers(1, 40))
    min_chunk = draw(st.sampled_from([1, 32, 64, 0]))  # 0: the GPU's own minimum chunk
    return q, db, limit, k, units, min_chunk


@given(selection_cases())
@example((np.zeros((2, 8), np.uint8), np.zeros((200, 8), np.uint8), 0, 7, 5, 1))  # all tied at distance 0
@example((np.zeros((1, 8), np.uint8), np.zeros((200, 8), np.uint8), 64, 200, 7, 1))  # k = nb, all tied
def test_gpu_selection_logic_matches_the_reference(case):
    """count per unit -> scan over units and distances -> fill in index order gives the CPU's CSR exactly,
    whatever the cut into units, the tie pattern, k or the distance path."""
    q, db, limit, k, units, min_chunk = case
    lims, d, i = _core._select_by_units(q, db, limit, k, units, min_chunk)
    rl, rd, ri = ref_range(np.ascontiguousarray(q), np.ascontiguousarray(db), limit, k or None)
    np.testing.assert_array_equal(lims, rl)
    np.testing.assert_array_equal(d, rd)
    np.testing.assert_array_equal(i, ri)


def test_gpu_selection_logic_gives_the_knn_rows():
    """k-NN is the selection with limit = nbits: the kept entries are the CPU's k-NN row (padding is the
    launcher's)."""
    rng = np.random.default_rng(1)
    q, db = _codes(rng, 5, 8, False), _codes(rng, 1000, 8, False)
    for k in (1, 10, 100, 999, 1000):
        lims, d, i = _core._select_by_units(q, db, 64, k, 16, 32)
        D, I = xmhash.knn(q, db, k)
        np.testing.assert_array_equal(d.reshape(5, k), D)
        np.testing.assert_array_equal(i.reshape(5, k), I)


def test_gpu_selection_logic_default_cut_on_a_larger_database():
    rng = np.random.default_rng(2)
    q, db = _codes(rng, 3, 16, False), _codes(rng, 20_000, 16, False)
    for limit, k in ((128, 50), (50, 0), (40, 3)):
        lims, d, i = _core._select_by_units(q, db, limit, k, 100)  # GPU minimum chunk: 39 units here
        rl, rd, ri = ref_range(q, db, limit, k or None)
        np.testing.assert_array_equal(lims, rl)
        np.testing.assert_array_equal(d, rd)
        np.testing.assert_array_equal(i, ri)


def test_gpu_selection_logic_rejects_bad_arguments():
    q = np.zeros((1, 8), np.uint8)
    with pytest.raises(ValueError, match="limit must be >= 0, got -1"):
        _core._select_by_units(q, q, -1, 0, 1)
    with pytest.raises(ValueError, match="same code width"):
        _core._select_by_units(q, np.zeros((1, 4), np.uint8), 1, 0, 1)


# ---------------------------------------------------------------------------------------- device selection


@pytest.fixture
def probe(monkeypatch):
    """Replace the GPU probe: probe(built, devices_or_minus_error, error_text)."""

    def set_probe(built, n, error=""):
        monkeypatch.setattr(_cuda, "_probe", lambda: (built, n, error))

    return set_probe


GPU_CALLS = [
    lambda q, db, dev: xmhash.cdist(q, db, device=dev),
    lambda q, db, dev: xmhash.knn(q, db, 3, device=dev),
    lambda q, db, dev: xmhash.range_search(q, db, 4, device=dev),
    lambda q, db, dev: xmhash.search(q, db, k=2, radius=4, device=dev),
    lambda q, db, dev: xmhash.search(q, db, k=2, device=dev),
]


@pytest.mark.parametrize("call", GPU_CALLS)
@pytest.mark.parametrize(
    "state, message",
    [
        ((False, 0, ""), r"device='cuda' is unavailable: xmhash was built without its CUDA kernels"),
        (
            (True, -35, "cudaErrorInsufficientDriver: CUDA driver version is insufficient for CUDA runtime version"),
            r"device='cuda' is unavailable: the CUDA kernels are built but no usable NVIDIA driver was found "
            r"\(cudaErrorInsufficientDriver: ",
        ),
        ((True, -100, "cudaErrorNoDevice: no CUDA-capable device is detected"),
         r"device='cuda' is unavailable: the CUDA kernels are built but no CUDA device is visible"),
        ((True, 0, ""), r"device='cuda' is unavailable: the CUDA kernels are built but no CUDA device is visible"),
    ],
)
def test_cuda_unavailable_says_why(probe, call, state, message):
    probe(*state)
    db = xmhash.pack(np.eye(16, dtype=bool))
    with pytest.raises(RuntimeError, match=message):
        call(db, db, "cuda")
    with pytest.raises(RuntimeError, match=message):
        call(db, db, "cuda:0")


def _arrays(result):
    if isinstance(result, tuple):
        return result
    if isinstance(result, xmhash.RangeResult):
        return result.lims, result.distances, result.indices
    return (result,)


@pytest.mark.parametrize("call", GPU_CALLS)
def test_cpu_path_unaffected_without_gpu(probe, call):
    probe(False, 0)
    db = xmhash.pack(np.eye(16, dtype=bool))
    ref = _arrays(call(db, db, "cpu"))
    out = _arrays(call(db, db, "auto"))  # numpy inputs: the CPU path; "auto" never consults the probe
    assert len(out) == len(ref) and all(isinstance(a, np.ndarray) for a in out)
    for a, b in zip(out, ref):
        np.testing.assert_array_equal(a, b)


def test_auto_never_probes_for_numpy_inputs(monkeypatch):
    def fail():
        raise AssertionError("probed the GPU for numpy inputs")

    monkeypatch.setattr(_cuda, "_probe", fail)
    db = xmhash.pack(np.eye(16, dtype=bool))
    xmhash.knn(db, db, 2)
    xmhash.search(db, db, radius=1, device="auto")


@pytest.mark.parametrize("device", ["gpu", "cuda:x", "", 0, None])
def test_bad_device_is_a_value_error(device):
    db = xmhash.pack(np.eye(16, dtype=bool))
    with pytest.raises(ValueError, match=r"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got"):
        xmhash.knn(db, db, 2, device=device)


def test_this_machine_reports_its_real_reason():
    reason = _cuda.unavailable_reason()
    if reason is None:
        pytest.skip("a usable GPU is present")
    db = xmhash.pack(np.eye(16, dtype=bool))
    with pytest.raises(RuntimeError) as err:
        xmhash.knn(db, db, 2, device="cuda")
    assert str(err.value) == f"device='cuda' is unavailable: {reason}"


def test_build_info_reports_cuda_facts():
    info = xmhash.build_info()
    assert info["cuda"] == bool(_core.cuda_built)
    assert info["cuda_devices"] == len(info["cuda_device_names"])
    if info["cuda"]:
        archs = info["cuda_architectures"].split(",")
        assert archs and all(a.strip() for a in archs)
        assert info["cuda_runtime_version"] >= 11000
    else:
        assert info["cuda_architectures"] == "" and info["cuda_devices"] == 0


# ---------------------------------------------------------------------------------------- the Python glue, faked GPU
# The launchers replaced by CPU fakes with the same signatures (raw addresses, shapes, device, stream) that
# read and write memory at those addresses; torch CPU tensors stand in for CUDA tensors. This checks what
# python/xmhash/_cuda.py does around the kernels (input checks, packing on the device, pointers, the
# count -> total -> fill protocol of radius lookup, result types) without a GPU; the selection itself is the
# CPU model of the kernels' logic.


def _mem(addr, n, dtype):
    dtype = np.dtype(dtype)
    if n == 0:
        return np.zeros(0, dtype)
    return np.frombuffer((ctypes.c_char * (n * dtype.itemsize)).from_address(addr), dtype=dtype)


def _fake_inputs(q, nq, db, nb, cs):
    return _mem(q, nq * cs, np.uint8).reshape(nq, cs), _mem(db, nb * cs, np.uint8).reshape(nb, cs)


def _fake_cdist(q, nq, db, nb, cs, out, device, stream):
    qa, dba = _fake_inputs(q, nq, db, nb, cs)
    _mem(out, nq * nb, np.int32)[:] = ref_cdist(qa, dba).ravel()


def _fake_knn(q, nq, db, nb, cs, k, D, I, ws, ws_bytes, device, stream):
    assert ws_bytes == 4096 and ws != 0
    qa, dba = _fake_inputs(q, nq, db, nb, cs)
    lims, d, i = _core._select_by_units(qa, dba, cs * 8, k, 5, 32)
    Dm, Im = _mem(D, nq * k, np.int32).reshape(nq, k), _mem(I, nq * k, np.int64).reshape(nq, k)
    Dm[:], Im[:] = cs * 8 + 1, -1
    for row in range(nq):
        a, b = lims[row], lims[row + 1]
        Dm[row, : b - a], Im[row, : b - a] = d[a:b], i[a:b]


def _fake_range_count(q, nq, db, nb, cs, limit, k, lims, ws, ws_bytes, device, stream):
    _mem(lims, nq + 1, np.int64)[:] = _core._select_by_units(*_fake_inputs(q, nq, db, nb, cs), limit, k, 5, 32)[0]


def _fake_range_fill(q, nq, db, nb, cs, limit, k, lims, D, I, ws, ws_bytes, device, stream):
    rl, rd, ri = _core._select_by_units(*_fake_inputs(q, nq, db, nb, cs), limit, k, 5, 32)
    np.testing.assert_array_equal(_mem(lims, nq + 1, np.int64), rl)  # the lims range_count wrote
    _mem(D, rd.size, np.int32)[:], _mem(I, ri.size, np.int64)[:] = rd, ri


def _fake_metric_histograms(q, nq, db, nb, cs, ql, dl, lb, qc, dc, n_at, r_at, device, stream):
    qa, dba = _fake_inputs(q, nq, db, nb, cs)
    if ql:
        rel = (_mem(ql, nq * lb, np.uint8).reshape(nq, 1, lb) & _mem(dl, nb * lb, np.uint8).reshape(1, nb, lb)).any(-1)
    else:
        rel = _mem(qc, nq, np.int64)[:, None] == _mem(dc, nb, np.int64)[None, :]
    dist, nbins = ref_cdist(qa, dba), cs * 8 + 1
    count = lambda rows: np.concatenate([np.bincount(r, minlength=nbins) for r in rows])  # noqa: E731
    _mem(n_at, nq * nbins, np.int32)[:] = count(dist)
    _mem(r_at, nq * nbins, np.int32)[:] = count([r[m] for r, m in zip(dist, rel)])


@pytest.fixture
def fake_gpu(monkeypatch):
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(_cuda, "_probe", lambda: (True, 1, ""))
    monkeypatch.setattr(_cuda, "_is_cuda_tensor", _cuda.is_torch_tensor)
    monkeypatch.setattr(_cuda, "_target_device", lambda torch, device, inputs: torch.device("cpu"))
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: types.SimpleNamespace(cuda_stream=0))
    monkeypatch.setattr(torch.cuda, "device", lambda device: contextlib.nullcontext())
    fakes = dict(cuda_cdist=_fake_cdist, cuda_knn=_fake_knn, cuda_range_count=_fake_range_count,
                 cuda_range_fill=_fake_range_fill, cuda_metric_histograms=_fake_metric_histograms,
                 cuda_select_workspace=lambda nq, nb, cs, limit, k, device: 4096)
    for name, fn in fakes.items():
        monkeypatch.setattr(_core, name, fn, raising=False)
    return torch


@pytest.mark.parametrize("nq, nb", [(0, 5), (4, 0), (1, 1), (6, 300)])
def test_glue_numpy_inputs_on_device_cuda(fake_gpu, nq, nb):
    q, db = _data(nq, nb, 8, seed=nq + nb, ties=nb == 300)
    out = xmhash.cdist(q, db, device="cuda")
    assert isinstance(out, np.ndarray)
    np.testing.assert_array_equal(out, xmhash.cdist(q, db))
    for k in (1, 4, nb + 2):
        for got, ref in zip(xmhash.knn(q, db, k, device="cuda"), xmhash.knn(q, db, k)):
            assert isinstance(got, np.ndarray) and got.dtype == ref.dtype
            np.testing.assert_array_equal(got, ref)
    for radius in (0, 30, 64, 99):
        _assert_range(xmhash.range_search(q, db, radius, device="cuda"), xmhash.range_search(q, db, radius))
        _assert_range(xmhash.search(q, db, k=3, radius=radius, device="cuda"), xmhash.search(q, db, k=3, radius=radius))


def test_glue_tensor_inputs_give_tensors(fake_gpu):
    torch = fake_gpu
    rng = np.random.default_rng(8)
    x, y = rng.standard_normal((5, 64)).astype(np.float32), rng.standard_normal((200, 64)).astype(np.float32)
    x[0, :3] = 0.0  # x >= 0 -> 1 on the device too
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    D, I = xmhash.knn(tx, ty, 7)  # "auto": tensors on the (fake) device
    assert torch.is_tensor(D) and D.dtype == torch.int32 and I.dtype == torch.int64
    rD, rI = xmhash.knn(x, y, 7)
    np.testing.assert_array_equal(D.numpy(), rD)
    np.testing.assert_array_equal(I.numpy(), rI)
    np.testing.assert_array_equal(_cuda._pack_on_device(torch, tx, "x").numpy(), xmhash.pack(x))
    np.testing.assert_array_equal(_cuda._pack_on_device(torch, ty > 0, "x").numpy(), xmhash.pack(y > 0))
    codes = torch.from_numpy(xmhash.pack(y))
    strided = torch.cat([codes, codes], 1)[:, 8:]
    assert not strided.is_contiguous()
    np.testing.assert_array_equal(xmhash.knn(tx[0], strided, 7)[1].numpy(), rI[:1])  # 1-D query, strided db
    res = xmhash.range_search(tx, codes, 25)
    assert torch.is_tensor(res.lims) and torch.is_tensor(res.counts)
    ref = xmhash.range_search(x, y, 25)
    _assert_range(res, ref)
    np.testing.assert_array_equal(res.counts.numpy(), ref.counts)
    np.testing.assert_array_equal(res[1][0].numpy(), ref[1][0])


def test_glue_bad_device_inputs(fake_gpu):
    torch = fake_gpu
    t = torch.zeros((4, 8), dtype=torch.uint8)
    with pytest.raises(TypeError, match="queries must be packed uint8 codes, or bool / floating-point bits to pack, "
                                        "got dtype torch.int32"):
        xmhash.knn(t.to(torch.int32), t, 2)
    with pytest.raises(ValueError, match="database contains NaN"):
        xmhash.knn(torch.zeros(2, 8), torch.full((3, 8), float("nan")), 2)
    with pytest.raises(ValueError, match="same code width, got 64 and 32 bits"):
        xmhash.knn(t, t[:, :4], 2)
    with pytest.raises(ValueError, match="must have a number of bits .* positive multiple of 8, got 12"):
        xmhash.knn(torch.zeros(2, 12), t, 2)
    with pytest.raises(ValueError, match="queries must be a 2-D array"):
        xmhash.knn(torch.zeros((2, 2, 8), dtype=torch.uint8), t, 2)
    with pytest.raises(ValueError, match="k must be >= 1, got 0"):
        xmhash.knn(t, t, 0)
    with pytest.raises(ValueError, match="radius must be >= 0, got -1"):
        xmhash.range_search(t, t, -1)
    with pytest.raises(ValueError, match=r"threads must be an int >= 0"):
        xmhash.knn(t, t, 2, threads=-1)


def test_glue_bad_k_is_rejected_before_copying_inputs_to_the_device(fake_gpu, monkeypatch):
    copies = []
    monkeypatch.setattr(_cuda, "_host_to_device", lambda torch, arr, dev: copies.append(arr.shape))
    q, db = _data(3, 50, 8)
    with pytest.raises(ValueError, match="k must be >= 1, got 0"):
        xmhash.knn(q, db, 0, device="cuda")
    with pytest.raises(ValueError, match="k must be >= 1, got 0"):
        xmhash.search(q, db, k=0, radius=3, device="cuda")
    with pytest.raises(TypeError, match="k must be an int, got float"):
        xmhash.search(q, db, k=2.0, radius=3, device="cuda")
    assert copies == []


def test_glue_index_database_including_mmap(fake_gpu, tmp_path):
    q, db = _data(3, 100, 16, seed=9)
    index = xmhash.HammingIndex(128)
    index.add(db)
    index.save(tmp_path / "db.xmh")
    mapped = xmhash.HammingIndex.load(tmp_path / "db.xmh", mmap=True)  # read-only codes
    for idx in (index, mapped):
        for got, ref in zip(xmhash.knn(q, idx, 5, device="cuda"), xmhash.knn(q, db, 5)):
            np.testing.assert_array_equal(got, ref)


def test_glue_target_device(monkeypatch):
    torch = pytest.importorskip("torch")

    class FakeCudaTensor:
        def __init__(self, index):
            self.device = torch.device("cuda", index)

    monkeypatch.setattr(_cuda, "_is_cuda_tensor", lambda x: isinstance(x, FakeCudaTensor))
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)
    pick = lambda device, *inputs: _cuda._target_device(torch, device, inputs)  # noqa: E731
    arr = np.zeros((1, 8), np.uint8)
    assert pick("cuda", arr, arr) == torch.device("cuda", 1)  # the current device
    assert pick("cuda:0", arr, arr) == torch.device("cuda", 0)
    assert pick("auto", FakeCudaTensor(0), arr) == torch.device("cuda", 0)  # where the tensors are
    assert pick("cuda:1", FakeCudaTensor(1), FakeCudaTensor(1)) == torch.device("cuda", 1)
    with pytest.raises(ValueError, match=r"device='cuda:2': only 2 CUDA device\(s\) visible"):
        pick("cuda:2", arr, arr)
    with pytest.raises(ValueError, match=r"inputs are on different devices: \['cuda:0', 'cuda:1'\]"):
        pick("auto", FakeCudaTensor(0), FakeCudaTensor(1))
    with pytest.raises(ValueError, match="device='cuda:0' was given tensors on cuda:1"):
        pick("cuda:0", FakeCudaTensor(1), arr)


@pytest.mark.parametrize("label_form", ["bits", "class"])
def test_glue_metric_histograms(fake_gpu, label_form):
    rng = np.random.default_rng(10)
    q, db = _data(4, 90, 2, seed=10)
    if label_form == "bits":
        ql, dl = xmhash.pack(rng.random((4, 16)) < 0.2), xmhash.pack(rng.random((90, 16)) < 0.2)
        rel = (ql[:, None, :] & dl[None, :, :]).any(-1)
    else:
        ql, dl = rng.integers(0, 3, 4), rng.integers(0, 3, 90)
        rel = ql[:, None] == dl[None, :]
    n_at, r_at = _cuda.metric_histograms(q, db, ql, dl, device="cuda")
    dist = ref_cdist(q, db)
    np.testing.assert_array_equal(n_at, np.stack([np.bincount(r, minlength=17) for r in dist]))
    np.testing.assert_array_equal(r_at, np.stack([np.bincount(r[m], minlength=17) for r, m in zip(dist, rel)]))
    with pytest.raises(ValueError, match="one row per code"):
        _cuda.metric_histograms(q, db, ql[:3], dl, device="cuda")
    with pytest.raises(TypeError, match="q_labels must be packed label rows"):
        _cuda.metric_histograms(q, db, ql.astype(np.float32), dl, device="cuda")


# ---------------------------------------------------------------------------------------- on a GPU

CODE_SIZES = [1, 3, 4, 8, 12, 16, 24, 32, 65, 512]


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


@pytest.mark.cuda
@pytest.mark.parametrize("nbytes", CODE_SIZES)
@pytest.mark.parametrize("nq, nb", [(0, 10), (1, 0), (1, 1), (7, 1000), (300, 5000), (1, 200_000)])
def test_cuda_cdist_knn_range_equal_cpu(nbytes, nq, nb):
    q, db = _data(nq, nb, nbytes, seed=nbytes * 1000 + nq)
    np.testing.assert_array_equal(xmhash.cdist(q, db, device="cuda"), xmhash.cdist(q, db))
    for k in (1, 10, 100, nb + 5):
        D, I = xmhash.knn(q, db, k, device="cuda")
        rD, rI = xmhash.knn(q, db, k)
        assert D.dtype == np.int32 and I.dtype == np.int64
        np.testing.assert_array_equal(D, rD)
        np.testing.assert_array_equal(I, rI)
    nbits = nbytes * 8
    for radius in (0, 2, nbits // 2 - 4, nbits // 2, nbits, nbits + 3):
        radius = max(radius, 0)
        _assert_range(xmhash.range_search(q, db, radius, device="cuda"), xmhash.range_search(q, db, radius))
        _assert_range(xmhash.search(q, db, k=5, radius=radius, device="cuda"), xmhash.search(q, db, k=5, radius=radius))


@pytest.mark.cuda
@pytest.mark.parametrize("nbytes", [8, 16])
def test_cuda_ties_any_k_single_query(nbytes):
    """All codes tied: the kept entries are the smallest indices; k up to nb, one query over many units."""
    q, db = _data(2, 300_000, nbytes, ties=True)
    for k in (1, 1000, 65_536, 300_000):
        D, I = xmhash.knn(q[:1], db, k, device="cuda")
        rD, rI = xmhash.knn(q[:1], db, k)
        np.testing.assert_array_equal(D, rD)
        np.testing.assert_array_equal(I, rI)
    _assert_range(xmhash.range_search(q, db, nbytes * 4, device="cuda"), xmhash.range_search(q, db, nbytes * 4))


@pytest.mark.cuda
def test_cuda_long_codes_use_global_counters():
    """16384-bit codes: 16385 distance bins do not fit in shared memory (global-memory counters path)."""
    q, db = _data(3, 3000, 2048)
    for k in (1, 50, 3000):
        np.testing.assert_array_equal(xmhash.knn(q, db, k, device="cuda")[1], xmhash.knn(q, db, k)[1])
    _assert_range(xmhash.range_search(q, db, 8150, device="cuda"), xmhash.range_search(q, db, 8150))


@pytest.mark.cuda
def test_cuda_many_queries_run_in_batches():
    """4096-bit codes x 20000 queries: the per-unit counts exceed one batch's budget."""
    q, db = _data(20_000, 1500, 512, seed=3)
    D, I = xmhash.knn(q, db, 7, device="cuda")
    rD, rI = xmhash.knn(q, db, 7)
    np.testing.assert_array_equal(D, rD)
    np.testing.assert_array_equal(I, rI)
    _assert_range(xmhash.range_search(q, db, 2000, device="cuda"), xmhash.range_search(q, db, 2000))


@pytest.mark.cuda
def test_cuda_tensors_in_tensors_out(torch):
    q, db = _data(50, 4000, 8, seed=5)
    tq, tdb = torch.from_numpy(q).cuda(), torch.from_numpy(db).cuda()
    D, I = xmhash.knn(tq, tdb, 10)  # device="auto": CUDA tensors run on the GPU
    assert D.is_cuda and I.is_cuda and D.dtype == torch.int32 and I.dtype == torch.int64
    rD, rI = xmhash.knn(q, db, 10)
    np.testing.assert_array_equal(D.cpu().numpy(), rD)
    np.testing.assert_array_equal(I.cpu().numpy(), rI)
    res = xmhash.range_search(tq, tdb, 20)
    assert res.lims.is_cuda
    _assert_range(
        type(res)(res.lims.cpu().numpy(), res.distances.cpu().numpy(), res.indices.cpu().numpy()),
        xmhash.range_search(q, db, 20),
    )
    np.testing.assert_array_equal(xmhash.cdist(tq, tdb).cpu().numpy(), ref_cdist(q, db))
    np.testing.assert_array_equal(res.counts.cpu().numpy(), np.diff(xmhash.range_search(q, db, 20).lims))
    with pytest.raises(ValueError, match="device='cpu' was given CUDA tensors"):
        xmhash.knn(tq, tdb, 3, device="cpu")


@pytest.mark.cuda
def test_cuda_inputs_packed_strided_mixed_and_on_a_side_stream(torch):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((40, 64)).astype(np.float32)
    y = rng.standard_normal((3000, 64)).astype(np.float32)
    ref = xmhash.knn(x, y, 5)
    tx, ty = torch.from_numpy(x).cuda(), torch.from_numpy(y).cuda()
    D, I = xmhash.knn(tx, ty, 5)  # floats packed on the device, x >= 0 -> 1
    np.testing.assert_array_equal(I.cpu().numpy(), ref[1])
    np.testing.assert_array_equal(xmhash.knn(tx > 0, ty >= 0, 5)[1].cpu().numpy(), xmhash.knn(x > 0, y >= 0, 5)[1])
    codes = torch.from_numpy(xmhash.pack(y)).cuda()
    strided = torch.cat([codes, codes], 1)[:, :8]  # not contiguous: copied once
    np.testing.assert_array_equal(xmhash.knn(tx, strided, 5)[1].cpu().numpy(), ref[1])
    np.testing.assert_array_equal(xmhash.knn(tx, xmhash.pack(y), 5)[1].cpu().numpy(), ref[1])  # mixed
    s = torch.cuda.Stream()
    with torch.cuda.stream(s):
        D, I = xmhash.knn(tx, ty, 5)
    s.synchronize()
    np.testing.assert_array_equal(I.cpu().numpy(), ref[1])
    with pytest.raises(TypeError, match="queries must be packed uint8 codes"):
        xmhash.knn(tx.to(torch.int32), ty, 5)
    with pytest.raises(ValueError, match="database contains NaN"):
        xmhash.knn(tx, ty.clone().fill_(float("nan")), 5)
    with pytest.raises(ValueError, match="same code width"):
        xmhash.knn(tx, ty[:, :32], 5)


@pytest.mark.cuda
def test_cuda_index_database_and_numpy_device_cuda():
    q, db = _data(20, 5000, 16, seed=7)
    index = xmhash.HammingIndex(128)
    index.add(db)
    D, I = xmhash.knn(q, index, 9, device="cuda")
    assert isinstance(D, np.ndarray)
    rD, rI = xmhash.knn(q, db, 9)
    np.testing.assert_array_equal(D, rD)
    np.testing.assert_array_equal(I, rI)


@pytest.mark.cuda
@pytest.mark.parametrize("nbytes", [2, 8, 16, 1024])
@pytest.mark.parametrize("label_form", ["bits", "class"])
def test_cuda_metric_histograms_equal_numpy(nbytes, label_form):
    rng = np.random.default_rng(nbytes)
    q, db = _data(30, 4000, nbytes, seed=nbytes)
    if label_form == "bits":
        ql = xmhash.pack(rng.random((30, 24)) < 0.1)
        dl = xmhash.pack(rng.random((4000, 24)) < 0.1)
        rel = (np.bitwise_and(ql[:, None, :], dl[None, :, :]) != 0).any(-1)
    else:
        ql, dl = rng.integers(0, 5, 30), rng.integers(0, 5, 4000)
        rel = ql[:, None] == dl[None, :]
    n_at, r_at = _cuda.metric_histograms(q, db, ql, dl, device="cuda")
    dist = ref_cdist(q, db)
    nbins = nbytes * 8 + 1
    ref_n = np.stack([np.bincount(row, minlength=nbins) for row in dist])
    ref_r = np.stack([np.bincount(row[m], minlength=nbins) for row, m in zip(dist, rel)])
    np.testing.assert_array_equal(n_at, ref_n)
    np.testing.assert_array_equal(r_at, ref_r)


@pytest.mark.cuda
def test_cuda_reference_oracles_agree_on_random_shapes():
    """A sweep of small random shapes through the numpy oracles directly (not only the CPU engine)."""
    for seed in range(20):
        rng = np.random.default_rng(seed)
        nbytes, nq, nb = int(rng.integers(1, 41)), int(rng.integers(0, 10)), int(rng.integers(0, 400))
        q, db = _codes(rng, nq, nbytes, seed % 2 == 0), _codes(rng, nb, nbytes, seed % 2 == 0)
        k = int(rng.integers(1, nb + 3))
        radius = int(rng.integers(0, nbytes * 8 + 1))
        D, I = xmhash.knn(q, db, k, device="cuda")
        rD, rI = ref_knn(q, db, k)
        np.testing.assert_array_equal(D, rD)
        np.testing.assert_array_equal(I, rI)
        res = xmhash.range_search(q, db, radius, device="cuda")
        rl, rd, ri = ref_range(q, db, radius)
        np.testing.assert_array_equal(res.lims, rl)
        np.testing.assert_array_equal(res.distances, rd)
        np.testing.assert_array_equal(res.indices, ri)
