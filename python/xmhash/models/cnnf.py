"""CNN-F (Chatfield et al. 2014, MatConvNet ``imagenet-vgg-f.mat``), the image backbone of SSAH and DCMH.

The pretrained weights are the user's to supply: xmhash reads the MatConvNet SimpleNN file in both layouts that
circulate, the old one (beta16 and earlier, also shipped by DCMH as ``vgg_net.mat``: top-level ``layers`` and
``normalization``) and the newer one (``layers`` and ``meta.normalization``). Layers are read by field name, so
the field order that breaks positional loaders does not matter. The network is built from the file's own layer
list up to ``relu7`` (fc8 and the softmax are dropped); images are 0-255 RGB minus the file's average image.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["CNNF", "load_matconvnet", "CNNF_DOWNLOAD_HINT"]

CNNF_DOWNLOAD_HINT = (
    "CNN-F weights are not bundled with xmhash. Download the MatConvNet model 'imagenet-vgg-f.mat' "
    "(https://www.vlfeat.org/matconvnet/models/imagenet-vgg-f.mat; the older beta16 copy at "
    "https://www.vlfeat.org/matconvnet/models/beta16/imagenet-vgg-f.mat, or DCMH's vgg_net.mat, also work) "
    "and pass its path (TrainConfig model.cnnf_weights / --set model.cnnf_weights=PATH). "
    "Or train on pre-extracted 4096-d features (model.image_backbone='features')."
)

# (name, type, params) of the standard CNN-F up to relu7; used to build a randomly initialised network.
_STANDARD = [
    ("conv1", "conv", dict(shape=(64, 3, 11, 11), stride=(4, 4), pad=(0, 0, 0, 0))),
    ("relu1", "relu", {}), ("norm1", "lrn", dict(param=(5, 2.0, 1e-4, 0.75))),
    ("pool1", "pool", dict(pool=(3, 3), stride=(2, 2), pad=(0, 1, 0, 1), method="max")),
    ("conv2", "conv", dict(shape=(256, 64, 5, 5), stride=(1, 1), pad=(2, 2, 2, 2))),
    ("relu2", "relu", {}), ("norm2", "lrn", dict(param=(5, 2.0, 1e-4, 0.75))),
    ("pool2", "pool", dict(pool=(3, 3), stride=(2, 2), pad=(0, 1, 0, 1), method="max")),
    ("conv3", "conv", dict(shape=(256, 256, 3, 3), stride=(1, 1), pad=(1, 1, 1, 1))), ("relu3", "relu", {}),
    ("conv4", "conv", dict(shape=(256, 256, 3, 3), stride=(1, 1), pad=(1, 1, 1, 1))), ("relu4", "relu", {}),
    ("conv5", "conv", dict(shape=(256, 256, 3, 3), stride=(1, 1), pad=(1, 1, 1, 1))), ("relu5", "relu", {}),
    ("pool5", "pool", dict(pool=(3, 3), stride=(2, 2), pad=(0, 1, 0, 1), method="max")),
    ("fc6", "conv", dict(shape=(4096, 256, 6, 6), stride=(1, 1), pad=(0, 0, 0, 0))), ("relu6", "relu", {}),
    ("fc7", "conv", dict(shape=(4096, 4096, 1, 1), stride=(1, 1), pad=(0, 0, 0, 0))), ("relu7", "relu", {}),
]


class _PaddedConv(nn.Module):
    """MatConvNet convolution: explicit (top, bottom, left, right) zero padding, then a VALID convolution."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, stride, pad):
        super().__init__()
        cout, cin, kh, kw = weight.shape
        self.conv = nn.Conv2d(cin, cout, (kh, kw), stride=tuple(stride))
        with torch.no_grad():
            self.conv.weight.copy_(weight)
            self.conv.bias.copy_(bias)
        self.pad = (pad[2], pad[3], pad[0], pad[1])

    def forward(self, x):
        return self.conv(F.pad(x, self.pad) if any(self.pad) else x)


class _PaddedMaxPool(nn.Module):
    def __init__(self, pool, stride, pad):
        super().__init__()
        self.pool, self.stride = tuple(pool), tuple(stride)
        self.pad = (pad[2], pad[3], pad[0], pad[1])

    def forward(self, x):
        if any(self.pad):
            x = F.pad(x, self.pad, value=float("-inf"))  # MatConvNet max pooling ignores the padding
        return F.max_pool2d(x, self.pool, self.stride)


