"""Networks for deep cross-modal hashing (needs PyTorch): SSAH's LabNet / ImgNet / TxtNet / discriminators,
DCMH's image and text networks, CNN-F with MatConvNet weights, and a registry to build any of them by name.

>>> from xmhash.models import create_model, list_models
>>> model = create_model("ssah", bits=64, image_dim=4096, text_dim=1386, num_labels=24)
>>> codes = model.encode_image(features)          # packed uint8 (n, 8), ready for xmhash.search
"""

from .cnnf import CNNF, load_matconvnet
from .dcmh import DCMHImgNet, DCMHTxtNet
from .discriminator import Discriminator
from .hashing import CrossModalHashModel, DCMHModel, SSAHModel, check_bits
from .imgnet import FeatureInput, ImgNet, make_image_backbone
from .labnet import LabNet
from .layers import HashOutput, LocalResponseNorm
from .registry import create_model, list_models, register_model
from .txtnet import FCTxtNet, MultiScaleFusion, TxtNet


def load_model(checkpoint, *, map_location="cpu") -> CrossModalHashModel:
    """Rebuild a trained model from an xmhash checkpoint (a path or an already loaded dict)."""
    from ..train.checkpoint import load_checkpoint

    ckpt = checkpoint if isinstance(checkpoint, dict) else load_checkpoint(checkpoint, map_location=map_location)
    spec = ckpt["model_spec"]
    model = create_model(spec["name"], **spec["kwargs"])
    model.load_state_dict(ckpt["model"])
    return model


__all__ = [
    "CNNF", "CrossModalHashModel", "DCMHImgNet", "DCMHModel", "DCMHTxtNet", "Discriminator", "FCTxtNet",
    "FeatureInput", "HashOutput", "ImgNet", "LabNet", "LocalResponseNorm", "MultiScaleFusion", "SSAHModel",
    "TxtNet", "check_bits", "create_model", "list_models", "load_matconvnet", "load_model", "make_image_backbone",
    "register_model",
]
