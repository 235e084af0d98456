// The tiled schedule of the CUDA pairwise loss (cuda/pairwise.cu), written once for nvcc and g++ so that the CPU
// model (pairwise_tiles_model.cpp, run by the CPU tests) executes the very code a GPU thread block runs.
//
// Work: the (n x N) pair matrix is cut into tiles of TI rows of A x TJ rows of B. A thread block owns a group of
// tile rows (an "i-group") x a group of tile columns (a "j-group") and, per tile:
//   1. theta tile = A_tile . B_tile^T, staged through shared memory in slices of TK columns (registers: RI x RJ
//      per thread);
//   2. per pair: similarity from the packed label rows (shares_label), loss and d loss / d <a_i, b_j>
//      (pairwise_math.hpp) into a TI x TJ shared tile; the loss is summed per thread in double;
//   3. per slice of TK columns: d loss / d B rows += tile^T . A_tile, d loss / d A rows += tile . B_tile, each
//      output element read-modified-written by exactly one thread (a register block of them per thread).
// No n x N matrix exists anywhere. A block writes only its own "slot": the d loss / d A of j-group c goes to slot
// c, the d loss / d B of i-group g to slot g (slot 0 is the output itself, the others live in the workspace),
// so there are no atomics; small kernels then add the slots up in slot order and the per-block losses in block
// order. The plan depends only on the problem size, so results are bitwise reproducible run to run. The price
// of determinism is memory: j_groups - 1 extra n x d slots, capped by kSlotBudgetBytes, which also caps the
// parallelism of wide problems (n = 128, N = 10,000, d = 512, float32: 33 column groups x 2 row groups = 66
// blocks; 33 when d loss / d B is wanted too, whose N x d slots do not fit).
//
// The block body is a sequence of phases separated by barriers: `threads.each(fn)` runs fn(thread, state) for
// every thread of the block and then waits for all of them (on the GPU: each thread runs fn, then
// __syncthreads(); on the CPU model: a loop over the threads). Per-thread state that lives across barriers
// (registers on the GPU) is the ThreadState.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "xmhash/hd.hpp"
#include "xmhash/pairwise.hpp"
#include "xmhash/pairwise_math.hpp"
#include "xmhash/popcount.hpp"
#include "xmhash/types.hpp"

// Full unrolling where a thread's register arrays are indexed (nvcc keeps them in registers only then).
#if defined(__CUDA_ARCH__)
#define XMHASH_UNROLL _Pragma("unroll")
#else
#define XMHASH_UNROLL
#endif

