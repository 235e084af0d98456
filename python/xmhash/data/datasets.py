"""The published datasets: label counts, names and standard split sizes (methods.md §3)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    num_labels: int
    query: int  # standard query-set size
    train: int  # standard training draw (taken from the retrieval set; val is carved from it)
    text_dim: int | None
    description: str

    @property
    def val(self) -> int:
        """Default validation size: 10% of the training draw."""
        return self.train // 10


DATASETS: dict[str, DatasetSpec] = {
    "mirflickr25k": DatasetSpec("mirflickr25k", 24, 2000, 10000, 1386,
                                "MIRFLICKR-25K, DCMH release: 20,015 pairs, 24 labels, 1,386-d tags"),
    "nus-wide-tc21": DatasetSpec("nus-wide-tc21", 21, 2100, 10500, 1000,
                                 "NUS-WIDE top-21 concepts: 195,834 pairs, 1,000-d tags"),
    "nus-wide-tc10": DatasetSpec("nus-wide-tc10", 10, 2100, 10500, 1000,
                                 "NUS-WIDE top-10 concepts: about 186,5x7 pairs, 1,000-d tags"),
    "coco": DatasetSpec("coco", 80, 5000, 10000, None, "MS-COCO 2014 (train+val merged), 80 labels"),
}

_ALIASES = {
    "mirflickr": "mirflickr25k", "mirflickr-25k": "mirflickr25k", "flickr": "mirflickr25k",
    "flickr25k": "mirflickr25k", "flickr-25k": "mirflickr25k", "mir": "mirflickr25k",
    "nus-wide-10": "nus-wide-tc10", "nus_wide_tc10": "nus-wide-tc10", "nuswide-tc10": "nus-wide-tc10",
    "nus-wide-21": "nus-wide-tc21", "nus_wide_tc21": "nus-wide-tc21", "nuswide-tc21": "nus-wide-tc21",
    "mscoco": "coco", "ms-coco": "coco", "coco2014": "coco",
}
# Names that fix the family but not the variant: the label count decides between TC-10 and TC-21.
_NUS = {"nus", "nuswide", "nus-wide", "nus_wide"}


def resolve(name: str | None, num_labels: int | None = None) -> str | None:
    """Canonical dataset name for a user-given name (aliases accepted), or ``None`` for ``None``."""
    if name is None:
        return None
    if not isinstance(name, str):
        raise TypeError(f"dataset must be a string, got {type(name).__name__}")
    key = name.strip().lower()
    if key in DATASETS:
        return key
    if key in _ALIASES:
        return _ALIASES[key]
    if key in _NUS:
        if num_labels == 10:
            return "nus-wide-tc10"
        return "nus-wide-tc21"
    raise ValueError(
        f"unknown dataset {name!r}; known: {', '.join(DATASETS)} (or aliases such as 'mirflickr', 'nus-wide')")


def from_num_labels(c: int) -> str | None:
    return {spec.num_labels: name for name, spec in DATASETS.items()}.get(c)


def from_filename(name: str) -> str | None:
    """A dataset guessed from a file or folder name, or None."""
    low = name.lower()
    if "tc10" in low or "tc-10" in low:
        return "nus-wide-tc10"
    if "tc21" in low or "tc-21" in low:
        return "nus-wide-tc21"
    if "nus" in low:
        return "nus-wide"  # family only; the label count picks the variant
    if "flickr" in low or "raw_mir" in low:
        return "mirflickr25k"
    if "coco" in low:
        return "coco"
    return None
