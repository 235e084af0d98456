"""Which published file layout a path holds (methods.md §3), found from file names first, then keys.

A *variant* is a physical layout; the *dataset* (MIRFLICKR-25K, NUS-WIDE TC-10/TC-21, MS-COCO) comes from the
names when they say it and from the label count otherwise.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from .matfile import MatFile

VARIANTS = {
    "single-file": "one file holding images|IAll|XAll, YAll and LAll (FLICKR-25K.mat, v7.3, transposed or not; "
                   "MS-COCO MSCOCO_*.h5py with XAll/YAll/LAll)",
    "split-files": "one file per modality, <prefix>-{iall,iall-vgg|xall-vgg,yall,lall}.mat, HDF5 or classic "
                   "(MIRFLICKR-25K three-file release, NUS-WIDE TC-10 / TC-21)",
    "coco-lists": "imgList.mat / tagList.mat / labelList.mat (keys imgs, tags, labels) and a folder of images",
    "unified-raw": "raw_{mir,nus,coco}.mat, pre-split into I_/T_/L_ + tr (train), te (query), db (retrieval)",
    "xmhash": "the xmhash HDF5 data format",
}

SINGLE_IMAGE_KEYS = ("images", "IAll", "XAll")
UNIFIED_PARTS = (("query", "te"), ("retrieval", "db"), ("train", "tr"))
COCO_LISTS = {"imglist.mat": ("imgs", "image"), "taglist.mat": ("tags", "text"), "labellist.mat": ("labels", "labels")}
_SPLIT_FILE = re.compile(r"^(?P<prefix>.+?)-(?P<part>iall-vgg|xall-vgg|xall|iall|yall|lall)\.mat$", re.IGNORECASE)
_FEATURE_PARTS = ("iall-vgg", "xall-vgg", "xall")
_DATA_SUFFIXES = {".mat", ".h5", ".h5py", ".hdf5", ".hdf"}


@dataclass
class Layout:
    """What to read: ``roles`` maps ``image``/``text``/``labels`` to ``(file, key)``."""

    variant: str
    anchor: Path  # the index file of the splits goes next to this file (or inside this folder)
    roles: dict[str, tuple[Path, str]] = field(default_factory=dict)
    image_kind: str = "features"  # "features", "raw" or "files"
    name_hint: str = ""  # text the dataset name may be guessed from
    notes: list[str] = field(default_factory=list)


def _check_variant(variant: str | None) -> None:
    if variant is not None and variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; known: {', '.join(VARIANTS)}")


def detect(path: str | Path, *, variant: str | None = None, image: str | None = None) -> Layout:
    """The layout of a file or folder. ``image`` (``"raw"`` / ``"features"``) picks the image side when a
    release has both; ``variant`` restricts detection to that layout."""
    _check_variant(variant)
    if image not in (None, "raw", "features"):
        raise ValueError(f"image must be 'raw', 'features' or None, got {image!r}")
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file or folder")
    if p.is_dir():
        layouts, errors = _detect_folder(p, image)
    else:
        try:
            layouts, errors = [_detect_file(p, image)], []
        except ValueError as exc:
            layouts, errors = [], [str(exc)]
    if variant is not None:
        found = [lay.variant for lay in layouts]
        layouts = [lay for lay in layouts if lay.variant == variant]
        if not layouts:
            why = f"found {', '.join(found)}" if found else "; ".join(errors) or "nothing recognisable"
            raise ValueError(f"{p}: not the {variant!r} variant ({VARIANTS[variant]}): {why}")
    if len(layouts) == 1:
        return layouts[0]
    if not layouts:
        raise ValueError("; ".join(errors) if errors else f"{p}: no dataset files found")
    listing = "; ".join(f"{lay.variant} at {lay.anchor}" for lay in layouts)
    raise ValueError(f"{p}: several datasets found ({listing}); pass one file or variant=")


def _detect_folder(folder: Path, image: str | None) -> tuple[list[Layout], list[str]]:
    names = {f.name.lower(): f for f in folder.iterdir() if f.is_file()}
    layouts, errors, used = [], [], set()
    prefixes = {}
    for low, f in names.items():
        m = _SPLIT_FILE.match(low)
        if m:
            prefixes.setdefault(m["prefix"], []).append(f)
    prefixes = {k: v for k, v in prefixes.items() if any(f.name.lower().endswith("-lall.mat") for f in v)}
    for prefix, files in sorted(prefixes.items()):
        try:
            layouts.append(_split_files(folder, prefix, image))
        except ValueError as exc:
            errors.append(str(exc))
        used.update(f.name.lower() for f in files)
    if any(n in names for n in COCO_LISTS):
        try:
            layouts.append(_coco_lists(folder))
        except ValueError as exc:
            errors.append(str(exc))
        used.update(COCO_LISTS)
    for low, f in sorted(names.items()):
        if low in used or f.suffix.lower() not in _DATA_SUFFIXES:
            continue
        try:
            layouts.append(_detect_file(f, image))
        except ValueError as exc:
            errors.append(str(exc))
    if not layouts and not errors:
        errors.append(f"{folder}: no .mat / HDF5 dataset files in this folder")
    return layouts, errors


def _detect_file(p: Path, image: str | None) -> Layout:
    from .storage import is_xmhash_file

    if is_xmhash_file(p):
        return Layout("xmhash", p, name_hint=p.name)
    m = _SPLIT_FILE.match(p.name)
    if m:
        part = m["part"].lower()
        chosen = "raw" if part == "iall" else "features" if part in _FEATURE_PARTS else None
        return _split_files(p.parent, m["prefix"], image or chosen)
    if p.name.lower() in COCO_LISTS:
        return _coco_lists(p.parent)
    with MatFile(p) as mf:
        keys = mf.variables()
        unified = [f"{m}_{s}" for _, s in UNIFIED_PARTS for m in ("T", "L")]
        if all(k in keys for k in unified):
            roles = {}
            for _, s in UNIFIED_PARTS:
                for role, m in (("image", "I"), ("text", "T"), ("labels", "L")):
                    roles[f"{role}_{s}"] = (p, f"{m}_{s}")
            missing_images = [f"I_{s}" for _, s in UNIFIED_PARTS if f"I_{s}" not in keys]
            if missing_images:
                raise ValueError(f"{p}: unified raw file without image keys {missing_images} "
                                 f"(the file has: {mf.describe_variables()})")
            ndim = len(keys["I_tr"][0])
            return Layout("unified-raw", p, roles, "raw" if ndim == 4 else "features", name_hint=p.name)
        if "YAll" in keys and "LAll" in keys:
            present = [k for k in SINGLE_IMAGE_KEYS if k in keys]
            if not present:
                raise ValueError(f"{p}: has YAll and LAll but no image key (one of {', '.join(SINGLE_IMAGE_KEYS)}); "
                                 f"the file has: {mf.describe_variables()}")
            want = "raw" if image == "raw" else "features" if image == "features" else None
            by_kind = {k: ("raw" if len(keys[k][0]) == 4 else "features") for k in present}
            choice = [k for k in present if want is None or by_kind[k] == want]
            if not choice:
                shown = ", ".join(f"{k} {keys[k][0]}" for k in present)
                raise ValueError(f"{p}: no {want} images (image keys: {shown})")
            key = next((k for k in choice if by_kind[k] == "features"), choice[0])
            lay = Layout("single-file", p, {"image": (p, key), "text": (p, "YAll"), "labels": (p, "LAll")},
                         by_kind[key], name_hint=p.name)
            if len(present) > 1:
                lay.notes.append(f"image side: {key} (also in the file: {', '.join(k for k in present if k != key)}; "
                                 "choose with image='raw' or 'features')")
            return lay
        raise ValueError(
            f"{p}: unrecognised layout (keys: {mf.describe_variables()}); expected YAll + LAll + images/IAll/XAll, "
            "I_/T_/L_ tr/te/db, or file names like mirflickr25k-lall.mat, nus-wide-tc10-yall.mat, imgList.mat"
        )


def _split_files(folder: Path, prefix: str, image: str | None) -> Layout:
    def find(part: str) -> Path | None:
        for f in folder.iterdir():
            if f.is_file() and f.name.lower() == f"{prefix}-{part}.mat".lower():
                return f
        return None

    labels, text = find("lall"), find("yall")
    raw = find("iall")
    feats = next((f for f in (find(p) for p in _FEATURE_PARTS) if f is not None), None)
    missing = [f"{prefix}-{p}.mat" for p, f in (("lall", labels), ("yall", text)) if f is None]
    if raw is None and feats is None:
        missing.append(f"{prefix}-iall.mat or {prefix}-iall-vgg.mat / -xall-vgg.mat")
    if missing:
        raise ValueError(f"{folder}: the {prefix} file set is incomplete: missing {', '.join(missing)}")
    kind = image or ("features" if feats is not None else "raw")
    img = feats if kind == "features" else raw
    if img is None:
        have = "features" if feats is not None else "raw images"
        raise ValueError(f"{folder}: no {kind} image file in the {prefix} set (it has {have})")
    lay = Layout("split-files", folder, {"image": (img, "XAll" if kind == "features" else "IAll"),
                                         "text": (text, "YAll"), "labels": (labels, "LAll")},
                 kind, name_hint=prefix)
    if raw is not None and feats is not None:
        lay.notes.append(f"image side: {img.name} ({kind}); the set also has "
                         f"{(raw if kind == 'features' else feats).name} (choose with image='raw' or 'features')")
    return lay


def _coco_lists(folder: Path) -> Layout:
    found = {f.name.lower(): f for f in folder.iterdir() if f.is_file()}
    missing = [n for n in ("imgList.mat", "tagList.mat", "labelList.mat") if n.lower() not in found]
    if missing:
        raise ValueError(f"{folder}: the MS-COCO list files are incomplete: missing {', '.join(missing)}")
    roles = {role: (found[low], key) for low, (key, role) in COCO_LISTS.items()}
    return Layout("coco-lists", folder, roles, "files", name_hint="coco")
