// Fused pairwise similarity loss of deep cross-modal hashing (DCMH; SSAH paper and SSAH published code):
// for a batch A (n x d), a memory B (N x d) and packed label bits of both,
//
//   theta_ij = scale * <a_i, b_j>,   S_ij = similarity_scale if labels i and j share a class, else 0,
//   w_ij     = similar_weight if they share a class, else dissimilar_weight,
//   nll:      loss = sum_ij w_ij * (softplus(theta_ij) - S_ij * theta_ij)
//   squared:  loss = sum_ij w_ij * (S_ij * theta_ij - softplus(theta_ij))^2        (SSAH's published code)
//
// and, when asked, d loss / d A and d loss / d B, in one pass over B in blocks of rows: no n x N matrix is
// held and S is never materialised. Work is cut into a fixed number of chunks of B that depends only on the
// problem size, so results are reproducible run to run and across thread counts.
#pragma once
#include <cstddef>

#include "xmhash/types.hpp"

namespace xmhash {

enum class PairwiseVariant { Nll = 0, Squared = 1 };

struct PairwiseOptions {
  double scale = 0.5;             // theta = scale * <a, b>
  double similarity_scale = 1.0;  // S for pairs that share a class (SSAH's code uses 0.999)
  double similar_weight = 1.0;    // per-pair weights by similarity (balancing); 1, 1 = unweighted
  double dissimilar_weight = 1.0;
  PairwiseVariant variant = PairwiseVariant::Nll;
  bool mean = false;              // divide the loss and the gradients by n * N
  int threads = 0;                // 0 = every core
};

// Returns the loss. a: n x d, b: N x d, row-major. labels_a: n x label_bytes, labels_b: N x label_bytes packed
// label bits (any bit order, as long as both sides use the same). grad_a (n x d) and grad_b (N x d) are
// written when not null. Throws std::invalid_argument on bad sizes or options.
template <class T>
double pairwise_loss(const T* a, std::size_t n, const T* b, std::size_t N, std::size_t d, const code_t* labels_a,
                     const code_t* labels_b, std::size_t label_bytes, const PairwiseOptions& options, T* grad_a,
                     T* grad_b);

extern template double pairwise_loss<float>(const float*, std::size_t, const float*, std::size_t, std::size_t,
                                            const code_t*, const code_t*, std::size_t, const PairwiseOptions&,
                                            float*, float*);
extern template double pairwise_loss<double>(const double*, std::size_t, const double*, std::size_t, std::size_t,
                                             const code_t*, const code_t*, std::size_t, const PairwiseOptions&,
                                             double*, double*);

}  // namespace xmhash
