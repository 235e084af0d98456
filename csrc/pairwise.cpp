// Driver of the fused pairwise loss: validates, lays out A (transposed, padded) and the label rows once, cuts B
// into chunks, runs the ISA kernel on the thread pool and reduces the per-chunk d loss / d A in chunk order.
#include "xmhash/pairwise.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "xmhash/isa.hpp"
#include "xmhash/pairwise_kernels.hpp"
#include "xmhash/parallel.hpp"

namespace xmhash {
namespace {

// Chunks of B: each owns an n x d partial of d loss / d A. Their number depends on the problem size only
// (never on the thread count), so sums happen in the same order on every run and for every thread count.
constexpr std::size_t kMaxChunks = 16;
constexpr std::size_t kMinChunkRows = 64;
// Bound of all partials together; a larger A is processed in groups of rows (see pairwise_loss).
constexpr std::size_t kPartialBudgetBytes = std::size_t(16) << 20;
// Cache budgets of one block: B rows (L2) and the theta/gradient tile (L1/L2).
constexpr std::size_t kBlockBBytes = std::size_t(128) << 10;
constexpr std::size_t kBlockTileBytes = std::size_t(64) << 10;

const PairwiseKernels& pairwise_kernels_for(Isa isa) {
  switch (isa) {
#if defined(XMHASH_HAVE_AVX2)
    case Isa::Avx2: return pairwise_kernels_avx2();
#endif
#if defined(XMHASH_HAVE_AVX512)
    case Isa::Avx512: return pairwise_kernels_avx512();
#endif
    default: return pairwise_kernels_scalar();
  }
}

std::size_t round_up(std::size_t x, std::size_t m) { return (x + m - 1) / m * m; }

// Row stride of a padded array: one more vector when the row size is a multiple of 256 bytes, so that rows
// walked in a column sweep do not all land in the same few cache sets.
template <class T>
std::size_t leading_dim(std::size_t padded_cols, std::size_t lanes) {
  return (padded_cols * sizeof(T)) % 256 == 0 ? padded_cols + lanes : padded_cols;
}
std::size_t ceil_div(std::size_t a, std::size_t b) { return (a + b - 1) / b; }

// Zero-initialised, 64-byte aligned array (full cache lines for the vector loads).
template <class T>
class Buffer {
 public:
  Buffer() = default;
  explicit Buffer(std::size_t size) {
    if (size == 0) return;
    data_.reset(static_cast<T*>(::operator new(size * sizeof(T), std::align_val_t(64))));
    std::memset(data_.get(), 0, size * sizeof(T));
  }
  T* get() const { return data_.get(); }

