// AVX-512 path: only this translation unit is compiled with those flags (CMakeLists.txt); 64-byte vectors.
#include "xmhash/pairwise_generic.hpp"

namespace xmhash {
namespace {

constexpr int kBytes = 64;  // vector width
constexpr int kRows = 6;    // register tile: kRows rows x kVecs vectors
constexpr int kVecs = 2;

void chunk_f32(const PairwiseJob<float>& job, std::size_t b0, std::size_t b1, const PairwiseScratch<float>& ws,
               float* grad_a, double* loss) {
  pairwise_generic::chunk<float, kBytes, kRows, kVecs>(job, b0, b1, ws, grad_a, loss);
}

void chunk_f64(const PairwiseJob<double>& job, std::size_t b0, std::size_t b1, const PairwiseScratch<double>& ws,
               double* grad_a, double* loss) {
  pairwise_generic::chunk<double, kBytes, kRows, kVecs>(job, b0, b1, ws, grad_a, loss);
}

}  // namespace

const PairwiseKernels& pairwise_kernels_avx512() {
  static const PairwiseKernels k{kBytes / sizeof(float), kBytes / sizeof(double), chunk_f32, chunk_f64};
  return k;
}

}  // namespace xmhash