class CNNF(nn.Module):
    """CNN-F feature extractor: images (n, 3, H, W) or (n, H, W, 3), 0-255 -> relu7 features (n, 4096).

    ``CNNF()`` builds the standard shapes with random weights; ``CNNF.from_matconvnet(path)`` loads the
    pretrained file (see the module docstring). The average image is a buffer saved with the model.
    """

    def __init__(self, layers: list | None = None, average_image: np.ndarray | None = None, *,
                 average_shape: tuple[int, ...] = (1, 1, 3)):
        super().__init__()
        if layers is None:
            layers = _STANDARD
        # conv layers carry either pretrained weight/bias tensors or just a weight shape (random init)
        spec = []
        for name, kind, p in layers:
            p = dict(p)
            if kind == "conv":
                if "weight" not in p:
                    p["weight"] = torch.randn(tuple(p["shape"])) * 0.01
                    p["bias"] = torch.zeros(p["shape"][0])
                p["shape"] = tuple(int(v) for v in p["weight"].shape)
            spec.append((name, kind, p))
        layers = spec
        # the architecture without the weights: plain types, saved in checkpoints to rebuild the network
        self.spec = [[name, kind, {k: (list(v) if isinstance(v, tuple) else v) for k, v in p.items()
                                   if k not in ("weight", "bias")}] for name, kind, p in layers]
        if average_image is None:
            average_image = np.zeros(tuple(average_shape), dtype=np.float32)
        avg = torch.as_tensor(np.asarray(average_image, dtype=np.float32))
        if avg.dim() == 1:
            avg = avg.reshape(1, 1, -1)
        self.register_buffer("average_image", avg.permute(2, 0, 1).contiguous())  # (3, H, W) or (3, 1, 1)
        self.average_shape = [int(v) for v in avg.shape]
        modules = []
        self.out_dim = None
        for name, kind, p in layers:
            if kind == "conv":
                modules.append((name, _PaddedConv(p["weight"], p["bias"], p["stride"], p["pad"])))
                self.out_dim = int(p["weight"].shape[0])
            elif kind == "relu":
                modules.append((name, nn.ReLU()))
            elif kind == "lrn":
                size, kappa, alpha, beta = p["param"]
                modules.append((name, nn.LocalResponseNorm(int(size), alpha=float(alpha) * int(size),
                                                           beta=float(beta), k=float(kappa))))
            elif kind == "pool":
                if p.get("method", "max") != "max":
                    raise ValueError(f"layer {name}: only max pooling is supported, got {p['method']!r}")
                modules.append((name, _PaddedMaxPool(p["pool"], p["stride"], p["pad"])))
            else:
                raise ValueError(f"layer {name}: unsupported layer type {kind!r}")
        self.layers = nn.Sequential()
        for name, m in modules:
            self.layers.add_module(name, m)

    @classmethod
    def from_matconvnet(cls, path) -> "CNNF":
        layers, average_image = load_matconvnet(path)
        return cls(layers, average_image)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images
        if x.dim() != 4:
            raise ValueError(f"images must be a 4-D batch (n, 3, H, W) or (n, H, W, 3), got shape {tuple(x.shape)}")
        if x.shape[1] != 3 and x.shape[-1] == 3:
            x = x.permute(0, 3, 1, 2)
        if x.shape[1] != 3:
            raise ValueError(f"images must have 3 colour channels, got shape {tuple(images.shape)}")
        x = x.to(self.average_image.dtype)
        avg = self.average_image
        if avg.shape[1:] != (1, 1) and avg.shape[1:] != x.shape[2:]:
            raise ValueError(f"images are {tuple(x.shape[2:])} pixels but the CNN-F average image is "
                             f"{tuple(avg.shape[1:])}; resize the images to {tuple(avg.shape[1:])}")
        x = self.layers(x - avg)
        return x.flatten(1)


# --------------------------------------------------------------------------------------------- .mat reading
def _one(x):
    """Unwrap MATLAB's 1x1 cell/struct wrappers (scipy keeps them when squeeze_me=False)."""
    while isinstance(x, np.ndarray) and x.dtype == object and x.size == 1:
        x = x.flat[0]
    return x


def _text(x) -> str:
    x = _one(x)
    if isinstance(x, np.ndarray):
        return "".join(str(s) for s in x.ravel())
    return str(x)


def _ints(x, n: int, field: str, layer: str) -> tuple[int, ...]:
    v = np.asarray(_one(x), dtype=np.float64).ravel()
    if v.size == 1:
        v = np.repeat(v, n)
    if v.size != n:
        raise ValueError(f"layer {layer}: field {field!r} has {v.size} values, expected 1 or {n}")
    return tuple(int(round(t)) for t in v)


def _field(s, name: str, layer: str, path: Path):
    if not hasattr(s, name):
        raise ValueError(f"{path}: layer {layer!r} has no field {name!r} (fields: {', '.join(s._fieldnames)})")
    return getattr(s, name)