namespace xmhash::pairwise_tiles {

constexpr int kThreads = 256;
constexpr int kSide = 16;  // the threads as a 16 x 16 square
// Blocks of one launch at most (about four per SM of an H100), and the workspace the extra d loss / d A and
// d loss / d B slots may take. Both are constants, not device properties: the same problem is cut the same
// way, and sums in the same order, on every GPU.
constexpr std::size_t kTargetBlocks = 512;
constexpr std::size_t kSlotBudgetBytes = std::size_t(8) << 20;

// Tile shape per element type: TI x TJ pairs per tile, TK columns per shared-memory slice, RI x RJ pairs per
// thread. Both use 16 x 16 threads; float64 halves TJ to stay inside 48 KiB of static shared memory (the most
// a kernel gets without a per-architecture opt-in). All are multiples of 16 (grad_slice's layout).
template <class T>
struct Shape;
template <>
struct Shape<float> {
  static constexpr int TI = 64, TJ = 64, TK = 32, RI = 4, RJ = 4;
};
template <>
struct Shape<double> {
  static constexpr int TI = 64, TJ = 32, TK = 32, RI = 4, RJ = 2;
};

template <class T>
constexpr bool valid_shape() {
  using S = Shape<T>;
  return kSide * kSide == kThreads && S::TI / S::RI == kSide && S::TJ / S::RJ == kSide && S::TI % kSide == 0 &&
         S::TJ % kSide == 0 && S::TK % kSide == 0;
}
static_assert(valid_shape<float>() && valid_shape<double>(), "tiles must match the 16 x 16 threads");

// ---------------------------------------------------------------- plan (host)

struct Plan {
  std::size_t i_tiles = 0, j_tiles = 0;    // tiles along A's rows and B's rows
  std::size_t i_groups = 0, j_groups = 0;  // blocks = i_groups x j_groups
  // Workspace layout (bytes, 256-aligned): extra d loss / d A slots (j_groups - 1 of n x d), extra d loss / d B
  // slots (i_groups - 1 of N x d), one double per block.
  std::size_t grad_a_offset = 0, grad_b_offset = 0, loss_offset = 0, bytes = 0;
  XMHASH_HD std::size_t blocks() const { return i_groups * j_groups; }
};

inline std::size_t ceil_div(std::size_t a, std::size_t b) { return (a + b - 1) / b; }
inline std::size_t align_up(std::size_t x, std::size_t m) { return ceil_div(x, m) * m; }
inline std::size_t min_size(std::size_t a, std::size_t b) { return a < b ? a : b; }
inline std::size_t max_size(std::size_t a, std::size_t b) { return a > b ? a : b; }

// Splits the tile columns first (B is the long side in training: N >> n), then the tile rows with what is left
// of the block target; each extra slot must fit the budget. n, N >= 1.
template <class T>
Plan make_plan(std::size_t n, std::size_t N, std::size_t d, bool want_grad_a, bool want_grad_b,
               std::size_t target_blocks = kTargetBlocks, std::size_t slot_budget = kSlotBudgetBytes) {
  using S = Shape<T>;
  Plan p;
  p.i_tiles = ceil_div(n, S::TI);
  p.j_tiles = ceil_div(N, S::TJ);
  target_blocks = max_size(target_blocks, 1);
  const std::size_t slot_a = want_grad_a ? n * d * sizeof(T) : 0, slot_b = want_grad_b ? N * d * sizeof(T) : 0;
  p.j_groups = min_size(p.j_tiles, target_blocks);
  if (slot_a) p.j_groups = min_size(p.j_groups, 1 + slot_budget / slot_a);
  const std::size_t used = (p.j_groups - 1) * slot_a;
  p.i_groups = min_size(p.i_tiles, max_size(1, target_blocks / p.j_groups));
  if (slot_b) p.i_groups = min_size(p.i_groups, 1 + (slot_budget - used) / slot_b);
  p.grad_a_offset = 0;
  p.grad_b_offset = align_up((p.j_groups - 1) * slot_a, 256);
  p.loss_offset = p.grad_b_offset + align_up((p.i_groups - 1) * slot_b, 256);
  p.bytes = p.loss_offset + p.blocks() * sizeof(double);
  return p;
}

// What the launcher accepts (the Python layer has said why in its own errors already).
inline bool valid_request(std::size_t d, std::size_t label_bytes, const PairwiseOptions& opt) {
  return d > 0 && label_bytes > 0 && std::isfinite(opt.scale) && std::isfinite(opt.similarity_scale) &&
         std::isfinite(opt.similar_weight) && std::isfinite(opt.dissimilar_weight) &&
         (opt.variant == PairwiseVariant::Nll || opt.variant == PairwiseVariant::Squared);
}

// Bounds of part `k` of `parts` near-equal parts of `total`.
XMHASH_HD std::size_t split(std::size_t total, std::size_t parts, std::size_t k) { return total * k / parts; }

// ---------------------------------------------------------------- job, shared memory, thread state

template <class T>
struct Job {
  const T* a;  // n x d
  const T* b;  // N x d
  std::size_t n, N, d;
  const code_t* labels_a;  // n x label_bytes
  const code_t* labels_b;  // N x label_bytes
  std::size_t label_bytes;
  T scale, similarity_scale;
  T grad_similar, grad_dissimilar;     // factor of d term / d theta in d loss / d <a, b>: weight x scale (/ n N)
  double loss_similar, loss_dissimilar;  // pair weights of the loss
  bool squared;
  bool mean;  // the loss is divided by n N (the gradient scale already is)
  Plan plan;
  T* grad_a;  // n x d or null: slot 0 of d loss / d A
  T* grad_b;  // N x d or null: slot 0 of d loss / d B
  T* grad_a_extra;  // slots 1 .. j_groups - 1
  T* grad_b_extra;  // slots 1 .. i_groups - 1
  double* block_loss;  // one per block

