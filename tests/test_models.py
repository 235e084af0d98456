import re

import numpy as np
import pytest

torch = pytest.importorskip("torch")
scipy_io = pytest.importorskip("scipy.io")

import xmhash  # noqa: E402
from xmhash.models import (  # noqa: E402
    CNNF, DCMHImgNet, DCMHTxtNet, Discriminator, FeatureInput, ImgNet, LabNet, LocalResponseNorm, MultiScaleFusion,
    TxtNet, create_model, list_models, load_matconvnet, make_image_backbone, register_model,
)
from xmhash.models.layers import InputNorm  # noqa: E402


def _tf_lrn(x, depth_radius=2, bias=2.0, alpha=1e-4, beta=0.75):
    """TensorFlow's formula, written out: sqr_sum over channels c-r..c+r, no division by the window size."""
    x = np.asarray(x, dtype=np.float64)
    out = np.empty_like(x)
    c = x.shape[1]
    for j in range(c):
        lo, hi = max(0, j - depth_radius), min(c, j + depth_radius + 1)
        out[:, j] = x[:, j] / (bias + alpha * (x[:, lo:hi] ** 2).sum(1)) ** beta
    return out


def test_lrn_matches_tensorflow_formula():
    x = torch.rand(3, 17, dtype=torch.float64) * 30
    np.testing.assert_allclose(LocalResponseNorm()(x).numpy(), _tf_lrn(x.numpy()), rtol=1e-10)


def _tf_multiscale(t, weights, windows):
    """Reference for the published MultiScaleTxt: VALID avg pool, scalar weight, ReLU, TF1 legacy bilinear resize."""
    n, d = t.shape
    chans = [t]
    for w, a in zip(windows, weights):
        L = d // w
        pooled = np.maximum(a * t[:, : L * w].reshape(n, L, w).mean(2), 0)
        out = np.empty((n, d))
        for x in range(d):
            src = x * L / d
            lo = min(int(np.floor(src)), L - 1)
            hi = min(lo + 1, L - 1)
            f = src - lo
            out[:, x] = pooled[:, lo] * (1 - f) + pooled[:, hi] * f
        chans.append(out)
    return np.stack(chans, -1)


@pytest.mark.parametrize("d", [1386, 173, 50])
def test_multiscale_fusion_matches_published_block(d):
    fusion = MultiScaleFusion(d).double()
    with torch.no_grad():
        fusion.scale_weight.copy_(torch.tensor([0.7, -0.2, 1.3, 0.5, 2.0]))
    t = (torch.rand(2, d, dtype=torch.float64) < 0.1).double()
    got = fusion(t).detach().numpy()
    assert fusion.windows == (5, 10, 15, 30, 50)
    want = _tf_multiscale(t.numpy(), fusion.scale_weight.detach().numpy(), fusion.windows)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-13)
    assert got.shape == (2, d, 6)
    assert (got[..., 2] == 0).all()  # negative scalar weight -> the ReLU zeroes that scale


