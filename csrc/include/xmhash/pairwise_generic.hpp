// The pairwise-loss kernel written once over a vector width, instantiated by each ISA translation unit
// (pairwise_scalar.cpp, pairwise_avx2.cpp, pairwise_avx512.cpp) with its own compiler flags.
//
// Per block of B rows (j0 .. j0 + nb):
//   1. theta tile (nb x n_pad) = B_block . A^T            register-blocked outer products, vectorised over i
//   2. per pair: loss, and d loss / d <a_i, b_j> into the same tile   (pairwise_math.hpp, auto-vectorised)
//   3. grad_a_partial (n x d) += tile^T . B_block          (when d loss / d A is asked for)
//   4. grad_b rows (nb x d)    = tile . A                   (when d loss / d B is asked for)
// The three products share one micro-kernel: C[r][c] (+)= sum_t X(r, t) * Y[t][c], X read as broadcast
// scalars at X[r * xr + t * xt], Y read as vectors along its rows. Vectors are GCC/Clang vector extensions,
// so the same source becomes SSE2, AVX2 + FMA or AVX-512 code depending on the translation unit's flags.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "xmhash/pairwise_kernels.hpp"
#include "xmhash/pairwise_math.hpp"
#include "xmhash/types.hpp"

namespace xmhash::pairwise_generic {
// Internal linkage: each ISA translation unit keeps its own copies, compiled with its own flags
// (csrc/check_isa_symbols.cmake explains why and checks it).
namespace {

template <class T, int Bytes>
struct Simd {
  typedef T type __attribute__((vector_size(Bytes)));
  static constexpr std::size_t lanes = Bytes / sizeof(T);
};

template <class V, class T>
inline V vload(const T* p) {
  V v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

template <class V, class T>
inline void vstore(T* p, const V& v) {
  std::memcpy(p, &v, sizeof v);
}

// R rows x CV vectors of C, accumulated in registers over t < K.
template <class T, class V, int R, int CV, bool Acc>
inline void micro(const T* X, std::ptrdiff_t xr, std::ptrdiff_t xt, const T* Y, std::size_t ldy, std::size_t K,
                  T* C, std::size_t ldc) {
  constexpr std::size_t L = sizeof(V) / sizeof(T);
  V acc[R][CV];
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < CV; ++v) acc[r][v] = Acc ? vload<V>(C + r * ldc + v * L) : V{};
  for (std::size_t t = 0; t < K; ++t) {
    const T* y = Y + t * ldy;
    V yv[CV];
    for (int v = 0; v < CV; ++v) yv[v] = vload<V>(y + v * L);
    const T* x = X + static_cast<std::ptrdiff_t>(t) * xt;
    for (int r = 0; r < R; ++r) {
      const T xs = x[r * xr];
      for (int v = 0; v < CV; ++v) acc[r][v] += xs * yv[v];
    }
  }
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < CV; ++v) vstore(C + r * ldc + v * L, acc[r][v]);
}

// Edge tiles: fewer vectors (cv < CV) or fewer rows (r < R) through smaller instantiations.
template <class T, class V, int R, int CV, bool Acc>
inline void micro_cols(std::size_t cv, const T* X, std::ptrdiff_t xr, std::ptrdiff_t xt, const T* Y,
                       std::size_t ldy, std::size_t K, T* C, std::size_t ldc) {
  if constexpr (CV > 1) {
    if (cv < CV) return micro_cols<T, V, R, CV - 1, Acc>(cv, X, xr, xt, Y, ldy, K, C, ldc);
  }
  micro<T, V, R, CV, Acc>(X, xr, xt, Y, ldy, K, C, ldc);
}

template <class T, class V, int R, int CV, bool Acc>
inline void micro_rows(std::size_t r, std::size_t cv, const T* X, std::ptrdiff_t xr, std::ptrdiff_t xt,
                       const T* Y, std::size_t ldy, std::size_t K, T* C, std::size_t ldc) {
  if constexpr (R > 1) {
    if (r < R) return micro_rows<T, V, R - 1, CV, Acc>(r, cv, X, xr, xt, Y, ldy, K, C, ldc);
  }
  micro_cols<T, V, R, CV, Acc>(cv, X, xr, xt, Y, ldy, K, C, ldc);
}

// C (rows x cols, cols a multiple of the lanes) (+)= X . Y over K.
template <class T, class V, int R, int CV, bool Acc>
void gemm(std::size_t rows, std::size_t cols, const T* X, std::ptrdiff_t xr, std::ptrdiff_t xt, const T* Y,
          std::size_t ldy, std::size_t K, T* C, std::size_t ldc) {
  constexpr std::size_t L = sizeof(V) / sizeof(T);
  for (std::size_t c0 = 0; c0 < cols; c0 += CV * L) {
    const std::size_t cv = std::min<std::size_t>(CV, (cols - c0) / L);
    for (std::size_t r0 = 0; r0 < rows; r0 += R) {
      const std::size_t r = std::min<std::size_t>(R, rows - r0);
      micro_rows<T, V, R, CV, Acc>(r, cv, X + static_cast<std::ptrdiff_t>(r0) * xr, xr, xt, Y + c0, ldy, K,
                                   C + r0 * ldc + c0, ldc);
    }
  }
}

// Label rows wider than one 64-bit word.
struct MultiWord {};

// Calls fn(i, similar) for i < n, similar = labels a_i and b_j share a class: shares_label() computed a word
// at a time across the batch, so the loops vectorise over i (one AND per word, no early exit per pair).
template <class Word, class T, class Fn>
inline void for_pairs(const PairwiseJob<T>& job, const PairwiseScratch<T>& ws, std::size_t j, Fn&& fn) {
  const std::size_t n = job.n, stride = job.label_stride;
  const code_t* lb = job.labels_b + j * stride;
  if constexpr (std::is_same_v<Word, MultiWord>) {
    std::uint64_t* m = ws.label_mask;
    for (std::size_t w = 0; w < stride / 8; ++w) {
      std::uint64_t wb;
      std::memcpy(&wb, lb + 8 * w, sizeof wb);
      const std::uint64_t* wa = job.labels_a_words + w * job.n_pad;
      if (w == 0)
        for (std::size_t i = 0; i < n; ++i) m[i] = wa[i] & wb;
      else
        for (std::size_t i = 0; i < n; ++i) m[i] |= wa[i] & wb;
    }
    for (std::size_t i = 0; i < n; ++i) fn(i, m[i] != 0);
  } else {
    Word wb;
    std::memcpy(&wb, lb, sizeof wb);
    for (std::size_t i = 0; i < n; ++i) {
      Word wa;
      std::memcpy(&wa, job.labels_a + i * sizeof(Word), sizeof wa);
      fn(i, (wa & wb) != 0);
    }
  }
}

// Per-lane float64 running sums: rows are summed in T, rows are added up in double (no per-row shuffles).
template <class T, class V>
struct LaneSums {
  static constexpr std::size_t L = sizeof(V) / sizeof(T);
  using D = typename Simd<double, static_cast<int>(L * sizeof(double))>::type;
  D sum{};
  void add(const V& v) { sum += __builtin_convertvector(v, D); }
  void add(const V& v, double w) { sum += __builtin_convertvector(v, D) * w; }
  double total() const {
    double s = 0;
    for (std::size_t l = 0; l < L; ++l) s += sum[l];
    return s;
  }
};

// Step 2, nll: the logarithms are batched. Each pair leaves linear + log(u) with u in [1, 2]; the u's are
// multiplied per lane (at most kMaxFactors of them, so the product stays below 2^64) and one log is taken per
// lane and flush: far fewer logarithms than pairs. Similar and dissimilar pairs keep separate products for
// their weights.
template <class T, class V, class Word>
double nll_rows(const PairwiseJob<T>& job, std::size_t j0, std::size_t nb, T* tile, const PairwiseScratch<T>& ws) {
  constexpr std::size_t L = sizeof(V) / sizeof(T);
  constexpr int kMaxFactors = 64;
  const std::size_t n_pad = job.n_pad, ld = job.n_ld;
  const T scale = job.scale, sim_value = job.similarity_scale, w_sim = job.similar_weight,
          w_dis = job.dissimilar_weight, g_sim = w_sim * job.grad_scale, g_dis = w_dis * job.grad_scale;
  T* lin = ws.row_loss;
  T* us = ws.row_u_sim;
  T* ud = ws.row_u_dis;
  V prod_sim = V{} + T(1), prod_dis = V{} + T(1);
  int factors = 0;
  LaneSums<T, V> loss;
  auto flush = [&] {
    alignas(64) T u[2 * L];
    vstore(u, prod_sim);
    vstore(u + L, prod_dis);
    for (std::size_t l = 0; l < 2 * L; ++l) u[l] = log_approx(u[l]);
    loss.add(vload<V>(u), double(w_sim));
    loss.add(vload<V>(u + L), double(w_dis));
    prod_sim = V{} + T(1);
    prod_dis = V{} + T(1);
    factors = 0;
  };
  for (std::size_t jj = 0; jj < nb; ++jj) {
    T* row = tile + jj * ld;
    for_pairs<Word>(job, ws, j0 + jj, [&](std::size_t i, bool similar) {
      const NllParts<T> p = nll_parts(row[i] * scale, similar ? sim_value : T(0));
      lin[i] = (similar ? w_sim : w_dis) * p.linear;
      us[i] = similar ? p.u : T(1);
      ud[i] = similar ? T(1) : p.u;
      row[i] = (similar ? g_sim : g_dis) * p.dtheta;
    });
    V acc{};
    for (std::size_t i = 0; i < n_pad; i += L) {  // padding: lin = 0, u = 1
      acc += vload<V>(lin + i);
      prod_sim *= vload<V>(us + i);
      prod_dis *= vload<V>(ud + i);
      if (++factors == kMaxFactors) flush();
    }
    loss.add(acc);
  }
  flush();
  return loss.total();
}

// Step 2, squared: (s * theta - softplus(theta))^2 per pair, its own logarithm each.
template <class T, class V, class Word>
double squared_rows(const PairwiseJob<T>& job, std::size_t j0, std::size_t nb, T* tile,
                    const PairwiseScratch<T>& ws) {
  constexpr std::size_t L = sizeof(V) / sizeof(T);
  const std::size_t n_pad = job.n_pad, ld = job.n_ld;
  const T scale = job.scale, sim_value = job.similarity_scale, w_sim = job.similar_weight,
          w_dis = job.dissimilar_weight, g_sim = w_sim * job.grad_scale, g_dis = w_dis * job.grad_scale;
  T* lrow = ws.row_loss;
  LaneSums<T, V> loss;
  for (std::size_t jj = 0; jj < nb; ++jj) {
    T* row = tile + jj * ld;
    for_pairs<Word>(job, ws, j0 + jj, [&](std::size_t i, bool similar) {
      const PairTerm<T> p = squared_term(row[i] * scale, similar ? sim_value : T(0));
      lrow[i] = (similar ? w_sim : w_dis) * p.loss;
      row[i] = (similar ? g_sim : g_dis) * p.dtheta;
    });
    V acc{};
    for (std::size_t i = 0; i < n_pad; i += L) acc += vload<V>(lrow + i);
    loss.add(acc);
  }
  return loss.total();
}

// Step 2 for one block: tile[jj][i] = theta -> weighted d loss / d <a_i, b_j>; returns the block's loss.
// Only i < n is written, so padding columns never reach steps 3 and 4.
template <class T, class V>
double pair_rows(const PairwiseJob<T>& job, std::size_t j0, std::size_t nb, T* tile, const PairwiseScratch<T>& ws) {
  const bool sq = job.variant == PairwiseVariant::Squared;
  switch (job.label_stride) {
    case 4:
      return sq ? squared_rows<T, V, std::uint32_t>(job, j0, nb, tile, ws)
                : nll_rows<T, V, std::uint32_t>(job, j0, nb, tile, ws);
    case 8:
      return sq ? squared_rows<T, V, std::uint64_t>(job, j0, nb, tile, ws)
                : nll_rows<T, V, std::uint64_t>(job, j0, nb, tile, ws);
    default:
      return sq ? squared_rows<T, V, MultiWord>(job, j0, nb, tile, ws)
                : nll_rows<T, V, MultiWord>(job, j0, nb, tile, ws);
  }
}

// One chunk of rows of B (see PairwiseKernels::chunk_*). R x CV is the register tile of the micro-kernel.
template <class T, int Bytes, int R, int CV>
void chunk(const PairwiseJob<T>& job, std::size_t row_begin, std::size_t row_end, const PairwiseScratch<T>& ws,
           T* grad_a_partial, double* loss_out) {
  using V = typename Simd<T, Bytes>::type;
  const std::size_t n = job.n, d = job.d, n_pad = job.n_pad, d_pad = job.d_pad, n_ld = job.n_ld, d_ld = job.d_ld;
  const std::ptrdiff_t xn = static_cast<std::ptrdiff_t>(n_ld), xd = static_cast<std::ptrdiff_t>(d_ld);
  double loss = 0;
  for (std::size_t j0 = row_begin; j0 < row_end; j0 += job.block_rows) {
    const std::size_t nb = std::min(job.block_rows, row_end - j0);
    // The block of B, copied to a padded stride (its columns past d stay zero).
    for (std::size_t jj = 0; jj < nb; ++jj) std::memcpy(ws.b_block + jj * d_ld, job.b + (j0 + jj) * d, d * sizeof(T));
    // 1. <b_j, a_i> = B_block . A^T
    gemm<T, V, R, CV, false>(nb, n_pad, ws.b_block, xd, 1, job.at, n_ld, d, ws.tile, n_ld);
    // 2. per-pair loss and gradient
    loss += pair_rows<T, V>(job, j0, nb, ws.tile, ws);
    // 3. d loss / d A += tile^T . B_block
    if (job.want_grad_a)
      gemm<T, V, R, CV, true>(n, d_pad, ws.tile, 1, xn, ws.b_block, d_ld, nb, grad_a_partial, d_ld);
    // 4. d loss / d B_block = tile . A
    if (job.grad_b) {
      T* gb = job.grad_b + j0 * d;
      if (d == d_pad && job.accumulate_grad_b) {
        gemm<T, V, R, CV, true>(nb, d_pad, ws.tile, xn, 1, job.a_rows, d_ld, n, gb, d);
      } else if (d == d_pad) {
        gemm<T, V, R, CV, false>(nb, d_pad, ws.tile, xn, 1, job.a_rows, d_ld, n, gb, d);
      } else {
        gemm<T, V, R, CV, false>(nb, d_pad, ws.tile, xn, 1, job.a_rows, d_ld, n, ws.gb_block, d_ld);
        for (std::size_t jj = 0; jj < nb; ++jj) {
          const T* src = ws.gb_block + jj * d_ld;
          T* dst = gb + jj * d;
          if (job.accumulate_grad_b)
            for (std::size_t k = 0; k < d; ++k) dst[k] += src[k];
          else
            std::memcpy(dst, src, d * sizeof(T));
        }
      }
    }
  }
  *loss_out += loss;
}

}  // namespace
}  // namespace xmhash::pairwise_generic
