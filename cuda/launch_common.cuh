// Helpers shared by the CUDA translation units (internal; the public API is hamming.cuh).
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "xmhash/code_words.hpp"

namespace xmhash::cuda {

constexpr int kWarp = 32;
// Dynamic shared memory every launch stays under, so no per-architecture opt-in is needed.
constexpr std::size_t kSharedBudget = 48 * 1024;
// The counting kernels (select.cu, metric_histograms.cu): one warp per (query, database chunk) unit, at most this
// many warps per block, and about this many units in flight per SM (two full H100 SMs' worth of warps).
constexpr int kMaxWarpsPerBlock = 8;
constexpr std::size_t kUnitsPerSm = 128;

// Warps per block of a counting kernel whose units keep `bin_bytes` of counters each: in shared memory when
// they fit the budget (then as many warps as fit), else in global memory.
inline bool bins_in_shared(std::size_t bin_bytes) { return bin_bytes <= kSharedBudget; }
inline int counting_warps_per_block(std::size_t bin_bytes) {
  if (!bins_in_shared(bin_bytes)) return kMaxWarpsPerBlock;
  return static_cast<int>(std::min<std::size_t>(kMaxWarpsPerBlock, kSharedBudget / bin_bytes));
}

#define XMHASH_CUDA_TRY(expr)                    \
  do {                                           \
    cudaError_t err_ = (expr);                   \
    if (err_ != cudaSuccess) return int(err_);   \
  } while (0)

// Makes `device` current for the launcher's lifetime and restores the caller's device: torch and this module
// link different CUDA runtimes, which keep separate current-device state.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    status_ = cudaGetDevice(&prev_);
    if (status_ == cudaSuccess && prev_ != device) {
      status_ = cudaSetDevice(device);
      switched_ = status_ == cudaSuccess;
    }
  }
  ~DeviceGuard() {
    if (switched_) cudaSetDevice(prev_);
  }
  cudaError_t status() const { return status_; }

 private:
  int prev_ = 0;
  bool switched_ = false;
  cudaError_t status_;
};

inline cudaStream_t as_stream(void* s) { return static_cast<cudaStream_t>(s); }

inline int sm_count(int device, int* out) {
  XMHASH_CUDA_TRY(cudaDeviceGetAttribute(out, cudaDevAttrMultiProcessorCount, device));
  return 0;
}

inline std::size_t ceil_div(std::size_t a, std::size_t b) { return (a + b - 1) / b; }

// A query code for one warp: kept in registers when its word count is fixed at compile time (the hot code
// sizes), read through the cache otherwise. The distance itself is the shared hamming_words().
template <int kWords, class Word>
struct QueryCode {
  Word reg[kWords > 0 ? kWords : 1];
  const Word* ptr;
  int nwords;
  __device__ QueryCode(const Word* p, int n) : ptr(p), nwords(n) {
    if constexpr (kWords > 0) {
#pragma unroll
      for (int w = 0; w < kWords; ++w) reg[w] = p[w];
    }
  }
  __device__ int dist(const Word* b) const {
    if constexpr (kWords > 0) return hamming_words<kWords>(reg, b, kWords);
    return hamming_words<0>(ptr, b, nwords);
  }
};

// Per-distance counters of one unit: in shared memory (stride 1) or, for very long codes whose bins do not
// fit, in the unit's own column of a global array (stride = units).
struct Bins {
  std::uint32_t* base;
  std::size_t stride;
  __device__ std::uint32_t& operator[](int d) const { return base[static_cast<std::size_t>(d) * stride]; }
};

__device__ inline unsigned lanemask_lt() {
  unsigned m;
  asm("mov.u32 %0, %%lanemask_lt;" : "=r"(m));
  return m;
}

// Inclusive prefix sum over the 32 lanes of a warp.
template <class T>
__device__ T warp_inclusive_scan(T v) {
  const int lane = threadIdx.x % kWarp;
#pragma unroll
  for (int o = 1; o < kWarp; o *= 2) {
    const T n = __shfl_up_sync(0xffffffffu, v, o);
    if (lane >= o) v += n;
  }
  return v;
}

}  // namespace xmhash::cuda
