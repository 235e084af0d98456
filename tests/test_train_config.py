"""TrainConfig: TOML round trip, overrides, and every bad key/value as a clear error (no torch needed)."""

import json
import re

import pytest

from xmhash.train.config import PRESETS, TrainConfig, load_config, resolve_key


def test_defaults_follow_the_published_code():
    c = TrainConfig()
    assert (c.method, c.variant, c.bits, c.batch_size) == ("ssah", "paper", 64, 128)
    s = c.ssah
    assert (s.alpha, s.gamma, s.beta, s.eta, s.delta) == (1.0, 1.0, 1.0, 1.0, 1.0)
    assert s.lab_passes == (10, 5) and s.img_passes == (15, 7, 5) and s.txt_passes == (15, 7, 5)
    assert s.dis_passes == (1, 1)
    assert s.lr_lab == pytest.approx(1e-2) and s.lr_img == pytest.approx(10 ** -4.5)
    assert s.lr_txt == pytest.approx(10 ** -3.5) and s.lr_dis == pytest.approx(1e-3)
    assert s.lr_decay == pytest.approx(10 ** -0.5)
    assert c.num_epochs == 10 and c.replace(method="dcmh").num_epochs == 500
    assert c.model.semantic_dim == 512 and c.model.label_hidden == 4096 and c.model.text_hidden == 4096


def test_toml_round_trip_and_run_dir_files(tmp_path):
    c = TrainConfig().replace(bits=32, alpha="0.1", **{"ssah.img_passes": "3,2", "data.path": "x.h5",
                                                      "model.image_hidden": "[1024, 512]"})
    assert c.ssah.alpha == 0.1 and c.ssah.img_passes == (3, 2) and c.model.image_hidden == (1024, 512)
    c.save(tmp_path)
    assert load_config(tmp_path / "config.toml") == c
    assert TrainConfig.from_dict(json.loads((tmp_path / "config.json").read_text())) == c


def test_file_then_overrides(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text('method = "dcmh"\nbits = 16\n[dcmh]\ngamma = 2.5\n')
    c = load_config(p, {"bits": "32"})
    assert (c.method, c.bits, c.dcmh.gamma) == ("dcmh", 32, 2.5)
    assert TrainConfig.from_file(p, {"bits": "32"}) == c  # the spelling the specs' examples use


def test_config_is_frozen():
    with pytest.raises(AttributeError):
        TrainConfig().bits = 8


@pytest.mark.parametrize("key, value, message", [
    ("alhpa", 1, "unknown config key 'alhpa'; did you mean 'ssah.alpha'"),
    ("ssah.alpah", 1, "unknown config key 'ssah.alpah'; did you mean 'ssah.alpha'"),
    ("gamma", 1, "config key 'gamma' is ambiguous: use one of ssah.gamma, dcmh.gamma"),
    ("bits", 12, "bits must be a positive multiple of 8"),
    ("bits", "0", "bits must be a positive multiple of 8"),
    ("epochs", "x", "epochs must be an integer, got 'x'"),
    ("epochs", 1.5, "epochs must be an integer, got 1.5"),
    ("method", "dcmhh", "method must be one of 'ssah', 'dcmh', got 'dcmhh'"),
    ("variant", "code", "variant must be one of 'paper', 'published-code'"),
    ("ssah.early_stop", "maybe", "ssah.early_stop must be true or false"),
    ("ssah.alpha", "-1", "ssah.alpha must be a finite number >= 0"),
    ("ssah.img_passes", "[]", "ssah.img_passes must be a non-empty list"),
    ("batch_size", 0, "batch_size must be >= 1"),
])
def test_bad_overrides(key, value, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        TrainConfig().replace(**{key: value})


def test_bad_keys_in_a_file_name_the_file(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text("bits = 16\n[ssah]\nalpah = 2\n")
    with pytest.raises(ValueError, match=r"bad.toml: unknown config key 'ssah.alpah'; did you mean 'ssah.alpha'"):
        load_config(p)
    p.write_text("alpha = 2\n")
    with pytest.raises(ValueError, match=r"bad.toml: key 'alpha' belongs in another section \(use 'ssah.alpha'\)"):
        load_config(p)
    p.write_text("bits = = 3\n")
    with pytest.raises(ValueError, match="bad.toml: not valid TOML"):
        load_config(p)


def test_ablation_needs_ssah_and_presets_are_valid():
    with pytest.raises(ValueError, match="ablation 'ssah-1' applies to method 'ssah'"):
        TrainConfig().replace(method="dcmh", ablation="ssah-1")
    for name in PRESETS:
        load_config(None, preset=name)
    with pytest.raises(ValueError, match="preset must be one of"):
        load_config(None, preset="fast")
    assert resolve_key("delta") == "ssah.delta"
    assert resolve_key("gamma", prefer="dcmh") == "dcmh.gamma"


def test_bits_are_checked_like_the_models_check_them():
    with pytest.raises(ValueError, match=re.escape("bits must be a positive multiple of 8 (codes are packed into "
                                                   "bytes), got 12")):
        TrainConfig(bits=12)
    with pytest.raises(TypeError, match="^bits must be an int, got bool$"):
        TrainConfig(bits=True)
