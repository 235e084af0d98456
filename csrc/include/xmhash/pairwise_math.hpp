// Per-pair math of the pairwise similarity losses (SSAH, DCMH), shared by the CPU kernels and the CUDA kernels
// (XMHASH_HD, see hd.hpp), so the CPU tests exercise exactly what the GPU runs.
//
// theta is the scaled inner product of a pair and s its target similarity (0, or `similarity_scale` when the
// two items share a label). Everything is written branch-free (selects, no calls into libm for float) so that
// a loop over pairs auto-vectorises on the CPU.
#pragma once
#include <cstdint>
#include <cstring>

#include "xmhash/hd.hpp"

namespace xmhash {

// ---------------------------------------------------------------- float32 exp / log1p
// libm's exp/log are scalar calls that block vectorisation; these are polynomials (float: Cephes, about 1-2
// ulp; double: below 1 ulp) made of plain arithmetic and bit operations.

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

// ---------------------------------------------------------------- float64 exp / log (below 1 ulp, vectorisable)

XMHASH_HD double bits_to_double(std::int64_t i) {
  double f;
  std::memcpy(&f, &i, sizeof f);
  return f;
}

XMHASH_HD std::int64_t double_to_bits(double f) {
  std::int64_t i;
  std::memcpy(&i, &f, sizeof i);
  return i;
}

// e^x for finite x: 0 below the normal range (x < -708.39), saturating at e^709 above x = 709.
// k = round(x / ln 2) is read from the bits of x / ln 2 + 1.5 * 2^52 (no float -> int64 conversion, which AVX2
// lacks); e^r on |r| <= ln 2 / 2 is its degree-13 Taylor polynomial (truncation below 1e-17).
XMHASH_HD double exp_approx(double x) {
  const double lo = -708.39641853226408, hi = 709.0;
  double xc = x > hi ? hi : x;
  xc = xc < lo ? lo : xc;
  const double magic = 6755399441055744.0;
  const double t = xc * 1.4426950408889634074 + magic;
  const double k = t - magic;
  const std::int64_t ki = double_to_bits(t) - double_to_bits(magic);
  const double r = (xc - k * 6.93145751953125e-1) - k * 1.42860682030941723212e-6;
  double p = 1.0 / 6227020800.0;
  p = p * r + 1.0 / 479001600.0;
  p = p * r + 1.0 / 39916800.0;
  p = p * r + 1.0 / 3628800.0;
  p = p * r + 1.0 / 362880.0;
  p = p * r + 1.0 / 40320.0;
  p = p * r + 1.0 / 5040.0;
  p = p * r + 1.0 / 720.0;
  p = p * r + 1.0 / 120.0;
  p = p * r + 1.0 / 24.0;
  p = p * r + 1.0 / 6.0;
  p = p * r + 0.5;
  p = p * r * r + r + 1.0;
  const double y = p * bits_to_double((ki + 1023) << 52);
  return x < lo ? 0.0 : y;
}

// log(x) for finite x >= 1 (fdlibm's __ieee754_log reduction and polynomial).
XMHASH_HD double log_approx(double x) {
  const std::int64_t bits = double_to_bits(x);
  std::int64_t e = ((bits >> 52) & 0x7ff) - 1023;
  double m = bits_to_double((bits & 0x000fffffffffffffLL) | 0x3ff0000000000000LL);  // [1, 2)
  const bool big = m > 1.4142135623730951;
  m = big ? 0.5 * m : m;
  e = big ? e + 1 : e;
  const double ef = bits_to_double(e + 0x4338000000000000LL) - 6755399441055744.0;  // int64 -> double
  const double f = m - 1.0, s = f / (2.0 + f), z = s * s, w = z * z;
  const double t1 = w * (3.999999999940941908e-01 + w * (2.222219843214978396e-01 + w * 1.531383769920937332e-01));
  const double t2 =
      z * (6.666666666666735130e-01 +
           w * (2.857142874366239149e-01 + w * (1.818357216161805012e-01 + w * 1.479819860511658591e-01)));
  const double R = t2 + t1, hfsq = 0.5 * f * f;
  return ef * 6.93147180369123816490e-01 - ((hfsq - (s * (hfsq + R) + ef * 1.90821492927058770002e-10)) - f);
}

// log(1 + x) for finite x >= 0, accurate for tiny x (as the float version).
XMHASH_HD double log1p_approx(double x) {
  const double u = 1.0 + x;
  return log_approx(u) - ((u - 1.0) - x) / u;
}

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
