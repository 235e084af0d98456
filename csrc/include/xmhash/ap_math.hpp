// Per-query retrieval arithmetic shared by the CPU and GPU evaluators (see hd.hpp). Every function works on
// the two summaries a Hamming ranking reduces to:
//   * per-distance counts: n_at[d] database items and r_at[d] relevant items at distance d, d < nbins;
//   * for ties broken by database index: the 1-based ranks of the relevant items in (distance, index) order,
//     ascending.
// Conventions (methods.md §7): a query with no relevant item scores 0; AP@K is the top-window definition,
// normalised by the relevant items inside the top K.
#pragma once
#include <cmath>
#include <cstdint>

#include "xmhash/hd.hpp"

namespace xmhash {

// Ranges at most this long are summed term by term; longer ones use closed forms.
constexpr std::uint64_t kDirectSumLimit = 64;

// sum_{j=a+1..b} 1/j for integers 0 <= a <= b, to full double accuracy at any size: exact terms while j is
// small or the range short, then the difference of digamma asymptotic expansions (error < 1e-17 for x >= 64).
XMHASH_HD double harmonic_range(std::uint64_t a, std::uint64_t b) {
  double s = 0.0;
  while (a < b && (a < kDirectSumLimit || b - a <= kDirectSumLimit)) s += 1.0 / static_cast<double>(++a);
  if (a == b) return s;
  const double x = static_cast<double>(a) + 1.0, y = static_cast<double>(b) + 1.0;  // psi(y) - psi(x)
  const double ix2 = 1.0 / (x * x), iy2 = 1.0 / (y * y);
  const double tail_x = 1.0 / (2.0 * x) + ix2 * (1.0 / 12.0 - ix2 * (1.0 / 120.0 - ix2 / 252.0));
  const double tail_y = 1.0 / (2.0 * y) + iy2 * (1.0 / 12.0 - iy2 * (1.0 / 120.0 - iy2 / 252.0));
  return s + ::log1p(static_cast<double>(b - a) / x) + (tail_x - tail_y);
}

// s1 = sum_{j=1..t} 1/(before + j) and s2 = sum_{j=1..t} (j-1)/(before + j): the position sums of a block of
// t consecutive ranks that follows `before` items.
XMHASH_HD void position_sums(std::uint64_t before, std::uint64_t t, double* s1, double* s2) {
  if (t <= kDirectSumLimit) {
    double a = 0.0, b = 0.0;
    for (std::uint64_t j = 1; j <= t; ++j) {
      const double inv = 1.0 / static_cast<double>(before + j);
      a += inv;
      b += static_cast<double>(j - 1) * inv;
    }
    *s1 = a;
    *s2 = b;
    return;
  }
  *s1 = harmonic_range(before, before + t);
  *s2 = static_cast<double>(t) - (static_cast<double>(before) + 1.0) * *s1;  // (j-1) = (before+j) - (before+1)
}

// Expected sum of precision@p over the relevant positions p of one tie group when its n items (r relevant)
// are ordered uniformly at random behind n_before items (r_before relevant). Position j of the group is
// relevant with probability r/n and, given that, has r_before + 1 + (j-1)(r-1)/(n-1) relevant items at or
// above it in expectation (He et al., CVPR 2018; McSherry & Najork 2008).
XMHASH_HD double tie_group_sum(std::uint64_t n_before, std::uint64_t r_before, std::uint64_t n, std::uint64_t r) {
  if (r == 0) return 0.0;
  const double hits0 = static_cast<double>(r_before) + 1.0;
  if (n == 1) return hits0 / (static_cast<double>(n_before) + 1.0);
  double s1, s2;
  position_sums(n_before, n, &s1, &s2);
  const double rd = static_cast<double>(r), nd = static_cast<double>(n);
  return rd / nd * (hits0 * s1 + (rd - 1.0) / (nd - 1.0) * s2);
}

// Relevant items among the top k (ties by index): the number of relevant ranks <= k (binary search).
XMHASH_HD std::uint64_t hits_at_index(const std::uint32_t* rel_rank, std::uint64_t n_rel, std::uint64_t k) {
  std::uint64_t lo = 0, hi = n_rel;
  while (lo < hi) {
    const std::uint64_t mid = lo + (hi - lo) / 2;
    if (rel_rank[mid] <= k) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

// AP over the ranking with ties broken by database index: (1/R) sum_i i / rank_i over the relevant items, i their
// 1-based position among the relevant items in (distance, index) order. With k > 0, the top-window AP@k: the
// same sum over ranks <= k, divided by the number of them (R_k). The terms are added item by item in database
// index order (t = 0, 1, ... over the relevant items), term t into partial sum t % kApLanes, and the partial sums
// pairwise at the end: an order a vector unit follows exactly, so every code path returns bit-identical AP.
constexpr int kApLanes = 8;

struct ApByIndex {
  double lanes[kApLanes] = {};
  std::uint64_t hits = 0;
};

// Relevant item t (database index order) at 0-based position `slot` among the relevant items, rank `rank`.
XMHASH_HD void ap_add(ApByIndex& a, std::uint64_t t, std::uint64_t slot, std::uint64_t rank, std::uint64_t k) {
  if (k != 0 && rank > k) return;
  a.lanes[t % kApLanes] += static_cast<double>(slot + 1) / static_cast<double>(rank);
  ++a.hits;
}

XMHASH_HD double combine_ap_lanes(const double* s) {
  return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

XMHASH_HD double ap_value(const ApByIndex& a) {
  return a.hits ? combine_ap_lanes(a.lanes) / static_cast<double>(a.hits) : 0.0;
}

// Tie-aware AP over the whole ranking: the mean of AP over every order of the items within each distance,
// in closed form: (1/R) sum_g tie_group_sum(N_<g, R_<g, n_g, r_g).
XMHASH_HD double ap_tie(const std::uint32_t* n_at, const std::uint32_t* r_at, int nbins) {
  double s = 0.0;
  std::uint64_t n_before = 0, r_before = 0;
  for (int d = 0; d < nbins; ++d) {
    s += tie_group_sum(n_before, r_before, n_at[d], r_at[d]);
    n_before += n_at[d];
    r_before += r_at[d];
  }
  return r_before ? s / static_cast<double>(r_before) : 0.0;
}

// Value of the top-window AP@k when the cut group contributes m relevant items among its t positions:
// (S_< + tie_group_sum(N_<, R_<, t, m)) / (R_< + m), with s1, s2 = position_sums(N_<, t).
XMHASH_HD double cut_group_value(double s_before, std::uint64_t r_before, std::uint64_t t, std::uint64_t m, double s1,
                                 double s2) {
  if (r_before + m == 0) return 0.0;
  const double md = static_cast<double>(m), td = static_cast<double>(t);
  const double slope = t > 1 ? (md - 1.0) / (td - 1.0) : 0.0;
  const double group = m == 0 ? 0.0 : md / td * ((static_cast<double>(r_before) + 1.0) * s1 + slope * s2);
  return (s_before + group) / (static_cast<double>(r_before) + md);
}

// Hypergeometric weight ratio w(m+1) / w(m) for m relevant among t drawn from n items with r relevant.
XMHASH_HD double hypergeometric_step(std::uint64_t n, std::uint64_t r, std::uint64_t t, std::uint64_t m) {
  return static_cast<double>(r - m) * static_cast<double>(t - m) /
         (static_cast<double>(m + 1) * static_cast<double>(n - r - t + m + 1));
}

// Expected top-window AP@k over every order within distances. Groups wholly inside the top k contribute
// their tie_group_sum; the group cut by position k contributes t = k - N_< positions holding m relevant
// items, m hypergeometric(n, r, t); given m those positions are a uniform order of m relevant among t, so
// their sum is tie_group_sum(N_<, R_<, t, m) and the normaliser R_k = R_< + m is fixed:
//   E = sum_m P(m) (S_< + tie_group_sum(N_<, R_<, t, m)) / (R_< + m).
XMHASH_HD double ap_tie_at_k(const std::uint32_t* n_at, const std::uint32_t* r_at, int nbins, std::uint64_t k) {
  double s = 0.0;
  std::uint64_t n_before = 0, r_before = 0;
  int d = 0;
  for (; d < nbins; ++d) {
    const std::uint64_t n = n_at[d], r = r_at[d];
    if (n_before + n > k) break;
    s += tie_group_sum(n_before, r_before, n, r);
    n_before += n;
    r_before += r;
  }
  const std::uint64_t n = d < nbins ? n_at[d] : 0, r = d < nbins ? r_at[d] : 0;
  if (n_before == k || r == 0) return r_before ? s / static_cast<double>(r_before) : 0.0;

  const std::uint64_t t = k - n_before;  // 1 <= t < n
  double s1, s2;
  position_sums(n_before, t, &s1, &s2);
  const std::uint64_t lo = t > n - r ? t - (n - r) : 0, hi = r < t ? r : t;
  // Unnormalised hypergeometric weights, walked out from the mode (w = 1) and stopped once negligible (every
  // value lies in [0, 1]); dividing by their sum normalises them.
  std::uint64_t mode = static_cast<std::uint64_t>((static_cast<double>(t) + 1.0) * (static_cast<double>(r) + 1.0) /
                                                  (static_cast<double>(n) + 2.0));
  if (mode < lo) mode = lo;
  if (mode > hi) mode = hi;
  double w_sum = 1.0, v_sum = cut_group_value(s, r_before, t, mode, s1, s2), w = 1.0;
  for (std::uint64_t m = mode; m < hi && w > 1e-40; ++m) {
    w *= hypergeometric_step(n, r, t, m);
    w_sum += w;
    v_sum += w * cut_group_value(s, r_before, t, m + 1, s1, s2);
  }
  w = 1.0;
  for (std::uint64_t m = mode; m > lo && w > 1e-40; --m) {
    w /= hypergeometric_step(n, r, t, m - 1);
    w_sum += w;
    v_sum += w * cut_group_value(s, r_before, t, m - 1, s1, s2);
  }
  return v_sum / w_sum;
}

// Expected relevant items among the top k over every order within distances: whole groups count fully,
// the group cut at k contributes r * t / n for its t positions inside.
XMHASH_HD double hits_at_tie(const std::uint32_t* n_at, const std::uint32_t* r_at, int nbins, std::uint64_t k) {
  std::uint64_t n_before = 0, r_before = 0;
  for (int d = 0; d < nbins; ++d) {
    const std::uint64_t n = n_at[d], r = r_at[d];
    if (n_before + n >= k) {
      return static_cast<double>(r_before) +
             (n ? static_cast<double>(r) * static_cast<double>(k - n_before) / static_cast<double>(n) : 0.0);
    }
    n_before += n;
    r_before += r;
  }
  return static_cast<double>(r_before);
}

}  // namespace xmhash
