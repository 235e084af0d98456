"""xmhash.plot renders PNG files (matplotlib on a private Agg canvas), validates its input, and loads
matplotlib only when a figure is drawn."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import xmhash.metrics as xm
from xmhash import plot

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_png(path):
    """A real PNG with something drawn on it (not a blank canvas)."""
    mpimg = pytest.importorskip("matplotlib.image")
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert len(data) > 10_000
    pixels = mpimg.imread(path)
    assert pixels.ndim == 3 and pixels.shape[0] > 200 and pixels.shape[1] > 300
    assert pixels[..., :3].std() > 0.05
    assert not list(path.parent.glob(".*.tmp"))  # the atomic write left no temporary file


@pytest.fixture
def small_case():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 300)
    centres = rng.integers(0, 2, (4, 32)).astype(bool)
    bits = centres[labels] ^ (rng.random((300, 32)) < 0.2)  # label-correlated codes
    return bits[:40], bits, labels[:40], labels


def test_pr_by_radius_several_methods_and_bit_lengths_on_one_figure(tmp_path, small_case):
    pytest.importorskip("matplotlib")
    q, db, ql, dl = small_case
    curves = {}
    for nbits in (16, 32):
        for method, noise in (("SSAH", 0.0), ("DCMH", 0.1)):
            flip = np.random.default_rng(nbits).random(db.shape) < noise
            codes = (db ^ flip)[:, :nbits]
            curves[(method, nbits)] = xm.pr_by_radius(codes[:40], codes, ql, dl)
    out = plot.plot_pr_by_radius(curves, tmp_path / "pr.png", title="PR by Hamming radius")
    assert out == tmp_path / "pr.png"
    assert_png(out)


def test_precision_at_n_curves(tmp_path, small_case):
    pytest.importorskip("matplotlib")
    q, db, ql, dl = small_case
    ns = np.arange(10, 301, 10)
    curves = {"index ties": (ns, xm.precision_at_k(q, db, ql, dl, ns)),
              "tie-aware": {"n": ns, "precision": xm.precision_at_k(q, db, ql, dl, ns, ties="average")}}
    assert_png(plot.plot_precision_at_n(curves, tmp_path / "sub" / "pn.png"))


def test_map_vs_time_curves(tmp_path):
    pytest.importorskip("matplotlib")
    t = np.linspace(0, 600, 12)
    histories = {
        ("SSAH", 16): (t, 0.8 - 0.3 * np.exp(-t / 60)),
        ("DCMH", 16): {"time": t, "map": 0.75 - 0.3 * np.exp(-t / 300)},
        ("SSAH", 64): (t, 0.85 - 0.3 * np.exp(-t / 60)),
        ("DCMH", 64): (t, 0.78 - 0.3 * np.exp(-t / 300)),
    }
    assert_png(plot.plot_map_vs_time(histories, tmp_path / "train.png", title="MIRFLICKR-25K"))


def test_bad_input(tmp_path):
    pytest.importorskip("matplotlib")
    ok = {"a": ([1, 2], [0.5, 0.6])}
    with pytest.raises(ValueError, match=r"path must name a .png file, got '.*pr.pdf'"):
        plot.plot_precision_at_n(ok, tmp_path / "pr.pdf")
    with pytest.raises(TypeError, match=r"path must be a str or os.PathLike, got int"):
        plot.plot_precision_at_n(ok, 3)
    with pytest.raises(ValueError, match=r"curves must be a non-empty mapping"):
        plot.plot_precision_at_n({}, tmp_path / "x.png")
    mismatch = r"curves\['a'\]: n and precision must be non-empty and the same length, got 2 and 3"
    with pytest.raises(ValueError, match=mismatch):
        plot.plot_precision_at_n({"a": ([1, 2], [0.1, 0.2, 0.3])}, tmp_path / "x.png")
    with pytest.raises(TypeError, match=r"curve labels must be all str or all \(method, nbits\) tuples"):
        plot.plot_map_vs_time({"a": ([1], [0.5]), ("b", 16): ([1], [0.5])}, tmp_path / "x.png")
    with pytest.raises(ValueError, match=r"histories\['a'\] needs the keys \('time', 'map'\), missing \['map'\]"):
        plot.plot_map_vs_time({"a": {"time": [1]}}, tmp_path / "x.png")
    with pytest.raises(ValueError, match=r"curves\['a'\] needs the keys \('n', 'precision'\), missing \['precision'\]"):
        plot.plot_precision_at_n({"a": {"n": [1]}}, tmp_path / "x.png")
    with pytest.raises(TypeError, match=r"curves\['a'\] must be a pair \(precision, recall\) of sequences"):
        plot.plot_pr_by_radius({"a": 3}, tmp_path / "x.png")
    assert not list(tmp_path.glob("*.png"))


def test_importing_plot_does_not_load_matplotlib():
    code = "import sys, xmhash.plot, xmhash.metrics; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"
