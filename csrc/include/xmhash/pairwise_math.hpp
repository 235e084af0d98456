// Per-pair math of the pairwise similarity losses (SSAH, DCMH), shared by the CPU kernels and the CUDA kernels
// (XMHASH_HD, see hd.hpp), so the CPU tests exercise exactly what the GPU runs.
//
// theta is the scaled inner product of a pair and s its target similarity (0, or `similarity_scale` when the
// two items share a label). Everything is written branch-free (selects, no calls into libm for float) so that
// a loop over pairs auto-vectorises on the CPU.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#include "xmhash/hd.hpp"

namespace xmhash {

// ---------------------------------------------------------------- float32 exp / log1p
// libm's expf/log1pf are scalar calls that block vectorisation; these are Cephes-style polynomials (about
// 1-2 ulp) made of plain arithmetic and bit operations.

XMHASH_HD float bits_to_float(std::int32_t i) {
  float f;
  std::memcpy(&f, &i, sizeof f);
  return f;
}

XMHASH_HD std::int32_t float_to_bits(float f) {
  std::int32_t i;
  std::memcpy(&i, &f, sizeof i);
  return i;
}

// e^x for finite float x: 0 below the normal range (x < -87.34), saturating at e^88 above x = 88.
XMHASH_HD float exp_approx(float x) {
  const float lo = -87.336544f, hi = 88.0f;
  const float xc = x < lo ? lo : (x > hi ? hi : x);
  // k = round(x / ln 2) by the 1.5 * 2^23 trick (no roundf: SSE2 has no vector rounding instruction).
  const float magic = 12582912.0f;
  const float k = (xc * 1.44269504088896341f + magic) - magic;
  const float r = (xc - k * 0.693359375f) + k * 2.12194440e-4f;  // ln 2 split in two for an exact product
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const float two_k = bits_to_float((static_cast<std::int32_t>(k) + 127) << 23);
  const float y = p * two_k;
  return x < lo ? 0.0f : y;
}

// log(x) for finite x >= 1 (the only range the losses need: x = 1 + e^-|theta|, or products of such values).
XMHASH_HD float log_approx(float x) {
  const std::int32_t bits = float_to_bits(x);
  std::int32_t e = ((bits >> 23) & 0xff) - 127;
  float m = bits_to_float((bits & 0x007fffff) | 0x3f800000);  // mantissa in [1, 2)
  const bool big = m > 1.41421356f;                              // keep m in [sqrt(1/2), sqrt(2))
  m = big ? 0.5f * m : m;
  e = big ? e + 1 : e;
  const float f = m - 1.0f, z = f * f;
  float p = 7.0376836292e-2f;
  p = p * f - 1.1514610310e-1f;
  p = p * f + 1.1676998740e-1f;
  p = p * f - 1.2420140846e-1f;
  p = p * f + 1.4249322787e-1f;
  p = p * f - 1.6668057665e-1f;
  p = p * f + 2.0000714765e-1f;
  p = p * f - 2.4999993993e-1f;
  p = p * f + 3.3333331174e-1f;
  const float ef = static_cast<float>(e);
  float y = p * f * z + ef * -2.12194440e-4f - 0.5f * z;
  return f + y + ef * 0.693359375f;
}

// log(1 + x) for finite x >= 0, accurate for tiny x: log(u) - ((u - 1) - x) / u with u = 1 + x rounded.
XMHASH_HD float log1p_approx(float x) {
  const float u = 1.0f + x;
  return log_approx(u) - ((u - 1.0f) - x) / u;
}

// float64 keeps libm: exact to the last bit the reference expects (float64 is the precision of checks, float32
// the precision of speed).
XMHASH_HD double exp_approx(double x) { return std::exp(x); }
XMHASH_HD double log_approx(double x) { return std::log(x); }
XMHASH_HD double log1p_approx(double x) { return std::log1p(x); }

// ---------------------------------------------------------------- stable building blocks

// softplus(x) = log(1 + e^x) = max(x, 0) + log1p(e^-|x|): no overflow for any finite x.
template <class T>
XMHASH_HD T softplus(T x) {
  const T ax = x < T(0) ? -x : x;
  return (x > T(0) ? x : T(0)) + log1p_approx(exp_approx(-ax));
}

// sigmoid(x) = 1 / (1 + e^-x), from e^-|x| so that neither branch overflows.
template <class T>
XMHASH_HD T sigmoid(T x) {
  const T ax = x < T(0) ? -x : x;
  const T e = exp_approx(-ax);
  const T inv = T(1) / (T(1) + e);
  return x >= T(0) ? inv : e * inv;
}

// Loss of one pair and its derivative with respect to theta.
template <class T>
struct PairTerm {
  T loss;
  T dtheta;
};

// The NLL term split so that callers may batch its logarithm (a product of u's has one log):
// loss = linear + log(u), with u = 1 + e^-|theta| in [1, 2] and linear carrying the log1p rounding correction.
template <class T>
struct NllParts {
  T linear;
  T u;
  T dtheta;
};

// Negative log-likelihood of DCMH / the SSAH paper: softplus(theta) - s * theta, d/dtheta = sigmoid(theta) - s.
// Written as max(theta, 0) - s * theta + log1p(e^-|theta|), so the large terms cancel exactly for s in {0, 1}.
template <class T>
XMHASH_HD NllParts<T> nll_parts(T theta, T s) {
  const T ax = theta < T(0) ? -theta : theta;
  const T e = exp_approx(-ax);
  const T u = T(1) + e;
  const T inv = T(1) / u;
  const T sig = theta >= T(0) ? inv : e * inv;
  const T relu = theta > T(0) ? theta : T(0);
  // log1p(e) = log(u) - ((u - 1) - e) / u: the second part goes into `linear`.
  return {(relu - s * theta) - ((u - T(1)) - e) * inv, u, sig - s};
}

template <class T>
XMHASH_HD PairTerm<T> nll_term(T theta, T s) {
  const NllParts<T> p = nll_parts(theta, s);
  return {p.linear + log_approx(p.u), p.dtheta};
}

// SSAH's published code: the squared residual (s * theta - softplus(theta))^2 of the same term. The residual is
// minus the NLL term, so the loss is nll^2 and d/dtheta = 2 * nll * (sigmoid(theta) - s).
// (SSAH's tf.nn.l2_loss also halves it: multiply by 0.5 to reproduce its printed values.)
template <class T>
XMHASH_HD PairTerm<T> squared_term(T theta, T s) {
  const PairTerm<T> t = nll_term(theta, s);
  return {t.loss * t.loss, T(2) * t.loss * t.dtheta};
}

}  // namespace xmhash
