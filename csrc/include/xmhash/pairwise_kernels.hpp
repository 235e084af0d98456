// The per-ISA table of the pairwise-loss kernel (pairwise.cpp prepares the job and owns threading; each ISA
// translation unit compiles pairwise_generic.hpp with its own vector width and flags).
#pragma once
#include <cstddef>
#include <cstdint>

#include "xmhash/pairwise.hpp"
#include "xmhash/types.hpp"

namespace xmhash {

// Everything a chunk of B needs for one group of rows of A (the whole batch, unless A is very large), shared
// read-only by the workers. Leading
// dimensions (ld) are padded so that row strides are never a multiple of 256 bytes (cache-set conflicts).
template <class T>
struct PairwiseJob {
  std::size_t n, N, d;
  std::size_t n_pad, d_pad;  // n and d rounded up to the kernel's vector lanes
  std::size_t n_ld, d_ld;    // row strides of n-wide (A^T, tile) and d-wide (A rows, B block, partials) arrays
  const T* at;               // d x n_ld: A transposed, zero past column n
  const T* a_rows;           // n x d_ld: A, zero past column d
  const T* b;                // N x d: B as given
  const code_t* labels_a;    // n x label_stride, zero-padded label rows
  const code_t* labels_b;    // N x label_stride
  std::size_t label_stride;  // 4 (one 32-bit word), 8 (one 64-bit word) or a multiple of 8
  const std::uint64_t* labels_a_words;  // label_stride > 8: A's labels word-major, (label_stride / 8) x n_pad
  T scale, similarity_scale, similar_weight, dissimilar_weight;
  T grad_scale;              // scale, divided by n * N for a mean
  PairwiseVariant variant;
  std::size_t block_rows;    // rows of B per block (sized for the caches)
  bool want_grad_a;
  T* grad_b;                 // N x d, or null
  bool accumulate_grad_b;    // add to grad_b (a later group of rows of A) instead of writing it
};

// Per-worker scratch, sized and initialised by the driver.
template <class T>
struct PairwiseScratch {
  T* tile;       // block_rows x n_ld: theta, then d loss / d <a_i, b_j>
  T* b_block;    // block_rows x d_ld: the block of B, zero past column d
  T* gb_block;   // block_rows x d_ld when grad_b and d != d_pad
  T* row_loss;   // n_pad, zero past n: per-pair loss without its logarithm (nll) or with it (squared)
  T* row_u_sim;  // n_pad, one past n: 1 + e^-|theta| of similar pairs, else 1 (nll)
  T* row_u_dis;  // n_pad, one past n: the same for dissimilar pairs
  std::uint64_t* label_mask;  // n_pad: label_stride > 8: OR over words of (a_i & b_j)
};

struct PairwiseKernels {
  std::size_t lanes_f32, lanes_f64;  // vector lanes: the padding unit of n and d
  // Processes rows [row_begin, row_end) of B in blocks of job.block_rows: adds their loss to *loss and their
  // d loss / d A to grad_a_partial (n x d_ld, when want_grad_a), writes their rows of grad_b. Sums run in a
  // fixed order for a given job.
  void (*chunk_f32)(const PairwiseJob<float>&, std::size_t row_begin, std::size_t row_end,
                    const PairwiseScratch<float>&, float* grad_a_partial, double* loss);
  void (*chunk_f64)(const PairwiseJob<double>&, std::size_t row_begin, std::size_t row_end,
                    const PairwiseScratch<double>&, double* grad_a_partial, double* loss);
};

const PairwiseKernels& pairwise_kernels_scalar();
#if defined(XMHASH_HAVE_AVX2)
const PairwiseKernels& pairwise_kernels_avx2();
#endif
#if defined(XMHASH_HAVE_AVX512)
const PairwiseKernels& pairwise_kernels_avx512();
#endif

}  // namespace xmhash