  XMHASH_HD T* grad_a_slot(std::size_t s) const { return s == 0 ? grad_a : grad_a_extra + (s - 1) * n * d; }
  XMHASH_HD T* grad_b_slot(std::size_t s) const { return s == 0 ? grad_b : grad_b_extra + (s - 1) * N * d; }
};

// Builds the job of one call; the workspace holds plan.bytes.
template <class T>
Job<T> make_job(const T* a, std::size_t n, const T* b, std::size_t N, std::size_t d, const code_t* labels_a,
                const code_t* labels_b, std::size_t label_bytes, const PairwiseOptions& opt, const Plan& plan,
                T* grad_a, T* grad_b, void* workspace) {
  Job<T> job{};
  job.a = a;
  job.b = b;
  job.n = n;
  job.N = N;
  job.d = d;
  job.labels_a = labels_a;
  job.labels_b = labels_b;
  job.label_bytes = label_bytes;
  job.scale = static_cast<T>(opt.scale);
  job.similarity_scale = static_cast<T>(opt.similarity_scale);
  const T grad_scale = static_cast<T>(opt.mean ? opt.scale / (double(n) * double(N)) : opt.scale);
  job.grad_similar = static_cast<T>(opt.similar_weight) * grad_scale;
  job.grad_dissimilar = static_cast<T>(opt.dissimilar_weight) * grad_scale;
  job.loss_similar = opt.similar_weight;
  job.loss_dissimilar = opt.dissimilar_weight;
  job.squared = opt.variant == PairwiseVariant::Squared;
  job.mean = opt.mean;
  job.plan = plan;
  job.grad_a = grad_a;
  job.grad_b = grad_b;
  auto* base = static_cast<unsigned char*>(workspace);
  job.grad_a_extra = reinterpret_cast<T*>(base + plan.grad_a_offset);
  job.grad_b_extra = reinterpret_cast<T*>(base + plan.grad_b_offset);
  job.block_loss = reinterpret_cast<double*>(base + plan.loss_offset);
  return job;
}

template <class T>
struct Shared {
  using S = Shape<T>;
  // Slices of the two tiles, transposed (column k of the slice is a row here): a warp reads consecutive pairs.
  // The +1 keeps the column walks of the staging writes off a single bank.
  T a[S::TK][S::TI + 1];
  T b[S::TK][S::TJ + 1];
  T g[S::TI][S::TJ + 1];  // d loss / d <a_i, b_j> of the tile, weights and scale folded in; 0 outside
  double loss[kThreads];
};

template <class T>
struct ThreadState {
  T dot[Shape<T>::RI][Shape<T>::RJ];  // <a_i, b_j> of this thread's pairs
  double loss;
};

// ---------------------------------------------------------------- phases (one thread's part of each)

// Thread t owns pairs (ty + (TI / RI) r, tx + (TJ / RJ) c) of a tile: a warp covers consecutive j.
template <class T>
struct PairOwner {
  static constexpr int X = Shape<T>::TJ / Shape<T>::RJ;
  static_assert(X * (Shape<T>::TI / Shape<T>::RI) == kThreads, "a tile's pairs must spread over all threads");
  int ty, tx;
  XMHASH_HD explicit PairOwner(int t) : ty(t / X), tx(t % X) {}
  XMHASH_HD int i(int r) const { return ty + (Shape<T>::TI / Shape<T>::RI) * r; }
  XMHASH_HD int j(int c) const { return tx + X * c; }
};

// Columns [k0, k0 + TK) of A's rows i0.. and B's rows j0.. into shared memory, zero outside the matrices.
template <class T>
XMHASH_HD void stage(const Job<T>& job, Shared<T>& sh, int t, std::size_t i0, std::size_t j0, std::size_t k0) {
  using S = Shape<T>;
  for (int e = t; e < S::TI * S::TK; e += kThreads) {
    const int il = e / S::TK, k = e % S::TK;
    const std::size_t i = i0 + il, kk = k0 + k;
    sh.a[k][il] = i < job.n && kk < job.d ? job.a[i * job.d + kk] : T(0);
  }
  for (int e = t; e < S::TJ * S::TK; e += kThreads) {
    const int jl = e / S::TK, k = e % S::TK;
    const std::size_t j = j0 + jl, kk = k0 + k;
    sh.b[k][jl] = j < job.N && kk < job.d ? job.b[j * job.d + kk] : T(0);
  }
}

template <class T>
XMHASH_HD void zero_dots(ThreadState<T>& st) {
  XMHASH_UNROLL
  for (int r = 0; r < Shape<T>::RI; ++r)
    XMHASH_UNROLL
    for (int c = 0; c < Shape<T>::RJ; ++c) st.dot[r][c] = T(0);
}

// dot += the staged slice's contribution.
template <class T>
XMHASH_HD void accumulate_dots(const Shared<T>& sh, int t, ThreadState<T>& st) {
  using S = Shape<T>;
  const PairOwner<T> o(t);
  XMHASH_UNROLL
  for (int k = 0; k < S::TK; ++k) {
    T bv[S::RJ];
    XMHASH_UNROLL
    for (int c = 0; c < S::RJ; ++c) bv[c] = sh.b[k][o.j(c)];
    XMHASH_UNROLL
    for (int r = 0; r < S::RI; ++r) {
      const T av = sh.a[k][o.i(r)];
      XMHASH_UNROLL
      for (int c = 0; c < S::RJ; ++c) st.dot[r][c] += av * bv[c];
    }
  }
}

// Loss and d loss / d <a_i, b_j> of one pair of the matrices (the per-pair math of the CPU kernels).
template <class T>
struct PairResult {
  double loss;
  T grad;
};

template <class T>
XMHASH_HD PairResult<T> pair_result(const Job<T>& job, std::size_t i, std::size_t j, T dot) {
  const bool similar =
      shares_label(job.labels_a + i * job.label_bytes, job.labels_b + j * job.label_bytes, job.label_bytes);
  const T theta = dot * job.scale;
  const T s = similar ? job.similarity_scale : T(0);
  const PairTerm<T> term = job.squared ? squared_term(theta, s) : nll_term(theta, s);
  return {(similar ? job.loss_similar : job.loss_dissimilar) * static_cast<double>(term.loss),
          (similar ? job.grad_similar : job.grad_dissimilar) * term.dtheta};
}

// The thread's pairs: loss into its running sum, gradient into the shared tile (0 for pairs outside).
template <class T>
XMHASH_HD void pair_terms(const Job<T>& job, Shared<T>& sh, int t, std::size_t i0, std::size_t j0,
                          ThreadState<T>& st) {
  using S = Shape<T>;
  const PairOwner<T> o(t);
  XMHASH_UNROLL
  for (int r = 0; r < S::RI; ++r)
    XMHASH_UNROLL
    for (int c = 0; c < S::RJ; ++c) {
      const std::size_t i = i0 + o.i(r), j = j0 + o.j(c);
      T g = T(0);
      if (i < job.n && j < job.N) {
        const PairResult<T> p = pair_result(job, i, j, st.dot[r][c]);
        st.loss += p.loss;
        g = p.grad;
      }
      sh.g[o.i(r)][o.j(c)] = g;
    }
}

// One thread's part of a gradient slice: out[row][k0 + k] (+)= sum_l g(row, l) s(k, l) over the tile's `Inner`
// pairs l, for rows ry + 16 m (m < R) and slice columns kx + 16 q (q < TK / 16), ry, kx = the thread's 16 x 16
// coordinates: R x TK / 16 sums in registers share each load. Each output element has one owner and sums in
// a fixed order; `first`: the block's first tile for these rows writes instead of adding (no clearing needed).
template <class T, int R, int Inner, class G, class Slice>
XMHASH_HD void grad_slice(int t, G g, Slice slice, std::size_t row0, std::size_t rows, std::size_t k0,
                          std::size_t d, T* out, bool first) {
  constexpr int Q = Shape<T>::TK / kSide;
  const int ry = t / kSide, kx = t % kSide;
  T acc[R][Q];
  XMHASH_UNROLL
  for (int m = 0; m < R; ++m)
    XMHASH_UNROLL
    for (int q = 0; q < Q; ++q) acc[m][q] = T(0);
  for (int l = 0; l < Inner; ++l) {
    T gv[R], sv[Q];
    XMHASH_UNROLL
    for (int m = 0; m < R; ++m) gv[m] = g(ry + kSide * m, l);
    XMHASH_UNROLL
    for (int q = 0; q < Q; ++q) sv[q] = slice(kx + kSide * q, l);
    XMHASH_UNROLL
    for (int m = 0; m < R; ++m)
      XMHASH_UNROLL
      for (int q = 0; q < Q; ++q) acc[m][q] += gv[m] * sv[q];
  }
  XMHASH_UNROLL
  for (int m = 0; m < R; ++m)
    XMHASH_UNROLL
    for (int q = 0; q < Q; ++q) {
      const std::size_t row = row0 + ry + kSide * m, k = k0 + kx + kSide * q;
      if (row >= rows || k >= d) continue;
      T& o = out[row * d + k];
      o = first ? acc[m][q] : o + acc[m][q];
    }
}

// d loss / d B rows j0.., columns of the staged slice: out[j][k] (+)= sum_i g[i][j] a[i][k].
template <class T>
XMHASH_HD void grad_b_slice(const Job<T>& job, const Shared<T>& sh, int t, std::size_t j0, std::size_t k0, T* out,
                            bool first) {
  using S = Shape<T>;
  grad_slice<T, S::TJ / kSide, S::TI>(
      t, [&](int jl, int il) { return sh.g[il][jl]; }, [&](int k, int il) { return sh.a[k][il]; }, j0, job.N, k0,
      job.d, out, first);
}

// d loss / d A rows i0..: out[i][k] (+)= sum_j g[i][j] b[j][k].
template <class T>
XMHASH_HD void grad_a_slice(const Job<T>& job, const Shared<T>& sh, int t, std::size_t i0, std::size_t k0, T* out,
                            bool first) {
  using S = Shape<T>;
  grad_slice<T, S::TI / kSide, S::TJ>(
      t, [&](int il, int jl) { return sh.g[il][jl]; }, [&](int k, int jl) { return sh.b[k][jl]; }, i0, job.n, k0,
      job.d, out, first);
}

// ---------------------------------------------------------------- one block

template <class T, class Threads>
XMHASH_HD void run_block(const Job<T>& job, std::size_t block, Shared<T>& sh, Threads& threads) {
  using S = Shape<T>;
  const Plan& p = job.plan;
  const std::size_t ig = block / p.j_groups, jg = block % p.j_groups;
  const std::size_t it0 = split(p.i_tiles, p.i_groups, ig), it1 = split(p.i_tiles, p.i_groups, ig + 1);
  const std::size_t jt0 = split(p.j_tiles, p.j_groups, jg), jt1 = split(p.j_tiles, p.j_groups, jg + 1);
  T* grad_a = job.grad_a ? job.grad_a_slot(jg) : nullptr;
  T* grad_b = job.grad_b ? job.grad_b_slot(ig) : nullptr;
  const std::size_t d = job.d;

  threads.each([&](int, ThreadState<T>& st) { st.loss = 0; });
  for (std::size_t jt = jt0; jt < jt1; ++jt) {
    for (std::size_t it = it0; it < it1; ++it) {
      const std::size_t i0 = it * S::TI, j0 = jt * S::TJ;
      for (std::size_t k0 = 0; k0 < d; k0 += S::TK) {
        threads.each([&](int t, ThreadState<T>& st) {
          if (k0 == 0) zero_dots(st);
          stage(job, sh, t, i0, j0, k0);
        });
        threads.each([&](int t, ThreadState<T>& st) { accumulate_dots(sh, t, st); });
      }
      threads.each([&](int t, ThreadState<T>& st) { pair_terms(job, sh, t, i0, j0, st); });
      if (!grad_a && !grad_b) continue;
      for (std::size_t k0 = 0; k0 < d; k0 += S::TK) {
        // One slice (d <= TK): the theta pass left it in shared memory.
        if (d > S::TK) threads.each([&](int t, ThreadState<T>&) { stage(job, sh, t, i0, j0, k0); });
        threads.each([&](int t, ThreadState<T>&) {
          if (grad_b) grad_b_slice(job, sh, t, j0, k0, grad_b, it == it0);
          if (grad_a) grad_a_slice(job, sh, t, i0, k0, grad_a, jt == jt0);
        });
      }
    }
  }
  // The block's loss: thread sums added up in thread order.
  threads.each([&](int t, ThreadState<T>& st) { sh.loss[t] = st.loss; });
  threads.each([&](int t, ThreadState<T>&) {
    if (t != 0) return;
    double s = 0;
    for (int u = 0; u < kThreads; ++u) s += sh.loss[u];
    job.block_loss[block] = s;
  });
}

// ---------------------------------------------------------------- final sums (after every block)

// Element x of a gradient: slot 0 (the output) plus the extra slots, in slot order.
template <class T>
XMHASH_HD void add_slots(T* out, const T* extra, std::size_t extra_slots, std::size_t count, std::size_t x) {
  T v = out[x];
  for (std::size_t s = 0; s < extra_slots; ++s) v += extra[s * count + x];
  out[x] = v;
}

// The loss: per-block losses in block order, divided by n N for a mean.
template <class T>
XMHASH_HD T total_loss(const Job<T>& job) {
  double s = 0;
  for (std::size_t k = 0; k < job.plan.blocks(); ++k) s += job.block_loss[k];
  return static_cast<T>(job.mean ? s / (double(job.n) * double(job.N)) : s);
}

}  // namespace xmhash::pairwise_tiles
