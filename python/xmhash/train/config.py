"""Training configuration: frozen dataclasses, loaded from TOML, overridden from the command line, written to
the run directory (``config.toml``, loadable again with ``--config``, and ``config.json``).

Keys are dotted paths (``bits``, ``ssah.alpha``, ``data.path``); a short name that exists in exactly one section
(``alpha``) is accepted too. Unknown keys are errors that suggest the nearest valid key.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import tomllib
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ..codes import check_bits

__all__ = ["TrainConfig", "DataConfig", "ModelConfig", "SSAHConfig", "DCMHConfig", "PRESETS", "load_config",
           "resolve_key"]

METHODS = ("ssah", "dcmh")
VARIANTS = ("paper", "published-code")
ABLATIONS = ("none", "ssah-1", "ssah-2", "ssah-3")


@dataclass(frozen=True)
class DataConfig:
    path: str = "synthetic"          # a dataset file/folder for xmhash.data.load, or "synthetic"
    synthetic_n: int = 20015         # synthetic: number of image-text pairs
    synthetic_seed: int = 0
    synthetic_difficulty: float = -1.0  # < 0: the data layer's default
    val_size: int = 1000             # carved from train (seeded) when the data has no 'val' split


@dataclass(frozen=True)
class ModelConfig:
    image_backbone: str = "features"  # features | cnnf | torchvision:NAME
    cnnf_weights: str = ""            # path to MatConvNet imagenet-vgg-f.mat (image_backbone = "cnnf")
    image_hidden: tuple[int, ...] = ()  # extra hidden layers on pre-extracted features (SSAH and DCMH)
    semantic_dim: int = 512
    label_hidden: int = 4096
    text_hidden: int = 4096           # SSAH TxtNet
    text_scales: str = "published"    # published (windows 5,10,15,30,50) | paper (5,10,15,25,50)
    discriminator: str = "published"  # published (512-512-256-1) | paper (F-4096-4096-1)
    dcmh_text_hidden: int = 8192
    init_std: float = 0.01
    # per-feature input normalisation fitted on the training split and stored in the model (applied by encode_*
    # too): none (published) | center | standardize. Image: pre-extracted features only.
    image_normalize: str = "none"
    text_normalize: str = "none"


@dataclass(frozen=True)
class SSAHConfig:
    """Weights follow the published code's names: alpha feature-pairwise, gamma hash-pairwise, beta quantisation,
    eta label prediction, delta adversarial (all 1 in setting.py)."""

    alpha: float = 1.0
    gamma: float = 1.0
    beta: float = 1.0
    eta: float = 1.0
    delta: float = 1.0
    epochs: int = 10  # the published 500, in effect: the lr has decayed below 1e-7 after ~10 epochs
    # staged schedule of the published code: stage s of epoch e uses lr0 * decay ** (e + s)
    lr_lab: float = 1e-2
    lr_img: float = 10 ** -4.5
    lr_txt: float = 10 ** -3.5
    lr_dis: float = 1e-3
    lr_decay: float = 10 ** -0.5
    lab_passes: tuple[int, ...] = (10, 5)   # max passes per stage (a pass = N // batch steps)
    dis_passes: tuple[int, ...] = (1, 1)
    img_passes: tuple[int, ...] = (15, 7, 5)
    txt_passes: tuple[int, ...] = (15, 7, 5)
    early_stop: bool = True  # stop a stage when the monitored loss stops decreasing, as the published code does


@dataclass(frozen=True)
class DCMHConfig:
    gamma: float = 1.0   # quantisation
    eta: float = 1.0     # bit balance
    epochs: int = 500
    lr_start: float = 10 ** -1.5
    lr_end: float = 1e-6
    lr_schedule: str = "linspace"  # linspace (TF / PyTorch ports) | logspace (official MATLAB, end 1e-3)
    optimizer: str = "sgd"         # sgd (published) | adam (steadier on pre-extracted features, see the docs)
    momentum: float = 0.0
    weight_decay: float = 0.0


@dataclass(frozen=True)
class TrainConfig:
    method: str = "ssah"              # ssah | dcmh
    bits: int = 64
    variant: str = "paper"            # paper | published-code (SSAH only)
    ablation: str = "none"            # none | ssah-1 | ssah-2 | ssah-3
    epochs: int = 0                   # 0: the method's own (ssah.epochs, dcmh.epochs)
    batch_size: int = 128
    sampling: str = "random"          # random (a fresh random batch per step, as published) | sweep (permutation)
    seed: int = 0
    threads: int = 0                  # torch intra-op threads; 0 = leave torch's default
    device: str = "cpu"
    pairwise_backend: str = "native"  # native | torch (the pure-PyTorch reference of the pairwise loss)
    eval_every: int = 1               # validation mAP every N epochs (model selection)
    eval_batch_size: int = 1024
    out: str = "runs/default"
    keep_last_checkpoint: bool = True  # False: delete last.pt (the resumable state) once the run has finished
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    ssah: SSAHConfig = field(default_factory=SSAHConfig)
    dcmh: DCMHConfig = field(default_factory=DCMHConfig)

    def __post_init__(self):
        _check_choice("method", self.method, METHODS)
        _check_choice("variant", self.variant, VARIANTS)
        _check_choice("ablation", self.ablation, ABLATIONS)
        _check_choice("sampling", self.sampling, ("random", "sweep"))
        _check_choice("pairwise_backend", self.pairwise_backend, ("native", "torch"))
        _check_choice("dcmh.lr_schedule", self.dcmh.lr_schedule, ("linspace", "logspace"))
        _check_choice("dcmh.optimizer", self.dcmh.optimizer, ("sgd", "adam"))
        _check_choice("model.text_scales", self.model.text_scales, ("published", "paper"))
        _check_choice("model.discriminator", self.model.discriminator, ("published", "paper"))
        for name in ("image_normalize", "text_normalize"):
            _check_choice(f"model.{name}", getattr(self.model, name), ("none", "center", "standardize"))
        check_bits(self.bits)
        if self.ablation != "none" and self.method != "ssah":
            raise ValueError(f"ablation {self.ablation!r} applies to method 'ssah', not {self.method!r}")
        for name in ("epochs", "threads"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("ssah", "dcmh"):
            if getattr(self, name).epochs < 1:
                raise ValueError(f"{name}.epochs must be >= 1, got {getattr(self, name).epochs}")
        for name in ("batch_size", "eval_every", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("lab_passes", "dis_passes", "img_passes", "txt_passes"):
            v = getattr(self.ssah, name)
            if not v or any(p < 0 for p in v):
                raise ValueError(f"ssah.{name} must be a non-empty list of pass counts >= 0, got {list(v)}")
        for f in fields(SSAHConfig):
            v = getattr(self.ssah, f.name)
            if isinstance(v, float) and not (math.isfinite(v) and v >= 0):
                raise ValueError(f"ssah.{f.name} must be a finite number >= 0, got {v}")

    # ------------------------------------------------------------------ derived
    @property
    def num_epochs(self) -> int:
        return self.epochs or {"ssah": self.ssah.epochs, "dcmh": self.dcmh.epochs}[self.method]

    @property
    def run_name(self) -> str:
        name = self.method if self.ablation == "none" else self.ablation
        if self.variant != "paper":
            name += "-published"
        return f"{name}_{self.bits}"

    # ------------------------------------------------------------------ conversion
    def to_dict(self) -> dict:
        """Plain nested dict (tuples as lists): JSON/TOML-ready and safe inside weights_only checkpoints."""
        return _plain(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, d: dict, *, where: str = "config") -> "TrainConfig":
        return _build(cls, d, "", where)

    @classmethod
    def from_file(cls, path, overrides: dict | None = None) -> "TrainConfig":
        return load_config(path, overrides)

    def replace(self, **overrides) -> "TrainConfig":
        """A copy with dotted-key overrides, e.g. ``cfg.replace(bits=32, **{"ssah.alpha": 0.1})``."""
        return _apply(self.to_dict(), overrides, cls=TrainConfig)

    def to_toml(self) -> str:
        return _to_toml(self.to_dict())

    def save(self, run_dir) -> None:
        from ._io import atomic_write_text

        run_dir = Path(run_dir)
        atomic_write_text(run_dir / "config.toml", self.to_toml())
        atomic_write_text(run_dir / "config.json", json.dumps(self.to_dict(), indent=2) + "\n")


def _check_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")


def _plain(x):
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


# ------------------------------------------------------------------------------------------ keys and values
def _all_keys(cls=None, prefix: str = "") -> list[str]:
    cls = cls or TrainConfig
    out = []
    for f in fields(cls):
        if dataclasses.is_dataclass(_field_type(cls, f.name)):
            out += _all_keys(_field_type(cls, f.name), f"{prefix}{f.name}.")
        else:
            out.append(prefix + f.name)
    return out


def _field_type(cls, name: str):
    return typing.get_type_hints(cls)[name]


def resolve_key(key: str, *, prefer: str | None = None) -> str:
    """Full dotted key for ``key``; a bare name is accepted if exactly one section has it (or, when several do,
    if one of them is in section ``prefer``, e.g. the method being trained)."""
    keys = _all_keys()
    if key in keys:
        return key
    matches = [k for k in keys if k.rsplit(".", 1)[-1] == key]
    if len(matches) > 1 and prefer and f"{prefer}.{key}" in matches:
        return f"{prefer}.{key}"
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise ValueError(f"config key {key!r} is ambiguous: use one of {', '.join(matches)}")
    close = difflib.get_close_matches(key, keys, n=3, cutoff=0.6)
    if not close:  # a misspelt bare name: compare with the last component of every key
        leaves = {k.rsplit(".", 1)[-1]: k for k in keys}
        close = [leaves[m] for m in difflib.get_close_matches(key.rsplit(".", 1)[-1], list(leaves), n=3)]
    hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
    raise ValueError(f"unknown config key {key!r}{hint}")


def _coerce(value, tp, key: str):
    origin = typing.get_origin(tp)
    if origin is tuple:
        if isinstance(value, str):
            value = [v for v in value.replace(",", " ").split()]
        if not isinstance(value, (list, tuple)):
            value = [value]
        return tuple(_coerce(v, typing.get_args(tp)[0], key) for v in value)
    if isinstance(tp, types.UnionType) or origin is typing.Union:
        raise TypeError(f"{key}: union types are not supported in configs")
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no", "on", "off"):
            return value.lower() in ("true", "1", "yes", "on")
        raise ValueError(f"{key} must be true or false, got {value!r}")
    if tp is int:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise ValueError(f"{key} must be an integer, got {value!r}")
    if tp is float:
        if isinstance(value, bool):
            raise ValueError(f"{key} must be a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{key} must be a number, got {value!r}") from None
    if tp is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ValueError(f"{key} must be a string, got {value!r}")
        return str(value)
    raise TypeError(f"{key}: unsupported config type {tp}")


def _build(cls, d: dict, prefix: str, where: str):
    if not isinstance(d, dict):
        raise ValueError(f"{where}: section {prefix.rstrip('.') or '(top)'} must be a table, got {d!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in fields(cls)}
    kwargs = {}
    for k, v in d.items():
        if k not in names:
            try:
                full = resolve_key(prefix + k)
            except ValueError as exc:
                raise ValueError(f"{where}: {exc}") from None
            raise ValueError(f"{where}: key {k!r} belongs in another section (use {full!r})")
        tp = hints[k]
        if dataclasses.is_dataclass(tp):
            kwargs[k] = _build(tp, v, f"{prefix}{k}.", where)
        else:
            kwargs[k] = _coerce(v, tp, prefix + k)
    return cls(**kwargs)


def parse_value(text: str):
    """A command-line value: TOML syntax when it parses (numbers, true/false, [lists], "strings"), else the
    raw string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _apply(base: dict, overrides: dict, cls=None):
    d = json.loads(json.dumps(base))
    for key, value in (overrides or {}).items():
        full = resolve_key(key)
        node = d
        *parents, leaf = full.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = parse_value(value) if isinstance(value, str) and _wants_parse(full) else value
    return (cls or TrainConfig).from_dict(d, where="overrides")