def test_multiscale_pooled_lengths_and_paper_scales():
    assert [1386 // w for w in MultiScaleFusion(1386).windows] == [277, 138, 92, 46, 27]
    assert MultiScaleFusion(1386, "paper").windows == (5, 10, 15, 25, 50)
    with pytest.raises(ValueError, match="shorter than pooling window"):
        MultiScaleFusion(40)
    with pytest.raises(ValueError, match="levels must be one of"):
        MultiScaleFusion(1386, "bogus")


def test_subnetwork_shapes():
    bits, c = 16, 7
    lab = LabNet(c, bits, hidden=64, semantic_dim=32)
    h, f, p = lab(torch.rand(5, c))
    assert h.shape == (5, bits) and f.shape == (5, 32) and p.shape == (5, c)
    assert (h.abs() < 1).all() and ((p > 0) & (p < 1)).all() and (f >= 0).all()
    txt = TxtNet(300, bits, c, hidden=64, semantic_dim=32)
    assert txt.fc1.in_features == 300 * 6
    h, f, p = txt(torch.rand(5, 300))
    assert h.shape == (5, bits) and f.shape == (5, 32) and p.shape == (5, c)
    assert Discriminator(32, (16, 8))(f).shape == (5,)
    widths = [m.out_features for m in Discriminator(512).net if isinstance(m, torch.nn.Linear)]
    assert widths == [512, 256, 1]
    widths = [m.out_features for m in Discriminator(512, "paper").net if isinstance(m, torch.nn.Linear)]
    assert widths == [4096, 4096, 1]


@pytest.mark.parametrize("make, name, dims, later", [
    (lambda: DCMHImgNet(FeatureInput(30), 16, hidden=(24, 12)), "mlp", [30, 24, 12, 16], []),
    (lambda: DCMHImgNet(FeatureInput(30), 16), "mlp", [30, 16], []),
    (lambda: DCMHTxtNet(30, 16, hidden=20), "net", [30, 20, 16], []),
    (lambda: Discriminator(20, [12, 7]), "net", [20, 12, 7, 1], []),
    # ImgNet builds its hash and label heads before the 0.01 * N(0, 1) init of them all
    (lambda: ImgNet(FeatureInput(30), 16, 5, hidden=(24,), semantic_dim=10), "mlp", [30, 24, 10], [(10, 16), (10, 5)]),
])
def test_mlp_blocks_keep_checkpoint_keys_and_seeded_init(make, name, dims, later):
    """The fully connected blocks: Linear layers at Sequential indices 0, 2, 4, ... (the state_dict keys saved in
    checkpoints), created in order and then initialised in order, so a seed gives the same weights as before."""
    torch.manual_seed(0)
    state = make().state_dict()
    torch.manual_seed(0)
    linears = [torch.nn.Linear(a, b) for a, b in [*zip(dims, dims[1:]), *later]]
    for lin in linears:
        torch.nn.init.normal_(lin.weight, 0.0, 0.01)
        torch.nn.init.normal_(lin.bias, 0.0, 0.01)
    keys = [f"{name}.{2 * i}.{p}" for i in range(len(dims) - 1) for p in ("weight", "bias")]
    assert [k for k in state if k.startswith(f"{name}.")] == keys
    for i, lin in enumerate(linears[:len(dims) - 1]):
        assert torch.equal(state[f"{name}.{2 * i}.weight"], lin.weight.detach())
        assert torch.equal(state[f"{name}.{2 * i}.bias"], lin.bias.detach())


def test_init_is_point_zero_one_normal_for_weights_and_biases():
    torch.manual_seed(0)
    lab = LabNet(24, 64)
    for p in (lab.fc1.weight, lab.fc1.bias, lab.fc2.weight):
        assert abs(p.std().item() - 0.01) < 0.002 and abs(p.mean().item()) < 0.002


def test_registry():
    names = list_models()
    for n in ["ssah", "ssah_1", "ssah_2", "ssah_3", "dcmh", "ssah_labnet", "ssah_txtnet", "ssah_discriminator"]:
        assert n in names
    assert list_models("dcmh*") == ["dcmh", "dcmh_imgnet", "dcmh_txtnet"]
    kw = dict(bits=8, image_dim=20, text_dim=60, num_labels=3, label_hidden=16, text_hidden=16, semantic_dim=8)
    assert create_model("ssah_1", **kw).lab_net is None
    assert create_model("ssah_1", **kw).disc_text is None
    assert not hasattr(create_model("ssah_2", **kw).text_net, "fusion")
    assert create_model("ssah_3", **kw).disc_image is None
    with pytest.raises(ValueError, match="unknown model 'ssha'; did you mean 'ssah'"):
        create_model("ssha", **kw)
    with pytest.raises(ValueError, match="already registered"):
        register_model("ssah")(lambda **k: None)


@pytest.mark.parametrize("bits", [12, 0, -8])
def test_bits_must_be_multiple_of_8(bits):
    with pytest.raises(ValueError, match="bits must be a positive multiple of 8"):
        create_model("dcmh", bits=bits, image_dim=20, text_dim=60)


def test_encode_returns_packed_codes_and_checks_width():
    torch.manual_seed(0)
    m = create_model("dcmh", bits=24, image_dim=20, text_dim=60, text_hidden=32)
    x = np.random.default_rng(0).standard_normal((70, 20)).astype(np.float32)
    codes = m.encode_image(x, batch_size=16)
    assert codes.dtype == np.uint8 and codes.shape == (70, 3)
    with torch.no_grad():
        ref = xmhash.pack(m.image_net(torch.from_numpy(x)).numpy())
    np.testing.assert_array_equal(codes, ref)
    D, I = xmhash.search(codes[:2], codes, k=1)
    assert (D[:, 0] == 0).all()
    with pytest.raises(ValueError, match=r"image features must have shape \(n, 20\).*got \(70, 21\)"):
        m.encode_image(np.zeros((70, 21), np.float32))
    with pytest.raises(ValueError, match=r"text must have shape \(n, 60\)"):
        m.encode_text(np.zeros((3, 61), np.float32))
    with pytest.raises(ValueError, match="text must have 60 features per row"):
        m.text_net(torch.zeros(3, 59))


# ------------------------------------------------------------------------------------------- CNN-F loading
from cnnf_files import tiny_cnnf as _tiny_cnnf  # noqa: E402

def _reference_cnnf(img, weights, avg):
    """Independent forward: NHWC image minus average, MatConvNet layouts converted by hand."""
    F = torch.nn.functional
    x = torch.from_numpy(img.astype(np.float64) - avg).permute(0, 3, 1, 2)

    def conv(x, name, stride, pad):
        w, b = weights[name]
        wt = torch.from_numpy(w).double().permute(3, 2, 0, 1)  # (h, w, in, out) -> (out, in, h, w)
        return F.conv2d(F.pad(x, (pad, pad, pad, pad)), wt, torch.from_numpy(b.ravel()).double(), stride=stride)

    def lrn(x):
        return F.local_response_norm(x, 5, alpha=5e-4, beta=0.75, k=2.0)

    def pool(x):
        return F.max_pool2d(F.pad(x, (0, 1, 0, 1), value=float("-inf")), 3, 2)

    x = pool(lrn(torch.relu(conv(x, "conv1", 4, 0))))
    x = pool(lrn(torch.relu(conv(x, "conv2", 1, 2))))
    x = torch.relu(conv(x, "conv3", 1, 1))
    x = torch.relu(conv(x, "conv4", 1, 1))
    x = pool(torch.relu(conv(x, "conv5", 1, 1)))
    x = torch.relu(conv(x, "fc6", 1, 0))
    x = torch.relu(conv(x, "fc7", 1, 0))
    return x.flatten(1)


@pytest.mark.parametrize("layout", ["old", "meta"])
def test_cnnf_loads_both_matconvnet_layouts(tmp_path, layout):
    rng = np.random.default_rng(1)
    content, weights, avg = _tiny_cnnf(rng, layout)
    path = tmp_path / "imagenet-vgg-f.mat"
    scipy_io.savemat(path, content)
    layers, avg_loaded = load_matconvnet(path)
    assert [n for n, _, _ in layers][-1] == "relu7"  # fc8 and the softmax are dropped
    np.testing.assert_array_equal(avg_loaded, avg)
    net = CNNF.from_matconvnet(path).double()
    img = (rng.random((2, 224, 224, 3)) * 255).astype(np.float32)
    with torch.no_grad():
        got = net(torch.from_numpy(img)).numpy()
        got_nchw = net(torch.from_numpy(img).permute(0, 3, 1, 2)).numpy()
    want = _reference_cnnf(img, weights, avg).numpy()
    assert got.shape == (2, 9)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(got, got_nchw)


def test_cnnf_model_rebuilds_from_its_spec(tmp_path):
    content, _, _ = _tiny_cnnf(np.random.default_rng(2), "old")
    path = tmp_path / "vgg.mat"
    scipy_io.savemat(path, content)
    kw = dict(bits=8, image_dim=None, text_dim=60, num_labels=3, label_hidden=16, text_hidden=16, semantic_dim=8,
              image_backbone="cnnf")
    m = create_model("ssah", cnnf_weights=str(path), **kw)
    spec = m.spec
    assert "cnnf_weights" not in spec["kwargs"]
    m2 = create_model(spec["name"], **spec["kwargs"])
    m2.load_state_dict(m.state_dict())
    img = np.random.default_rng(3).integers(0, 256, (3, 224, 224, 3), dtype=np.uint8)
    np.testing.assert_array_equal(m.encode_image(img), m2.encode_image(img))


def test_cnnf_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="imagenet-vgg-f.mat.*vlfeat"):
        load_matconvnet(tmp_path / "missing.mat")
    scipy_io.savemat(tmp_path / "dag.mat", {"vars": np.zeros(2), "params": np.zeros(2), "meta": {"x": 1}})
    with pytest.raises(ValueError, match="DagNN"):
        load_matconvnet(tmp_path / "dag.mat")
    content, _, _ = _tiny_cnnf(np.random.default_rng(4), "old")
    del content["normalization"]
    scipy_io.savemat(tmp_path / "nonorm.mat", content)
    with pytest.raises(ValueError, match="neither 'normalization'.*nor 'meta.normalization'"):
        load_matconvnet(tmp_path / "nonorm.mat")
    (tmp_path / "junk.mat").write_bytes(b"not a mat file at all" * 10)
    with pytest.raises(ValueError, match="junk.mat: not a readable MATLAB .mat file"):
        load_matconvnet(tmp_path / "junk.mat")
    net = CNNF([("c", "conv", dict(shape=(2, 3, 3, 3), stride=(1, 1), pad=(0, 0, 0, 0)))],
               average_shape=(8, 8, 3))
    with pytest.raises(ValueError, match="resize the images to"):
        net(torch.zeros(1, 3, 9, 9))


