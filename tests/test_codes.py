import types

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import xmhash
from xmhash.codes import _pack_rows


@given(st.integers(0, 20), st.integers(1, 40), st.integers(0, 2**32 - 1))
def test_pack_matches_numpy_little_endian_layout(n, nbytes, seed):
    bits = np.random.default_rng(seed).random((n, nbytes * 8)) < 0.5
    codes = xmhash.pack(bits)
    assert codes.dtype == np.uint8 and codes.shape == (n, nbytes) and codes.flags.c_contiguous
    np.testing.assert_array_equal(codes, np.packbits(bits, axis=1, bitorder="little"))
    np.testing.assert_array_equal(xmhash.unpack(codes, nbytes * 8), bits)


@given(st.integers(0, 20), st.integers(1, 40), st.integers(0, 2**32 - 1), st.sampled_from(["C", "F", "strided"]))
def test_pack_of_reals_matches_packbits_along_rows(n, nbytes, seed, layout):
    x = np.random.default_rng(seed).standard_normal((n, nbytes * 8 * (2 if layout == "strided" else 1)))
    x = x[:, ::2] if layout == "strided" else np.asarray(x, order=layout)
    codes = xmhash.pack(x)
    assert codes.shape == (n, nbytes) and codes.flags.c_contiguous
    np.testing.assert_array_equal(codes, np.packbits(x >= 0, axis=1, bitorder="little"))


@given(st.integers(0, 20), st.integers(1, 70), st.integers(0, 2**32 - 1), st.sampled_from(["C", "F", "strided"]))
def test_pack_rows_matches_packbits_along_rows(n, columns, seed, layout):
    """The flat packbits behind pack and the label packers, at any width (padded to whole bytes)."""
    dense = np.random.default_rng(seed).random((n, columns * (2 if layout == "strided" else 1))) < 0.5
    dense = dense[:, ::2] if layout == "strided" else np.asarray(dense, order=layout)
    packed = _pack_rows(dense)
    assert packed.shape == (n, (columns + 7) // 8) and packed.flags.c_contiguous
    np.testing.assert_array_equal(packed, np.packbits(dense, axis=1, bitorder="little"))


def test_bit_j_is_byte_j_div_8_bit_j_mod_8():
    bits = np.zeros((1, 16), dtype=bool)
    bits[0, 9] = True
    assert xmhash.pack(bits).tolist() == [[0, 2]]


def test_real_input_binarises_x_ge_0_and_zero_maps_to_one():
    x = np.array([[1.0, -1.0, 0.0, -0.0, 0.3, -0.3, 5.0, -5.0]])
    assert xmhash.unpack(xmhash.pack(x)).tolist() == [[True, False, True, True, True, False, True, False]]


def test_signed_unpack_inverts_pm1_codes():
    x = np.where(np.random.default_rng(0).random((5, 32)) < 0.5, 1.0, -1.0).astype(np.float32)
    out = xmhash.unpack(xmhash.pack(x), signed=True)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, x)


@pytest.mark.parametrize("dtype", [np.int8, np.int32, np.int64, np.uint8])
def test_integer_01_arrays_are_bits_not_magnitudes(dtype):
    x = np.array([[0, 1, 0, 0, 1, 1, 0, 0]], dtype=dtype)
    assert xmhash.unpack(xmhash.pack(x)).tolist() == [[False, True, False, False, True, True, False, False]]


def test_integer_pm1_arrays_are_signs():
    x = np.array([[-1, 1, -1, -1, 1, 1, -1, 1]], dtype=np.int64)
    assert xmhash.unpack(xmhash.pack(x)).tolist() == [[False, True, False, False, True, True, False, True]]


def test_pack_accepts_1d_and_torch():
    torch = pytest.importorskip("torch")
    t = torch.tensor([0.5, -0.5] * 4)
    np.testing.assert_array_equal(xmhash.pack(t), xmhash.pack(t.numpy()[None]))


def test_pack_rejects_other_integers():
    with pytest.raises(ValueError, match=r"x is an integer array with values outside \{0, 1\}"):
        xmhash.pack(np.array([[0, 2, 1, 0, 0, 0, 0, 0]]))


def test_pack_rejects_nan():
    x = np.zeros((2, 8))
    x[1, 3] = np.nan
    with pytest.raises(ValueError, match="x contains NaN"):
        xmhash.pack(x)


@pytest.mark.parametrize("nbits", [0, 7, 12])
def test_pack_rejects_width_not_multiple_of_8(nbits):
    with pytest.raises(ValueError, match=f"positive multiple of 8, got {nbits}"):
        xmhash.pack(np.ones((2, nbits)))


def test_pack_rejects_3d_and_strings():
    with pytest.raises(ValueError, match="x must be a 1-D or 2-D array of bits"):
        xmhash.pack(np.ones((2, 2, 8)))
    with pytest.raises(TypeError, match="x must be bool, integer 0/1 or ±1, or floating point"):
        xmhash.pack(np.array([["a"] * 8]))
    with pytest.raises(TypeError, match="x must be a numpy array or a torch tensor"):
        xmhash.pack("01010101")


def test_unpack_rejects_bad_nbits():
    codes = np.zeros((1, 2), dtype=np.uint8)
    with pytest.raises(ValueError, match="nbits must be a positive multiple of 8 and at most 16"):
        xmhash.unpack(codes, 24)
    with pytest.raises(TypeError, match="codes must be packed uint8 codes, got dtype float64"):
        xmhash.unpack(np.zeros((1, 2)))
    with pytest.raises(TypeError, match=r"^nbits must be an int, got float$"):
        xmhash.unpack(codes, 8.0)
    with pytest.raises(TypeError, match=r"^nbits must be an int, got bool$"):
        xmhash.unpack(codes, True)


def test_codes_need_at_least_one_byte():
    with pytest.raises(ValueError, match=r"^codes must have at least one byte per code, got shape \(2, 0\)$"):
        xmhash.unpack(np.zeros((2, 0), dtype=np.uint8))


class _FakeCudaTensor:
    """Looks like a torch CUDA tensor to is_torch_tensor (module torch, detach, numpy) without a GPU or torch."""

    __module__ = "torch"
    device = types.SimpleNamespace(type="cuda")

    def detach(self):
        return self

    def numpy(self):
        raise AssertionError("a CUDA tensor must be rejected before it is read")


def test_cpu_functions_reject_device_tensors():
    message = "{} is a {} tensor; this function takes CPU tensors or numpy arrays"
    with pytest.raises(ValueError, match=f"^{message.format('x', 'cuda')}$"):
        xmhash.pack(_FakeCudaTensor())
    with pytest.raises(ValueError, match=f"^{message.format('codes', 'cuda')}$"):
        xmhash.unpack(_FakeCudaTensor())
    torch = pytest.importorskip("torch")
    with pytest.raises(ValueError, match=f"^{message.format('x', 'meta')}$"):
        xmhash.pack(torch.zeros(2, 8, device="meta"))


@given(arrays(np.uint8, st.tuples(st.integers(1, 5), st.integers(1, 6))))
def test_unpack_pack_roundtrip(codes):
    np.testing.assert_array_equal(xmhash.pack(xmhash.unpack(codes)), codes)