def _wants_parse(full_key: str) -> bool:
    tp = _lookup_type(full_key)
    return tp is not str


def _lookup_type(full_key: str):
    cls = TrainConfig
    *parents, leaf = full_key.split(".")
    for p in parents:
        cls = _field_type(cls, p)
    return _field_type(cls, leaf)


def load_config(path=None, overrides: dict | None = None, *, preset: str | None = None) -> TrainConfig:
    """Defaults <- preset <- TOML file <- overrides (dotted keys; string values are parsed as TOML values)."""
    d = TrainConfig().to_dict()
    if preset:
        if preset not in PRESETS:
            raise ValueError(f"preset must be one of {', '.join(map(repr, PRESETS))}, got {preset!r}")
        d = _apply(d, PRESETS[preset]).to_dict()
    if path is not None:
        path = Path(path)
        try:
            with open(path, "rb") as f:
                raw = tomllib.load(f)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{path}: not valid TOML ({exc})") from None
        d = _merge(d, raw, str(path))
    return _apply(d, overrides or {})


def _merge(base: dict, new: dict, where: str) -> dict:
    out = _merge_raw(json.loads(json.dumps(base)), new)
    TrainConfig.from_dict(out, where=where)  # validates keys and types with the file name
    return out


def _merge_raw(base: dict, new: dict) -> dict:
    out = dict(base)
    for k, v in new.items():
        out[k] = _merge_raw(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ("nan" if math.isnan(v) else ("inf" if v > 0 else "-inf"))
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string is a valid TOML basic string
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def _to_toml(d: dict) -> str:
    lines = ["# xmhash training configuration (load with: xmhash train --config this-file)"]
    tables = []
    for k, v in d.items():
        if isinstance(v, dict):
            tables.append((k, v))
        else:
            lines.append(f"{k} = {_toml_value(v)}")
    for name, t in tables:
        lines.append("")
        lines.append(f"[{name}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in t.items()]
    return "\n".join(lines) + "\n"


# A preset changes defaults before the file and the command line do.
PRESETS: dict[str, dict[str, Any]] = {
    # the published schedule and network sizes (the dataclass defaults)
    "published": {},
    # the built-in demo: SSAH and DCMH at 16, 32 and 64 bits in a few minutes on 2 CPU cores. Smaller than the
    # published setting in data (5,000 synthetic pairs), TxtNet/DCMH text width (1,024 instead of 4,096/8,192)
    # and schedule (3 SSAH epochs with at most 2+1 LabNet and 3+2 ImgNet/TxtNet passes; 15 DCMH epochs), with
    # centred input features, ImgNet's learning rate raised to 1e-4, and Adam for DCMH (whose published SGD rates
    # do not train on pre-extracted features, see xmhash.train.dcmh). The losses, networks' structure,
    # alternation and model selection are the paper's.
    "demo": {
        "data.synthetic_n": 5000,
        "model.text_hidden": 1024,
        "model.dcmh_text_hidden": 1024,
        "model.image_normalize": "center",
        "model.text_normalize": "center",
        "ssah.epochs": 3,
        "ssah.lab_passes": [2, 1],
        "ssah.img_passes": [3, 2],
        "ssah.txt_passes": [3, 2],
        "ssah.lr_img": 1e-4,
        "dcmh.epochs": 15,
        "dcmh.optimizer": "adam",
        "dcmh.lr_start": 3e-4,
        "dcmh.lr_end": 1e-5,
        "keep_last_checkpoint": False,
    },
}