def load_matconvnet(path) -> tuple[list, np.ndarray]:
    """Read a MatConvNet SimpleNN CNN-F file: ``(layers, average_image)`` up to relu7.

    ``layers`` is a list of ``(name, type, params)`` with conv weights converted to PyTorch's (out, in, kh, kw).
    Raises FileNotFoundError with download instructions if the file is missing, ValueError naming the file and
    key for anything else (an HDF5/v7.3 file, a DagNN file, a missing average image, odd layer fields).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"CNN-F weights not found at {str(path)!r}. {CNNF_DOWNLOAD_HINT}")
    import scipy.io

    try:
        mat = scipy.io.loadmat(str(path), squeeze_me=False, struct_as_record=False)
    except NotImplementedError:
        raise ValueError(f"{path}: a MATLAB v7.3 (HDF5) file; MatConvNet models are classic .mat files - "
                         f"re-save it with save(..., '-v7') or download the original. {CNNF_DOWNLOAD_HINT}") from None
    except Exception as exc:  # scipy raises several types for non-.mat input
        raise ValueError(f"{path}: not a readable MATLAB .mat file ({exc}). {CNNF_DOWNLOAD_HINT}") from None
    keys = sorted(k for k in mat if not k.startswith("__"))
    if "layers" not in mat:
        extra = " (a DagNN model: use the SimpleNN imagenet-vgg-f.mat)" if "params" in mat or "vars" in mat else ""
        raise ValueError(f"{path}: no 'layers' variable{extra}; found keys {keys}. {CNNF_DOWNLOAD_HINT}")
    if "normalization" in mat:
        norm = _one(mat["normalization"])  # old layout (beta16, DCMH's vgg_net.mat)
    elif "meta" in mat and hasattr(_one(mat["meta"]), "normalization"):
        norm = _one(_one(mat["meta"]).normalization)  # newer layout
    else:
        raise ValueError(f"{path}: neither 'normalization' (old MatConvNet layout) nor 'meta.normalization' "
                         f"(newer layout) found; keys {keys}")
    if not hasattr(norm, "averageImage"):
        raise ValueError(f"{path}: the normalization struct has no 'averageImage' (fields: {norm._fieldnames})")
    avg = np.asarray(_one(norm.averageImage), dtype=np.float32)
    if avg.ndim == 1:
        avg = avg.reshape(1, 1, -1)
    if avg.ndim != 3 or avg.shape[2] != 3:
        raise ValueError(f"{path}: averageImage must be H x W x 3 or 3 values, got shape {avg.shape}")

    cells = np.asarray(mat["layers"]).ravel()
    layers: list = []
    for cell in cells:
        s = _one(cell)
        name = _text(_field(s, "name", "?", path))
        kind = _text(_field(s, "type", name, path))
        if kind == "conv":
            if hasattr(s, "weights"):
                wb = np.asarray(_field(s, "weights", name, path)).ravel()
                if wb.size != 2:
                    raise ValueError(f"{path}: layer {name!r} weights must be a {{filters, biases}} cell, "
                                     f"got {wb.size} entries")
                filters, biases = _one(wb[0]), _one(wb[1])
            else:  # MatConvNet before beta13
                filters, biases = _one(_field(s, "filters", name, path)), _one(_field(s, "biases", name, path))
            filters = np.asarray(filters, dtype=np.float32)
            filters = filters.reshape(filters.shape + (1,) * (4 - filters.ndim))  # MATLAB drops trailing 1s
            biases = np.asarray(biases, dtype=np.float32).ravel()
            if biases.size != filters.shape[3]:
                raise ValueError(f"{path}: layer {name!r} has {filters.shape[3]} filters but {biases.size} biases")
            weight = torch.from_numpy(np.ascontiguousarray(filters.transpose(3, 2, 0, 1)))
            layers.append((name, "conv", dict(weight=weight, bias=torch.from_numpy(biases),
                                              stride=_ints(_field(s, "stride", name, path), 2, "stride", name),
                                              pad=_ints(_field(s, "pad", name, path), 4, "pad", name))))
        elif kind == "relu":
            layers.append((name, "relu", {}))
        elif kind in ("lrn", "normalize"):
            param = tuple(float(v) for v in np.asarray(_one(_field(s, "param", name, path))).ravel())
            if len(param) != 4:
                raise ValueError(f"{path}: layer {name!r} LRN param must be [N kappa alpha beta], got {param}")
            layers.append((name, "lrn", dict(param=param)))
        elif kind == "pool":
            method = _text(s.method) if hasattr(s, "method") else "max"
            layers.append((name, "pool", dict(pool=_ints(_field(s, "pool", name, path), 2, "pool", name),
                                              stride=_ints(_field(s, "stride", name, path), 2, "stride", name),
                                              pad=_ints(_field(s, "pad", name, path), 4, "pad", name),
                                              method=method)))
        elif kind in ("softmax", "softmaxloss", "dropout"):
            continue
        else:
            raise ValueError(f"{path}: layer {name!r} has unsupported type {kind!r}")
        if name == "relu7":
            break
    if not any(k == "conv" for _, k, _ in layers):
        raise ValueError(f"{path}: no convolution layers found")
    # drop the classifier (fc8) if the file had no relu7 marker
    while layers and layers[-1][1] == "conv" and layers[-1][2]["weight"].shape[0] == 1000:
        layers.pop()
    return layers, avg