def _exact(message: str) -> str:
    return f"^{re.escape(message)}$"


def test_bad_building_blocks_are_clear_errors():
    with pytest.raises(ValueError, match=_exact("mode must be 'none', 'center' or 'standardize', got 'l2'")):
        InputNorm(3).fit(torch.zeros(2, 3), "l2")
    with pytest.raises(ValueError, match=_exact("widths must be one of ['paper', 'published'] or a list of ints, "
                                                "got 'large'")):
        Discriminator(32, "large")
    with pytest.raises(ValueError, match=_exact("image_dim (the feature width) is required for the 'features' image "
                                                "backbone")):
        make_image_backbone("features")
    with pytest.raises(ValueError, match=_exact("image backbone must be 'features', 'cnnf' or 'torchvision:NAME', "
                                                "got 'vgg16'")):
        make_image_backbone("vgg16", image_dim=10)
    net = CNNF([("c", "conv", dict(shape=(2, 3, 3, 3), stride=(1, 1), pad=(0, 0, 0, 0)))], average_shape=(8, 8, 3))
    with pytest.raises(ValueError, match=_exact("images must be a 4-D batch (n, 3, H, W) or (n, H, W, 3), got shape "
                                                "(8, 8, 3)")):
        net(torch.zeros(8, 8, 3))
    with pytest.raises(ValueError, match=_exact("images must have 3 colour channels, got shape (1, 4, 8, 8)")):
        net(torch.zeros(1, 4, 8, 8))
