"""SSAH's image network (ImgNet) and the image backbones it can sit on.

Backbones map an image-side input to a vector: ``features`` (pre-extracted CNN/VGG fc7 features, the common
setting), ``cnnf`` (raw 224x224 images through CNN-F, weights from MatConvNet's imagenet-vgg-f.mat), or
``torchvision:NAME`` (any torchvision classification model with its classifier removed, when torchvision is
installed).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .cnnf import CNNF
from .layers import HashHeads, HashOutput, InputNorm, check_features, init_normal_, relu_mlp

__all__ = ["FeatureInput", "TorchvisionBackbone", "make_image_backbone", "ImgNet"]


class FeatureInput(nn.Module):
    """Pre-extracted features, width-checked, through an optional per-feature normalisation (identity unless the
    trainer fits it, see ``model.image_normalize``)."""

    def __init__(self, dim: int):
        super().__init__()
        self.out_dim = int(dim)
        self.norm = InputNorm(self.out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_features(x, self.out_dim, "image features")
        return self.norm(x)


class TorchvisionBackbone(nn.Module):
    """A torchvision classifier with its last layer replaced by the identity; images as the model expects them."""

    def __init__(self, name: str, weights: str | None = None):
        super().__init__()
        try:
            import torchvision
        except ImportError:
            raise ImportError(f"image backbone 'torchvision:{name}' needs torchvision (pip install torchvision "
                              "matching your torch); or use 'features' / 'cnnf'") from None
        try:
            model = torchvision.models.get_model(name, weights=weights)
        except ValueError as exc:
            raise ValueError(f"unknown torchvision model {name!r}: {exc}") from None
        for attr in ("fc", "classifier", "head", "heads"):
            last = getattr(model, attr, None)
            if last is None:
                continue
            if isinstance(last, nn.Sequential):
                idx = [i for i, m in enumerate(last) if isinstance(m, nn.Linear)][-1]
                self.out_dim = last[idx].in_features
                last[idx] = nn.Identity()
            elif isinstance(last, nn.Linear):
                self.out_dim = last.in_features
                setattr(model, attr, nn.Identity())
            else:
                continue
            break
        else:
            raise ValueError(f"torchvision model {name!r}: cannot find its classifier layer to remove")
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4 and x.shape[1] != 3 and x.shape[-1] == 3:
            x = x.permute(0, 3, 1, 2)
        return self.model(x.float()).flatten(1)


def make_image_backbone(kind: str = "features", *, image_dim: int | None = None, weights: str | None = None,
                        cnnf_spec: dict | None = None):
    """``features`` (needs image_dim), ``cnnf`` (weights = path to imagenet-vgg-f.mat; None: random init, or the
    architecture ``cnnf_spec`` saved in a checkpoint) or ``torchvision:NAME`` (weights = a torchvision weights
    name)."""
    if kind == "features":
        if not image_dim:
            raise ValueError("image_dim (the feature width) is required for the 'features' image backbone")
        return FeatureInput(image_dim)
    if kind == "cnnf":
        if weights:
            return CNNF.from_matconvnet(weights)
        if cnnf_spec:
            return CNNF(cnnf_spec["layers"], average_shape=cnnf_spec["average_shape"])
        return CNNF()
    if kind.startswith("torchvision:"):
        return TorchvisionBackbone(kind.split(":", 1)[1], weights or None)
    raise ValueError(f"image backbone must be 'features', 'cnnf' or 'torchvision:NAME', got {kind!r}")


class ImgNet(nn.Module):
    """backbone -> [hidden layers, ReLU] -> ``semantic_dim`` (ReLU; the semantic feature, CNN-F's new fc8)
    -> {hash K tanh, label c sigmoid}. Only the layers after the backbone get SSAH's 0.01 * N(0,1) init."""

    def __init__(self, backbone: nn.Module, bits: int, num_labels: int, *, hidden: Sequence[int] = (),
                 semantic_dim: int = 512, init_std: float = 0.01):
        super().__init__()
        self.backbone = backbone
        self.mlp = relu_mlp(backbone.out_dim, (*hidden, semantic_dim))
        self.heads = HashHeads(semantic_dim, bits, num_labels)
        init_normal_(self.mlp, init_std)
        init_normal_(self.heads, init_std)

    def forward(self, x: torch.Tensor) -> HashOutput:
        feature = self.mlp(self.backbone(x))
        h, p = self.heads(feature)
        return HashOutput(h, feature, p)
