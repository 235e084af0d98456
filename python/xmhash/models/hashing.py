"""Complete cross-modal hashing models (SSAH, its ablations, DCMH) with ``encode_image`` / ``encode_text``."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from ..codes import check_bits
from .dcmh import DCMHImgNet, DCMHTxtNet
from .discriminator import Discriminator
from .imgnet import FeatureInput, ImgNet, make_image_backbone
from .labnet import LabNet
from .registry import register_model
from .txtnet import FCTxtNet, TxtNet

__all__ = ["CrossModalHashModel", "SSAHModel", "DCMHModel", "check_bits"]


def _rows(x, name: str):
    if isinstance(x, torch.Tensor):
        return x
    if hasattr(x, "shape") and hasattr(x, "__getitem__"):
        return x  # numpy arrays, h5py datasets: sliced batch by batch
    raise TypeError(f"{name} must be a numpy array, an array-like with .shape, or a torch tensor, "
                    f"got {type(x).__name__}")


class CrossModalHashModel(nn.Module):
    """Base: ``image_hash(x)`` / ``text_hash(t)`` give real-valued outputs; ``encode_*`` give packed codes.

    ``spec`` (name + constructor kwargs, plain types) rebuilds the model from a checkpoint.
    """

    name = "base"

    def __init__(self, bits: int, image_dim: int | None, text_dim: int, **kwargs):
        super().__init__()
        self.bits = check_bits(bits)
        self.image_dim = image_dim
        self.text_dim = int(text_dim)
        self._kwargs = dict(bits=self.bits, image_dim=image_dim, text_dim=self.text_dim, **kwargs)

    @property
    def spec(self) -> dict:
        kwargs = {k: (list(v) if isinstance(v, tuple) else v) for k, v in self._kwargs.items()}
        kwargs.pop("cnnf_weights", None)  # the weights live in the state dict
        backbone = getattr(self.image_net, "backbone", None)
        if hasattr(backbone, "spec"):
            kwargs["cnnf_spec"] = {"layers": backbone.spec, "average_shape": backbone.average_shape}
        return {"name": self.name, "kwargs": kwargs}

    def image_hash(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def text_hash(self, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _encode(self, fn, x, name: str, width: int | None, batch_size: int) -> np.ndarray:
        from ..codes import pack

        x = _rows(x, name)
        if width is not None and (len(x.shape) != 2 or x.shape[1] != width):
            raise ValueError(f"{name} must have shape (n, {width}) (the feature width this model was trained on), "
                             f"got {tuple(x.shape)}")
        device = next(self.parameters()).device
        out = np.empty((x.shape[0], self.bits // 8), dtype=np.uint8)
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                for start in range(0, x.shape[0], batch_size):
                    batch = x[start:start + batch_size]
                    batch = batch if isinstance(batch, torch.Tensor) else torch.from_numpy(np.asarray(batch))
                    if batch.is_floating_point() or width is not None:
                        batch = batch.to(torch.float32)
                    h = fn(batch.to(device)).float().cpu()
                    out[start:start + batch.shape[0]] = pack(h.numpy())  # h >= 0 -> 1 (no sign(0) = 0)
        finally:
            self.train(was_training)
        return out

    def encode_image(self, x, *, batch_size: int = 512) -> np.ndarray:
        """Packed codes (n, bits // 8) uint8 for images or image features, ready for :func:`xmhash.search`."""
        width = self.image_dim if isinstance(self.image_net.backbone, FeatureInput) else None
        return self._encode(self.image_hash, x, "image features" if width else "images", width, batch_size)

    def encode_text(self, t, *, batch_size: int = 512) -> np.ndarray:
        """Packed codes (n, bits // 8) uint8 for bag-of-words rows."""
        return self._encode(self.text_hash, t, "text", self.text_dim, batch_size)


class SSAHModel(CrossModalHashModel):
    """SSAH's four subnetworks: LabNet, ImgNet, TxtNet and the two discriminators.

    Ablations: ``labnet=False`` (SSAH-1: no LabNet; a single image-vs-text discriminator), ``text_net="fc"``
    (SSAH-2: TxtNet as three fully connected layers), ``adversary=False`` (SSAH-3: no discriminators).
    """

    name = "ssah"

    def __init__(self, bits: int, image_dim: int | None, text_dim: int, num_labels: int, *,
                 image_backbone: str = "features", cnnf_weights: str | None = None, cnnf_spec: dict | None = None,
                 image_hidden: Sequence[int] = (), semantic_dim: int = 512, label_hidden: int = 4096,
                 text_hidden: int = 4096, text_net: str = "multiscale", text_scales="published",
                 discriminator="published", labnet: bool = True, adversary: bool = True, init_std: float = 0.01):
        super().__init__(bits, image_dim, text_dim, num_labels=num_labels, image_backbone=image_backbone,
                         cnnf_weights=cnnf_weights, image_hidden=tuple(image_hidden), semantic_dim=semantic_dim,
                         label_hidden=label_hidden, text_hidden=text_hidden, text_net=text_net,
                         text_scales=text_scales, discriminator=discriminator, labnet=labnet, adversary=adversary,
                         init_std=init_std)
        self.num_labels = int(num_labels)
        if text_net not in ("multiscale", "fc"):
            raise ValueError(f"text_net must be 'multiscale' or 'fc' (SSAH-2), got {text_net!r}")
        backbone = make_image_backbone(image_backbone, image_dim=image_dim, weights=cnnf_weights,
                                       cnnf_spec=cnnf_spec)
        self.lab_net = (LabNet(num_labels, self.bits, hidden=label_hidden, semantic_dim=semantic_dim,
                               init_std=init_std) if labnet else None)
        self.image_net = ImgNet(backbone, self.bits, num_labels, hidden=image_hidden, semantic_dim=semantic_dim,
                                init_std=init_std)
        if text_net == "multiscale":
            self.text_net = TxtNet(text_dim, self.bits, num_labels, hidden=text_hidden, semantic_dim=semantic_dim,
                                   scales=text_scales, init_std=init_std)
        else:
            self.text_net = FCTxtNet(text_dim, self.bits, num_labels, hidden=text_hidden,
                                     semantic_dim=semantic_dim, init_std=init_std)
        # image-vs-label and text-vs-label; without LabNet a single image-vs-text discriminator
        self.disc_image = Discriminator(semantic_dim, discriminator, init_std=init_std) if adversary else None
        self.disc_text = (Discriminator(semantic_dim, discriminator, init_std=init_std)
                          if adversary and labnet else None)

    def image_hash(self, x):
        return self.image_net(x).hash

    def text_hash(self, t):
        return self.text_net(t).hash

    def encode_labels(self, labels, *, batch_size: int = 512) -> np.ndarray:
        """LabNet's codes for multi-hot label rows (the semantic hub's view of a label set)."""
        if self.lab_net is None:
            raise ValueError("this SSAH model has no LabNet (SSAH-1 ablation)")
        return self._encode(lambda y: self.lab_net(y).hash, labels, "labels", self.num_labels, batch_size)


class DCMHModel(CrossModalHashModel):
    """DCMH: an image network and a text network with real-valued K-dimensional outputs."""

    name = "dcmh"

    def __init__(self, bits: int, image_dim: int | None, text_dim: int, *, image_backbone: str = "features",
                 cnnf_weights: str | None = None, cnnf_spec: dict | None = None, image_hidden: Sequence[int] = (),
                 text_hidden: int = 8192, init_std: float = 0.01, num_labels: int | None = None):
        super().__init__(bits, image_dim, text_dim, image_backbone=image_backbone, cnnf_weights=cnnf_weights,
                         image_hidden=tuple(image_hidden), text_hidden=text_hidden, init_std=init_std,
                         num_labels=num_labels)
        backbone = make_image_backbone(image_backbone, image_dim=image_dim, weights=cnnf_weights,
                                       cnnf_spec=cnnf_spec)
        self.image_net = DCMHImgNet(backbone, self.bits, hidden=image_hidden, init_std=init_std)
        self.text_net = DCMHTxtNet(text_dim, self.bits, hidden=text_hidden, init_std=init_std)

    def image_hash(self, x):
        return self.image_net(x)

    def text_hash(self, t):
        return self.text_net(t)


# ------------------------------------------------------------------------------------------------ registry
@register_model("ssah")
def ssah(**kwargs) -> SSAHModel:
    """SSAH as published (paper networks; the training variant is a trainer option)."""
    return SSAHModel(**kwargs)


@register_model("ssah_1")
def ssah_1(**kwargs) -> SSAHModel:
    """Ablation SSAH-1: without the self-supervised semantic network (LabNet)."""
    return SSAHModel(**{**kwargs, "labnet": False})


@register_model("ssah_2")
def ssah_2(**kwargs) -> SSAHModel:
    """Ablation SSAH-2: TxtNet as three fully connected layers (no multi-scale fusion)."""
    return SSAHModel(**{**kwargs, "text_net": "fc"})


@register_model("ssah_3")
def ssah_3(**kwargs) -> SSAHModel:
    """Ablation SSAH-3: without the adversarial networks."""
    return SSAHModel(**{**kwargs, "adversary": False})


@register_model("dcmh")
def dcmh(**kwargs) -> DCMHModel:
    return DCMHModel(**kwargs)


register_model("ssah_labnet")(LabNet)
register_model("ssah_imgnet")(ImgNet)
register_model("ssah_txtnet")(TxtNet)
register_model("ssah_txtnet_fc")(FCTxtNet)
register_model("ssah_discriminator")(Discriminator)
register_model("dcmh_imgnet")(DCMHImgNet)
register_model("dcmh_txtnet")(DCMHTxtNet)