 private:
  struct Free {
    void operator()(T* p) const { ::operator delete(p, std::align_val_t(64)); }
  };
  std::unique_ptr<T, Free> data_;
};

template <class T>
using ChunkFn = void (*)(const PairwiseJob<T>&, std::size_t, std::size_t, const PairwiseScratch<T>&, T*, double*);

template <class T>
ChunkFn<T> chunk_fn(const PairwiseKernels& k) {
  if constexpr (sizeof(T) == sizeof(float)) return k.chunk_f32;
  else return k.chunk_f64;
}

void check_finite(double v, const char* name) {
  if (!std::isfinite(v)) invalid(std::string(name) + " must be a finite number, got " + std::to_string(v));
}

}  // namespace

template <class T>
double pairwise_loss(const T* a, std::size_t n, const T* b, std::size_t N, std::size_t d, const code_t* labels_a,
                     const code_t* labels_b, std::size_t label_bytes, const PairwiseOptions& opt, T* grad_a,
                     T* grad_b) {
  if (d == 0) invalid("a and b must have at least one column (d >= 1)");
  if (label_bytes == 0) invalid("label rows must have at least one byte");
  check_finite(opt.scale, "scale");
  check_finite(opt.similarity_scale, "similarity_scale");
  check_finite(opt.similar_weight, "similar_weight");
  check_finite(opt.dissimilar_weight, "dissimilar_weight");
  if (opt.variant != PairwiseVariant::Nll && opt.variant != PairwiseVariant::Squared)
    invalid("variant must be Nll or Squared");
  if (n == 0 || N == 0) {  // no pairs: zero loss and zero gradients
    if (grad_a) std::fill(grad_a, grad_a + n * d, T(0));
    if (grad_b) std::fill(grad_b, grad_b + N * d, T(0));
    return 0.0;
  }

  const PairwiseKernels& kern = pairwise_kernels_for(active_isa());
  const std::size_t lanes = sizeof(T) == sizeof(float) ? kern.lanes_f32 : kern.lanes_f64;
  const std::size_t d_pad = round_up(d, lanes), d_ld = leading_dim<T>(d_pad, lanes);
  const int threads = resolve_threads(opt.threads);

  PairwiseJob<T> job{};
  job.N = N;
  job.d = d;
  job.d_pad = d_pad;
  job.d_ld = d_ld;
  job.b = b;
  job.scale = static_cast<T>(opt.scale);
  job.similarity_scale = static_cast<T>(opt.similarity_scale);
  job.similar_weight = static_cast<T>(opt.similar_weight);
  job.dissimilar_weight = static_cast<T>(opt.dissimilar_weight);
  job.grad_scale = static_cast<T>(opt.mean ? opt.scale / (double(n) * double(N)) : opt.scale);
  job.variant = opt.variant;
  job.want_grad_a = grad_a != nullptr;
  job.grad_b = grad_b;

  // Label rows as whole words: 4 bytes (up to 32 classes), 8, or a multiple of 8; copied only when padding.
  const std::size_t stride = label_bytes <= 4 ? 4 : round_up(label_bytes, 8);
  Buffer<code_t> la_padded, lb_padded;
  const code_t* la_rows = labels_a;
  job.labels_b = labels_b;
  job.label_stride = stride;
  if (stride != label_bytes) {
    la_padded = Buffer<code_t>(n * stride);
    lb_padded = Buffer<code_t>(N * stride);
    for (std::size_t i = 0; i < n; ++i)
      std::memcpy(la_padded.get() + i * stride, labels_a + i * label_bytes, label_bytes);
    for (std::size_t j = 0; j < N; ++j)
      std::memcpy(lb_padded.get() + j * stride, labels_b + j * label_bytes, label_bytes);
    la_rows = la_padded.get();
    job.labels_b = lb_padded.get();
  }

  // A is processed in groups of rows small enough that every chunk's d loss / d A partial of a group fits the
  // budget (one group for batch-sized A); each group is one parallel pass over B.
  const std::size_t chunks = std::min(kMaxChunks, ceil_div(N, kMinChunkRows));
  std::size_t group = n;
  if (grad_a) {
    const std::size_t fit = kPartialBudgetBytes / (chunks * d_ld * sizeof(T));
    group = std::min(n, std::max(lanes, fit / lanes * lanes));
  }
  const std::size_t g_pad = round_up(group, lanes), g_ld = leading_dim<T>(g_pad, lanes);
  const std::size_t rows = std::min(kBlockBBytes / (d_ld * sizeof(T)), kBlockTileBytes / (g_ld * sizeof(T)));
  job.block_rows = std::min(std::max<std::size_t>(rows, 8), N);

  Buffer<T> at(d * g_ld), a_rows(group * d_ld), partials(grad_a ? chunks * group * d_ld : 0);
  job.at = at.get();
  job.a_rows = a_rows.get();
  const std::size_t words = stride > 8 ? stride / 8 : 0;  // wide label rows: A's words, word-major
  Buffer<std::uint64_t> la_words(words * g_pad);
  job.labels_a_words = la_words.get();
  std::vector<double> losses(chunks);

  const std::size_t workers = std::min<std::size_t>(static_cast<std::size_t>(threads), chunks);
  std::vector<Buffer<T>> scratch_mem;
  std::vector<PairwiseScratch<T>> scratch(workers);
  auto take = [&](std::size_t size) {
    scratch_mem.emplace_back(size);
    return scratch_mem.back().get();
  };
  std::vector<Buffer<std::uint64_t>> masks;
  for (auto& s : scratch) {
    if (words) {
      masks.emplace_back(g_pad);
      s.label_mask = masks.back().get();
    }
    s.tile = take(job.block_rows * g_ld);
    s.b_block = take(job.block_rows * d_ld);
    if (grad_b && d != d_pad) s.gb_block = take(job.block_rows * d_ld);
    s.row_loss = take(g_pad);
    s.row_u_sim = take(g_pad);
    s.row_u_dis = take(g_pad);
  }

  const ChunkFn<T> run_chunk = chunk_fn<T>(kern);
  double loss = 0;
  for (std::size_t g0 = 0; g0 < n; g0 += group) {
    const std::size_t ng = std::min(group, n - g0), n_pad = round_up(ng, lanes);
    const std::size_t n_ld = leading_dim<T>(n_pad, lanes);
    const T* ag = a + g0 * d;
    job.n = ng;
    job.n_pad = n_pad;
    job.n_ld = n_ld;
    job.labels_a = la_rows + g0 * stride;
    job.accumulate_grad_b = g0 > 0;
    // A^T (d x n_ld), vectorised over the batch in the theta product, and A with padded rows (ng x d_ld).
    std::fill(at.get(), at.get() + d * g_ld, T(0));
    for (std::size_t i = 0; i < ng; ++i)
      for (std::size_t k = 0; k < d; ++k) at.get()[k * n_ld + i] = ag[i * d + k];
    for (std::size_t i = 0; i < ng; ++i) std::memcpy(a_rows.get() + i * d_ld, ag + i * d, d * sizeof(T));
    for (std::size_t w = 0; w < words; ++w)
      for (std::size_t i = 0; i < ng; ++i)
        std::memcpy(la_words.get() + w * n_pad + i, job.labels_a + i * stride + 8 * w, sizeof(std::uint64_t));
    // Per-pair rows: the padding past ng adds 0 to the loss and a factor 1 to the products of u.
    for (auto& s : scratch) {
      std::fill(s.row_loss, s.row_loss + g_pad, T(0));
      std::fill(s.row_u_sim, s.row_u_sim + g_pad, T(1));
      std::fill(s.row_u_dis, s.row_u_dis + g_pad, T(1));
    }
    const std::size_t partial_size = ng * d_ld;
    if (grad_a) std::fill(partials.get(), partials.get() + chunks * partial_size, T(0));
    std::fill(losses.begin(), losses.end(), 0.0);

    parallel_for(chunks, static_cast<int>(workers), [&](std::size_t c, int w) {
      const std::size_t r0 = N * c / chunks, r1 = N * (c + 1) / chunks;
      run_chunk(job, r0, r1, scratch[static_cast<std::size_t>(w)],
                grad_a ? partials.get() + c * partial_size : nullptr, &losses[c]);
    });

    if (grad_a) {  // sum the chunks' partials in chunk order
      const std::size_t rows_per_task = std::max<std::size_t>(1, (std::size_t(16) << 10) / d_ld);
      parallel_for(ceil_div(ng, rows_per_task), threads, [&](std::size_t task, int) {
        const std::size_t i1 = std::min(ng, (task + 1) * rows_per_task);
        for (std::size_t i = task * rows_per_task; i < i1; ++i) {
          T* out = grad_a + (g0 + i) * d;
          const T* p = partials.get() + i * d_ld;
          std::memcpy(out, p, d * sizeof(T));
          for (std::size_t c = 1; c < chunks; ++c) {
            const T* pc = p + c * partial_size;
            for (std::size_t k = 0; k < d; ++k) out[k] += pc[k];
          }
        }
      });
    }
    for (double l : losses) loss += l;
  }
  return opt.mean ? loss / (double(n) * double(N)) : loss;
}

template double pairwise_loss<float>(const float*, std::size_t, const float*, std::size_t, std::size_t, const code_t*,
                                     const code_t*, std::size_t, const PairwiseOptions&, float*, float*);
template double pairwise_loss<double>(const double*, std::size_t, const double*, std::size_t, std::size_t,
                                      const code_t*, const code_t*, std::size_t, const PairwiseOptions&, double*,
                                      double*);

}  // namespace xmhash
