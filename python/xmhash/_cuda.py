"""GPU execution of the search API.

torch CUDA tensors reach the kernels without copies: the binding gets each tensor's ``data_ptr()``, its device
index and ``torch.cuda.current_stream(device).cuda_stream``, and the kernels run asynchronously on that stream,
so they order correctly with the caller's torch work. Outputs (and the kernels' workspace) are torch tensors
allocated on the same device, i.e. by torch's caching allocator. numpy / CPU inputs are packed and validated
on the host exactly as on the CPU path, copied to the device once, and the results copied back to numpy.

The native module does not link torch (it links the CUDA runtime statically), so torch is imported only here,
and only when the GPU is actually used.
"""

from __future__ import annotations

import numpy as np

from ._native import _core
from .codes import codes_or_pack, is_torch_tensor

__all__ = ["cdist", "knn", "metric_histograms", "range_search", "require_cuda", "unavailable_reason", "use_cuda"]

_CUDA_ERROR_NO_DEVICE = 100  # cudaErrorNoDevice: a driver answered but sees no device


def _probe() -> tuple[bool, int, str]:
    """(kernels built, visible devices or minus a cudaError_t code, that error's text)."""
    if not _core.cuda_built:
        return False, 0, ""
    n = _core.cuda_device_count()
    return True, n, f"{_core.cuda_error_name(-n)}: {_core.cuda_error_string(-n)}" if n < 0 else ""


def unavailable_reason() -> str | None:
    """Why ``device="cuda"`` cannot run in this process, or ``None`` when it can."""
    built, n, error = _probe()
    if not built:
        return (
            "xmhash was built without its CUDA kernels (no CUDA compiler at build time, or XMHASH_CUDA=OFF); "
            "rebuild with nvcc on PATH and -Ccmake.define.XMHASH_CUDA=ON"
        )
    if n < 0 and -n != _CUDA_ERROR_NO_DEVICE:
        return f"the CUDA kernels are built but no usable NVIDIA driver was found ({error})"
    if n <= 0:
        return "the CUDA kernels are built but no CUDA device is visible (check CUDA_VISIBLE_DEVICES)"
    return None


def require_cuda() -> None:
    """Raise ``RuntimeError`` with the reason when the CUDA path cannot run."""
    reason = unavailable_reason()
    if reason is not None:
        raise RuntimeError(f"device='cuda' is unavailable: {reason}")


def _is_cuda_tensor(x) -> bool:
    return is_torch_tensor(x) and x.device.type == "cuda"


def _check_device(device) -> str:
    name = str(device) if type(device).__module__.startswith("torch") else device
    if not isinstance(name, str) or not (
        name in ("auto", "cpu", "cuda") or (name.startswith("cuda:") and name[5:].isdigit())
    ):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    return name


def use_cuda(device, *inputs) -> bool:
    """Whether a call runs on the GPU: ``device="cuda"`` always, ``"auto"`` when an input is a CUDA tensor.

    Raises ``RuntimeError`` (with the reason) when the GPU is wanted but unavailable, ``ValueError`` for an
    unknown device or CUDA tensors with ``device="cpu"``. Never imports torch for numpy inputs on the CPU path.
    """
    name = _check_device(device)
    on_gpu = any(_is_cuda_tensor(x) for x in inputs)
    if name == "cpu":
        if on_gpu:
            raise ValueError("device='cpu' was given CUDA tensors; move them with .cpu() or pass device='cuda'")
        return False
    if name == "auto" and not on_gpu:
        return False
    require_cuda()
    return True


# ------------------------------------------------------------------------------------------ device inputs


def _torch():
    try:
        import torch
    except ImportError as exc:
        raise RuntimeError(
            "device='cuda' with numpy inputs needs PyTorch (with CUDA) to move them to the GPU; "
            "install torch or pass torch CUDA tensors"
        ) from exc
    return torch


def _target_device(torch, device, inputs):
    """The torch device all inputs must live on: that of the CUDA tensor inputs, else the one asked for."""
    found = {x.device for x in inputs if _is_cuda_tensor(x)}
    if len(found) > 1:
        raise ValueError(f"inputs are on different devices: {sorted(map(str, found))}")
    name = _check_device(device)
    asked = torch.device(name) if name.startswith("cuda:") else None
    if found:
        dev = found.pop()
        if asked is not None and asked != dev:
            raise ValueError(f"device={name!r} was given tensors on {dev}")
        return dev
    if asked is None:
        asked = torch.device("cuda", torch.cuda.current_device())
    if asked.index >= torch.cuda.device_count():
        raise ValueError(f"device={name!r}: only {torch.cuda.device_count()} CUDA device(s) visible")
    return asked


