"""End-to-end training on tiny synthetic data: outputs, determinism, exact resume, checkpoints, failures."""

import csv
import json
import os
import re
import signal

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("xmhash.nn.functional")  # the pairwise loss (issue 5)
pytest.importorskip("xmhash.metrics")

import xmhash  # noqa: E402
from xmhash import data as xdata  # noqa: E402
from xmhash.models import load_model  # noqa: E402
from xmhash.train import TrainConfig, TrainingDiverged, TrainingInterrupted, fit  # noqa: E402
from xmhash.train.stages import StageTrainer  # noqa: E402

TINY = {"bits": 16, "epochs": 2, "batch_size": 64, "data.synthetic_n": 600, "model.text_hidden": 64,
        "model.label_hidden": 64, "model.semantic_dim": 32, "model.dcmh_text_hidden": 64,
        "ssah.lab_passes": [2, 1], "ssah.img_passes": [2, 1], "ssah.txt_passes": [2, 1], "eval_batch_size": 256,
        "threads": 1}


@pytest.fixture(scope="module")
def data():
    return xdata.synthetic("mirflickr-like", n=600, seed=0)


def tiny(tmp_path, name="run", **over):
    return TrainConfig().replace(**{**TINY, "out": str(tmp_path / name), **over})


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def _assert_same_state(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.parametrize("method", ["ssah", "dcmh"])
def test_fit_writes_a_complete_run(tmp_path, data, method):
    res = fit(tiny(tmp_path, method=method), data=data)
    run = tmp_path / "run"
    n_q, n_r = len(data.splits["query"]), len(data.splits["retrieval"])
    assert res.codes["query_image"].shape == (n_q, 2) and res.codes["retrieval_text"].shape == (n_r, 2)
    assert all(c.dtype == np.uint8 for c in res.codes.values())
    for f in ("config.toml", "config.json", "train_log.csv", "last.pt", "best.pt", "metrics.json",
              "codes/query_image.npy", "codes/retrieval_text.npy", "codes/retrieval_image.xmhidx"):
        assert (run / f).is_file(), f
    rows = (run / "train_log.csv").read_text().strip().splitlines()
    assert len(rows) == 3 and "val_map" in rows[0] and "train_seconds" in rows[0]
    index = xmhash.HammingIndex.load(run / "codes" / "retrieval_text.xmhidx")
    np.testing.assert_array_equal(index.codes, res.codes["retrieval_text"])
    np.testing.assert_array_equal(np.load(run / "codes" / "query_image.npy"), res.codes["query_image"])
    m = json.loads((run / "metrics.json").read_text())
    for d in ("i2t", "t2i"):
        assert 0 < m["test"][d]["map_all_index"] <= 1 and 0 < m["test"][d]["map_all_average"] <= 1
        assert len(m["test"][d]["pr_by_radius"]["radius"]) == 17
    assert m["best_epoch"] in (1, 2) and len(m["curve"]) == 2
    # the returned model encodes exactly the saved codes; codes are ready for xmhash.search
    q = res.model.encode_image(data.image[data.splits["query"]])
    np.testing.assert_array_equal(q, res.codes["query_image"])
    D, I = xmhash.search(q[:3], res.codes["retrieval_text"], k=5)
    assert D.shape == (3, 5)


def test_checkpoints_load_with_weights_only(tmp_path, data):
    res = fit(tiny(tmp_path, epochs=1), data=data)
    for name in ("last.pt", "best.pt"):
        ckpt = torch.load(tmp_path / "run" / name, weights_only=True)
        assert ckpt["format"] == "xmhash-checkpoint" and ckpt["config"]["bits"] == 16
    model = load_model(tmp_path / "run" / "best.pt")
    np.testing.assert_array_equal(model.encode_text(data.text[data.splits["query"]]), res.codes["query_text"])


@pytest.mark.parametrize("method", ["ssah", "dcmh"])
def test_seeded_cpu_runs_are_deterministic(tmp_path, data, method):
    a = fit(tiny(tmp_path, "a", method=method), data=data)
    b = fit(tiny(tmp_path, "b", method=method), data=data)
    _assert_same_state(a.model.state_dict(), b.model.state_dict())
    for k in a.codes:
        np.testing.assert_array_equal(a.codes[k], b.codes[k])
    c = fit(tiny(tmp_path, "c", method=method, seed=1), data=data)
    assert any(not np.array_equal(a.codes[k], c.codes[k]) for k in a.codes)


def _interrupt_after(monkeypatch, n_steps, *, real_signal=False):
    calls = {"n": 0}
    original = StageTrainer.run_stage

    def run_stage(self, *args, **kwargs):
        step = self.step

        def counting_step(*a, **k):
            calls["n"] += 1
            if calls["n"] == n_steps:
                if real_signal:
                    os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C sends
                else:
                    self.stop.requested = True
            return step(*a, **k)

        self.step = counting_step
        try:
            return original(self, *args, **kwargs)
        finally:
            del self.step

    monkeypatch.setattr(StageTrainer, "run_stage", run_stage)


@pytest.mark.parametrize("method, sampling, n_steps", [
    ("ssah", "random", 3), ("ssah", "sweep", 7), ("ssah", "random", 22), ("dcmh", "sweep", 5),
    ("dcmh", "random", 9),
])
def test_resume_after_interrupt_equals_an_uninterrupted_run(tmp_path, data, monkeypatch, method, sampling,
                                                            n_steps):
    cfg = dict(method=method, sampling=sampling)
    ref = fit(tiny(tmp_path, "ref", **cfg), data=data)
    with monkeypatch.context() as mp:
        _interrupt_after(mp, n_steps)
        with pytest.raises(TrainingInterrupted, match="--resume") as exc:
            fit(tiny(tmp_path, "cut", **cfg), data=data)
    assert exc.value.checkpoint.endswith("last.pt")
    res = fit(tiny(tmp_path, "cut", **cfg), data=data, resume=True)
    _assert_same_state(ref.model.state_dict(), res.model.state_dict())
    for k in ref.codes:
        np.testing.assert_array_equal(ref.codes[k], res.codes[k])
    ref_log, cut_log = _log_rows(tmp_path / "ref"), _log_rows(tmp_path / "cut")
    assert ref_log[0] == cut_log[0]  # the header, in the same column order
    assert len(ref_log) == len(cut_log) == 3
    assert ref_log == cut_log  # every loss, pass count, learning rate, monitor value and validation mAP


def _log_rows(run_dir) -> list[list[str]]:
    """train_log.csv without its wall-clock column (train_seconds)."""
    with open(run_dir / "train_log.csv", newline="") as f:
        rows = list(csv.reader(f))
    keep = [i for i, name in enumerate(rows[0]) if name != "train_seconds"]
    assert len(keep) == len(rows[0]) - 1
    return [[r[i] for i in keep] for r in rows]


def test_ctrl_c_leaves_a_resumable_checkpoint(tmp_path, data, monkeypatch):
    with monkeypatch.context() as mp:
        _interrupt_after(mp, 4, real_signal=True)
        with pytest.raises(TrainingInterrupted):
            fit(tiny(tmp_path, epochs=1), data=data)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored
    ckpt = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert ckpt["state"]["position"]["steps"] == 4  # the step in flight when Ctrl-C came completes
    fit(tiny(tmp_path, epochs=1), data=data, resume=True)


def test_nan_loss_stops_with_term_and_step_and_keeps_last_good_checkpoint(tmp_path, data, monkeypatch):
    from xmhash.train import ssah

    fit(tiny(tmp_path, epochs=1), data=data)
    good = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    calls = {"n": 0}
    original = ssah.SSAHTrainer._quant

    def quant(self, h, rows):
        calls["n"] += 1
        q = original(self, h, rows)
        return q * float("nan") if calls["n"] == 4 else q

    monkeypatch.setattr(ssah.SSAHTrainer, "_quant", quant)
    with pytest.raises(TrainingDiverged, match=r"loss term 'quantization' became nan in stage 'lab' at epoch 2, "
                                               r"sub-stage 1, pass 1, step 4.*last good checkpoint") as exc:
        fit(tiny(tmp_path, epochs=2), data=data, resume=True)
    assert exc.value.term == "quantization" and exc.value.step["stage"] == "lab"
    after = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    _assert_same_state(good["model"], after["model"])


def test_gradient_flow_of_the_adversarial_term(tmp_path, data):
    from xmhash.train.dataset import prepare
    from xmhash.train.loop import build_model
    from xmhash.train.ssah import SSAHTrainer

    for variant, reaches_net in (("paper", True), ("published-code", False)):
        cfg = tiny(tmp_path, variant=variant)
        td = prepare(data, cfg)
        model = build_model(cfg, td)
        tr = SSAHTrainer(model, td, cfg, np.random.default_rng(0), torch.device("cpu"))
        rows = np.arange(8)
        for stage, net, disc in (("img", model.image_net, model.disc_image), ("txt", model.text_net,
                                                                             model.disc_text)):
            x = td.image_batch(rows, "cpu") if stage == "img" else td.text_batch(rows)
            out = net(x)
            model.zero_grad(set_to_none=True)
            tr._adversarial(stage, out.feature).backward()
            net_grads = [p.grad for p in net.parameters() if p.grad is not None and p.grad.abs().sum() > 0]
            disc_grads = [p.grad for p in disc.parameters() if p.grad is not None and p.grad.abs().sum() > 0]
            assert bool(net_grads) == reaches_net, (variant, stage)
            # paper: D frozen in the generator step; published code: the term updates only D
            assert bool(disc_grads) == (not reaches_net), (variant, stage)
        # published code: the generators' optimisers also hold the discriminator parameters (as TF's did)
        img_params = {id(p) for g in tr.opt["img"].param_groups for p in g["params"]}
        assert all((id(p) in img_params) == (not reaches_net) for p in model.disc_image.parameters())


@pytest.mark.parametrize("over", [{"ablation": "ssah-1"}, {"ablation": "ssah-2"}, {"ablation": "ssah-3"},
                                  {"variant": "published-code"}, {"pairwise_backend": "torch"}])
def test_ablations_and_variants_train(tmp_path, data, over):
    res = fit(tiny(tmp_path, epochs=1, **over), data=data)
    assert res.metrics["test"]["i2t"]["map_all_index"] > 0
    row = (tmp_path / "run" / "train_log.csv").read_text().splitlines()[0]
    assert ("lab_pair_hash" in row) == (over.get("ablation") != "ssah-1")
    assert ("dis_discriminator" in row) == (over.get("ablation") != "ssah-3")


def test_bad_inputs(tmp_path, data):
    fit(tiny(tmp_path, epochs=1), data=data)
    with pytest.raises(FileExistsError, match="already holds a run"):
        fit(tiny(tmp_path, epochs=1), data=data)
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        fit(tiny(tmp_path, "none", epochs=1), data=data, resume=True)
    with pytest.raises(ValueError, match=r"different configuration \(bits differ\)"):
        fit(tiny(tmp_path, epochs=2, bits=24), data=data, resume=True)
    narrow = xdata.CrossModalData(data.image[:, :100], data.text, data.labels, splits=data.splits)
    with pytest.raises(ValueError, match="trained with image_dim=4096, but this dataset gives 100"):
        fit(tiny(tmp_path, epochs=2), data=narrow, resume=True)
    model = load_model(tmp_path / "run" / "best.pt")
    with pytest.raises(ValueError, match=r"image features must have shape \(n, 4096\)"):
        model.encode_image(np.zeros((2, 100), np.float32))
    with pytest.raises(TypeError, match="config must be a TrainConfig"):
        fit({"bits": 16})


def _exact(message: str) -> str:
    return f"^{re.escape(message)}$"


def test_damaged_and_foreign_checkpoints_are_clear_errors(tmp_path):
    from xmhash.train.checkpoint import load_checkpoint

    path = tmp_path / "x.pt"
    with pytest.raises(FileNotFoundError, match=_exact(f"checkpoint {str(path)!r} does not exist")):
        load_checkpoint(path)
    path.write_bytes(b"not a checkpoint" * 8)
    with pytest.raises(ValueError, match="^" + re.escape(f"{path}: not a readable xmhash checkpoint (")):
        load_checkpoint(path)
    for foreign in ({"weights": torch.zeros(2)}, torch.zeros(2), {"format": "other", "version": 1}):
        torch.save(foreign, path)
        with pytest.raises(ValueError, match=_exact(f"{path}: not an xmhash checkpoint (no format tag "
                                                    "'xmhash-checkpoint')")):
            load_checkpoint(path)
    torch.save({"format": "xmhash-checkpoint", "version": 2}, path)
    with pytest.raises(ValueError, match=_exact(f"{path}: checkpoint version 2 is not supported (expected 1)")):
        load_checkpoint(path)


def test_splits_that_cannot_train_are_clear_errors(tmp_path, data):
    from xmhash.train.dataset import prepare

    cfg = tiny(tmp_path)
    idx = np.arange(len(data))

    def with_splits(**splits):
        return xdata.CrossModalData(data.image, data.text, data.labels, splits=splits)

    with pytest.raises(ValueError, match=_exact("the dataset has no 'retrieval' split (splits: ['query', 'train'])")):
        prepare(with_splits(query=idx[:10], train=idx[10:]), cfg)
    with pytest.raises(ValueError, match=_exact("the validation split overlaps the query split; model selection must "
                                                "not see queries")):
        prepare(with_splits(query=idx[:10], retrieval=idx[10:], train=idx[20:], val=idx[5:20]), cfg)
    with pytest.raises(ValueError, match=_exact("the training split has 1 items; need at least 2")):
        prepare(with_splits(query=idx[:10], retrieval=idx[10:], train=idx[20:22], val=idx[21:30]), cfg)


def test_raw_images_through_cnnf(tmp_path):
    """The raw-image path: uint8 (n, 224, 224, 3) images, a (tiny) CNN-F from a MatConvNet file, both methods."""
    scipy_io = pytest.importorskip("scipy.io")
    from cnnf_files import tiny_cnnf

    rng = np.random.default_rng(0)
    content, _, _ = tiny_cnnf(rng, "meta")
    scipy_io.savemat(tmp_path / "vgg-f.mat", content)
    n = 48
    labels = (rng.random((n, 5)) < 0.3).astype(np.float32)
    labels[np.arange(n), rng.integers(0, 5, n)] = 1
    images = rng.integers(0, 256, (n, 224, 224, 3), dtype=np.uint8)
    text = (rng.random((n, 60)) < 0.1).astype(np.float32)
    idx = np.arange(n)
    raw = xdata.CrossModalData(images, text, labels, splits={"query": idx[:8], "retrieval": idx[8:],
                                                             "train": idx[8:40], "val": idx[40:]})
    over = {"model.image_backbone": "cnnf", "model.cnnf_weights": str(tmp_path / "vgg-f.mat"), "epochs": 1,
            "batch_size": 16, "ssah.lab_passes": [1], "ssah.dis_passes": [1], "ssah.img_passes": [1],
            "ssah.txt_passes": [1]}
    for method in ("ssah", "dcmh"):
        res = fit(tiny(tmp_path, method, method=method, **over), data=raw)
        assert res.codes["query_image"].shape == (8, 2)
        model = load_model(tmp_path / method / "best.pt")
        np.testing.assert_array_equal(model.encode_image(images[:8]), res.codes["query_image"])
    with pytest.raises(ValueError, match="needs raw images"):
        fit(tiny(tmp_path, "f", **over), data=xdata.synthetic("mirflickr-like", n=100, seed=0))
    with pytest.raises(ValueError, match="holds raw images"):
        fit(tiny(tmp_path, "g"), data=raw)


def test_row_views_read_any_index_order_from_arrays_and_image_sources(tmp_path):
    h5py = pytest.importorskip("h5py")
    from xmhash.data.images import HDF5Images
    from xmhash.train.dataset import RowView

    rng = np.random.default_rng(0)
    features = rng.random((30, 5)).astype(np.float32)
    images = rng.integers(0, 256, (30, 4, 3, 3), dtype=np.uint8)
    with h5py.File(tmp_path / "images.h5", "w") as f:
        f["images"] = images
    idx = np.array([17, 3, 29, 3, 0, 12, 8, 8, 21])  # unsorted, with repeats
    for array, want in ((features, features), (images, images), (HDF5Images(tmp_path / "images.h5", "images"), images)):
        view = RowView(array, idx)
        assert view.shape == (len(idx), *want.shape[1:]) and len(view) == len(idx)
        for sl in (slice(None), slice(2, 7), slice(5, 5)):
            got = view[sl]
            assert got.dtype == want.dtype
            np.testing.assert_array_equal(got, want[idx[sl]])


def test_input_normalisation_is_fitted_on_train_and_saved_in_the_model(tmp_path, data):
    res = fit(tiny(tmp_path, epochs=1, method="dcmh", **{"model.image_normalize": "standardize",
                                                        "model.text_normalize": "center"}), data=data)
    train = data.splits["train"]
    norm = res.model.image_net.backbone.norm
    np.testing.assert_allclose(norm.shift.numpy(), data.image[train].mean(0), rtol=1e-4, atol=1e-5)
    std = data.image[train].std(0, ddof=1)
    np.testing.assert_allclose(norm.scale.numpy(), np.where(std > 0, 1 / np.where(std > 0, std, 1), 1), rtol=1e-3)
    np.testing.assert_allclose(res.model.text_net.input_norm.shift.numpy(), data.text[train].mean(0), atol=1e-6)
    model = load_model(tmp_path / "run" / "best.pt")  # the statistics travel with the weights
    np.testing.assert_array_equal(model.encode_image(data.image[data.splits["query"]]), res.codes["query_image"])
    with pytest.raises(ValueError, match="model.image_normalize must be one of"):
        tiny(tmp_path, **{"model.image_normalize": "l2"})
