"""The xmhash train / eval / encode / sweep / ablate commands end to end on tiny synthetic data."""

import json
import re

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("xmhash.nn.functional")
pytest.importorskip("xmhash.metrics")
pytest.importorskip("matplotlib")

import xmhash  # noqa: E402
from xmhash import data as xdata  # noqa: E402
from xmhash.cli import build_parser, main  # noqa: E402

SETS = ["data.synthetic_n=600", "model.text_hidden=64", "model.label_hidden=64", "model.semantic_dim=32",
        "model.dcmh_text_hidden=64", "ssah.lab_passes=[1]", "ssah.img_passes=[1]", "ssah.txt_passes=[1]",
        "ssah.dis_passes=[1]", "batch_size=64", "threads=1"]


def _args(*extra):
    out = []
    for s in SETS:
        out += ["--set", s]
    return [*extra, *out, "--epochs", "1", "--quiet"]


def _run_records(out):
    return {p.parent.name: json.loads(p.read_text()) for p in out.glob("*/metrics.json") if p.parent.name != "report"}


def test_train_prints_the_table_and_writes_the_report(tmp_path, capsys, monkeypatch):
    out = tmp_path / "runs"
    assert main(["train", *_args("--method", "ssah,dcmh", "--bits", "8,16", "--out", str(out))]) == 0
    printed = capsys.readouterr().out
    assert "| method | I→T 8 | I→T 16 | T→I 8 | T→I 16 |" in printed
    assert "| SSAH |" in printed and "| DCMH |" in printed
    report = out / "report"
    for f in ("summary.md", "metrics.json", "pr_by_radius_i2t.png", "precision_at_n_t2i.png", "map_vs_time.png"):
        assert (report / f).is_file(), f
    records = json.loads((report / "metrics.json").read_text())["results"]
    assert len(records) == 2 * 2 * 2
    assert {(r["method"], r["bits"], r["direction"]) for r in records} == {
        (m, b, d) for m in ("SSAH", "DCMH") for b in (8, 16) for d in ("i2t", "t2i")}
    assert all(0 < r["map_all_index"] <= 1 and 0 < r["map_all_average"] <= 1 for r in records)
    cfg = (out / "ssah_8" / "config.toml").read_text()
    assert "synthetic_n = 600" in cfg and 'method = "ssah"' in cfg
    # --resume keeps finished runs
    assert main(["train", *_args("--method", "ssah", "--bits", "8", "--out", str(out), "--resume")]) == 0

    # eval re-scores the saved best checkpoints, generating the runs' shared dataset once; encode writes codes +
    # an index
    from xmhash.train import dataset

    loads = []
    original = dataset.load_dataset
    monkeypatch.setattr(dataset, "load_dataset", lambda cfg: loads.append(cfg) or original(cfg))
    written = _run_records(out)
    assert sorted(written) == ["dcmh_16", "dcmh_8", "ssah_16", "ssah_8"]
    saved = {p: p.read_bytes() for p in out.glob("*/codes/*.npy")}
    assert main(["eval", str(out), "--quiet"]) == 0
    assert len(loads) == 1
    assert _run_records(out) == written  # the re-scored metrics are the ones training wrote
    assert len(saved) == 4 * 4 and all(p.read_bytes() == b for p, b in saved.items())
    assert "| SSAH |" in capsys.readouterr().out
    enc = tmp_path / "enc"
    assert main(["encode", str(out / "dcmh_16" / "best.pt"), "--split", "query", "--out", str(enc), "--quiet"]) == 0
    codes = np.load(enc / "query_image.npy")
    np.testing.assert_array_equal(codes, np.load(out / "dcmh_16" / "codes" / "query_image.npy"))
    assert xmhash.HammingIndex.load(enc / "query_text.xmhidx").ntotal == codes.shape[0]


def test_sweep_and_errors(tmp_path, capsys):
    out = tmp_path / "sweep"
    assert main(["sweep", "--param", "alpha=0.5,2", *_args("--bits", "8", "--out", str(out))]) == 0
    printed = capsys.readouterr().out
    assert "SSAH ssah.alpha=0.5" in printed and "SSAH ssah.alpha=2" in printed
    assert main(["train", *_args("--bits", "12", "--out", str(tmp_path / "x"))]) == 2
    assert "bits must be a positive multiple of 8" in capsys.readouterr().err
    assert main(["train", *_args("--set", "ssah.alpah=1", "--out", str(tmp_path / "y"))]) == 2
    assert "unknown config key 'ssah.alpah'; did you mean 'ssah.alpha'" in capsys.readouterr().err
    assert main(["train", *_args("--method", "ssah", "--bits", "8", "--out", str(out / "ssah.alpha=0.5"))]) == 2
    assert "already holds a run" in capsys.readouterr().err


def _run(argv):
    """A command without main()'s error printing, so the exception itself can be checked."""
    args = build_parser().parse_args(argv)
    return args.func(args)


def _exact(message: str) -> str:
    return f"^{re.escape(message)}$"


def test_command_errors_name_the_bad_input(tmp_path):
    pytest.importorskip("h5py")
    with pytest.raises(ValueError, match=_exact("--set expects KEY=VALUE, got 'epochs'")):
        _run(["train", "--set", "epochs", "--out", str(tmp_path / "a"), "--quiet"])
    with pytest.raises(ValueError, match=_exact("--param expects KEY=V1,V2,..., got 'alpha'")):
        _run(["sweep", "--param", "alpha", "--out", str(tmp_path / "b"), "--quiet"])
    with pytest.raises(ValueError, match=_exact("--param needs at least one value")):
        _run(["sweep", "--param", "alpha= , ", "--out", str(tmp_path / "b"), "--quiet"])
    with pytest.raises(FileNotFoundError, match=_exact(f"no best.pt under {tmp_path}")):
        _run(["eval", str(tmp_path), "--quiet"])

    out = tmp_path / "runs"
    assert main(["train", *_args("--method", "dcmh", "--bits", "8", "--out", str(out))]) == 0
    best = str(out / "dcmh_8" / "best.pt")
    with pytest.raises(ValueError, match=_exact("no split 'test' in the data (splits: query, retrieval, train, val)")):
        _run(["encode", best, "--split", "test", "--out", str(tmp_path / "enc"), "--quiet"])
    data = xdata.synthetic("mirflickr-like", n=600, seed=0)
    narrow = tmp_path / "narrow.h5"
    xdata.CrossModalData(data.image[:, :100], data.text, data.labels, splits=data.splits).save(narrow)
    t = data.text.shape[1]
    with pytest.raises(ValueError, match=_exact(f"{best}: trained on image/text widths 4096/{t}, but the data has "
                                                f"100/{t}")):
        _run(["encode", best, "--data", str(narrow), "--out", str(tmp_path / "enc"), "--quiet"])