def _host_to_device(torch, arr: np.ndarray, dev):
    # Read-only arrays (memory-mapped index files) are copied on the host first: torch tensors are writable.
    return torch.from_numpy(arr if arr.flags.writeable else arr.copy()).to(dev)


def _pack_on_device(torch, t, name: str):
    """xmhash.pack for a bool / floating-point CUDA tensor, on the device (same rules and messages)."""
    if t.ndim == 1:
        t = t[None, :]
    if t.ndim != 2:
        raise ValueError(f"{name} must be a 1-D or 2-D array of bits (n, nbits), got {t.ndim} dimensions")
    n, nbits = t.shape
    if nbits == 0 or nbits % 8:
        raise ValueError(f"{name} must have a number of bits (columns) that is a positive multiple of 8, got {nbits}")
    if t.dtype != torch.bool:
        if bool(torch.isnan(t).any()):
            raise ValueError(f"{name} contains NaN; cannot binarise (x >= 0 -> 1 needs real numbers)")
        t = t >= 0
    weights = torch.tensor([1 << b for b in range(8)], dtype=torch.int32, device=t.device)
    return (t.reshape(n, nbits // 8, 8).to(torch.int32) * weights).sum(-1).to(torch.uint8)


def _device_codes(torch, x, name: str, dev):
    """Packed uint8 codes on `dev`, C-contiguous: CUDA uint8 tensors as they are (a copy only when they are
    not contiguous), bool / float CUDA tensors packed on the device, anything else validated and packed on the
    host as on the CPU path, then copied."""
    from .index import HammingIndex

    if isinstance(x, HammingIndex):
        x = x.codes
    if not _is_cuda_tensor(x):
        return _host_to_device(torch, codes_or_pack(x, name), dev)
    t = x.detach()
    if t.dtype == torch.bool or t.is_floating_point():
        return _pack_on_device(torch, t, name)
    if t.dtype != torch.uint8:
        raise TypeError(
            f"{name} must be packed uint8 codes, or bool / floating-point bits to pack, got dtype {t.dtype}"
            "; pack integer 0/1 or ±1 arrays explicitly with xmhash.pack()"
        )
    if t.ndim == 1:
        t = t[None, :]
    if t.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (n, nbits // 8) of packed codes, got {t.ndim} dimensions")
    if t.shape[1] == 0:
        raise ValueError(f"{name} must have at least one byte per code, got shape {tuple(t.shape)}")
    return t.contiguous()


class _Call:
    """One GPU call: inputs on the device, stream, and how results go back (torch for tensor inputs, numpy
    otherwise)."""

    def __init__(self, device, queries, database):
        self.torch = torch = _torch()
        self.dev = _target_device(torch, device, (queries, database))
        self.q = _device_codes(torch, queries, "queries", self.dev)
        self.db = _device_codes(torch, database, "database", self.dev)
        if self.q.shape[1] != self.db.shape[1]:
            raise ValueError(
                "queries and database must have the same code width, got "
                f"{self.q.shape[1] * 8} and {self.db.shape[1] * 8} bits"
            )
        self.nq, self.cs = self.q.shape
        self.nb = self.db.shape[0]
        if self.nb >= 2**31:
            raise ValueError(f"database must have fewer than 2**31 codes on the CUDA path, got {self.nb}")
        self.as_numpy = not (_is_cuda_tensor(queries) or _is_cuda_tensor(database))
        self.index = self.dev.index
        self.stream = torch.cuda.current_stream(self.dev).cuda_stream

    def __enter__(self):
        # Launch with the tensors' device current in torch too: the kernels' runtime then finds it current
        # and need not switch devices (which could create a context on another GPU).
        self._device_ctx = self.torch.cuda.device(self.dev)
        self._device_ctx.__enter__()
        return self

    def __exit__(self, *exc):
        return self._device_ctx.__exit__(*exc)

    def empty(self, shape, dtype):
        return self.torch.empty(shape, dtype=dtype, device=self.dev)

    def out(self, t):
        return t.cpu().numpy() if self.as_numpy else t

    def workspace(self, limit: int, k: int):
        n = _core.cuda_select_workspace(self.nq, self.nb, self.cs, limit, k, self.index)
        return self.empty(max(n, 1), self.torch.uint8), n


# ------------------------------------------------------------------------------------------ public ops


def cdist(queries, database, *, device="auto"):
    with _Call(device, queries, database) as c:
        out = c.empty((c.nq, c.nb), c.torch.int32)
        _core.cuda_cdist(c.q.data_ptr(), c.nq, c.db.data_ptr(), c.nb, c.cs, out.data_ptr(), c.index, c.stream)
        return c.out(out)


def knn(queries, database, k: int, *, device="auto"):
    from .search import check_k

    k = check_k(k)
    with _Call(device, queries, database) as c:
        D = c.empty((c.nq, k), c.torch.int32)
        I = c.empty((c.nq, k), c.torch.int64)
        ws, n = c.workspace(c.cs * 8, k)
        _core.cuda_knn(c.q.data_ptr(), c.nq, c.db.data_ptr(), c.nb, c.cs, k, D.data_ptr(), I.data_ptr(),
                       ws.data_ptr(), n, c.index, c.stream)
        return c.out(D), c.out(I)


def range_search(queries, database, radius: int, *, k: int | None = None, device="auto"):
    """Radius lookup (at most k per query when k is given) in three steps: count, read the total, fill."""
    from .search import RangeResult, check_k, check_radius

    cap = 0 if k is None else check_k(k)  # before the inputs are copied to the device, as knn does
    with _Call(device, queries, database) as c:
        r = check_radius(radius, c.cs * 8)
        lims = c.empty(c.nq + 1, c.torch.int64)
        ws, n = c.workspace(r, cap)
        args = (c.q.data_ptr(), c.nq, c.db.data_ptr(), c.nb, c.cs, r, cap)
        _core.cuda_range_count(*args, lims.data_ptr(), ws.data_ptr(), n, c.index, c.stream)
        total = int(lims[-1])  # waits for the count pass: the outputs' size
        D = c.empty(total, c.torch.int32)
        I = c.empty(total, c.torch.int64)
        _core.cuda_range_fill(*args, lims.data_ptr(), D.data_ptr(), I.data_ptr(), ws.data_ptr(), n, c.index,
                              c.stream)
        return RangeResult(c.out(lims), c.out(D), c.out(I))


def metric_histograms(q_codes, db_codes, q_labels, db_labels, *, device="auto"):
    """Per-query, per-distance counts ``(n_at, r_at)``, int32 ``(nq, nbits + 1)``: database items at each
    distance and the relevant ones among them.

    Labels are normalised already: packed multi-hot rows (uint8, 2-D, same width; relevant = the rows share a
    class) or class ids (int64, 1-D; relevant = equal ids), as numpy arrays or tensors.
    """
    with _Call(device, q_codes, db_codes) as c:
        return _metric_histograms(c, q_labels, db_labels)


def _metric_histograms(c, q_labels, db_labels):
    torch = c.torch
    ql, dl = (_device_labels(torch, x, name, c.dev) for x, name in ((q_labels, "q_labels"), (db_labels, "db_labels")))
    if ql.shape[0] != c.nq or dl.shape[0] != c.nb:
        raise ValueError(
            f"q_labels/db_labels must have one row per code ({c.nq} and {c.nb}), got {ql.shape[0]} and {dl.shape[0]}"
        )
    if ql.dtype != dl.dtype or ql.ndim != dl.ndim or (ql.ndim == 2 and ql.shape[1] != dl.shape[1]):
        raise ValueError("q_labels and db_labels must be the same form: packed rows of one width, or class ids")
    bits = ql.dtype == torch.uint8
    nbins = c.cs * 8 + 1
    n_at = c.empty((c.nq, nbins), torch.int32)
    r_at = c.empty((c.nq, nbins), torch.int32)
    _core.cuda_metric_histograms(
        c.q.data_ptr(), c.nq, c.db.data_ptr(), c.nb, c.cs,
        ql.data_ptr() if bits else 0, dl.data_ptr() if bits else 0, ql.shape[1] if bits else 0,
        0 if bits else ql.data_ptr(), 0 if bits else dl.data_ptr(),
        n_at.data_ptr(), r_at.data_ptr(), c.index, c.stream,
    )  # fmt: skip
    return c.out(n_at), c.out(r_at)


def _device_labels(torch, x, name, dev):
    t = x.detach() if is_torch_tensor(x) else _host_to_device(torch, np.ascontiguousarray(x), dev)
    if not ((t.dtype == torch.uint8 and t.ndim == 2 and t.shape[1] > 0) or (t.dtype == torch.int64 and t.ndim == 1)):
        raise TypeError(f"{name} must be packed label rows (uint8, 2-D) or class ids (int64, 1-D), got "
                        f"{t.dtype} with {t.ndim} dimensions")
    return t.to(dev).contiguous()
