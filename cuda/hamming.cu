#include <cuda_runtime.h>

#include "hamming.cuh"
#include "xmhash/popcount.hpp"

namespace {

// One thread per (query, database code) pair; the per-pair logic is the shared host/device hamming().
__global__ void cdist_kernel(const std::uint8_t* q, std::size_t nq, const std::uint8_t* db, std::size_t nb,
                             std::size_t cs, std::int32_t* out) {
  const std::size_t j = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x;
  const std::size_t i = blockIdx.y;
  if (i >= nq || j >= nb) return;
  out[i * nb + j] = xmhash::hamming(q + i * cs, db + j * cs, cs);
}

}  // namespace

extern "C" int xmhash_cuda_device_count() {
  int n = 0;
  cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess) return -static_cast<int>(err);
  return n;
}

extern "C" const char* xmhash_cuda_error_string(int code) { return cudaGetErrorString(static_cast<cudaError_t>(code)); }

extern "C" int xmhash_cuda_cdist(const std::uint8_t* q, std::size_t nq, const std::uint8_t* db, std::size_t nb,
                                 std::size_t code_size, std::int32_t* out, void* stream) {
  if (nq == 0 || nb == 0) return 0;
  dim3 block(256);
  dim3 grid(static_cast<unsigned>((nb + 255) / 256), static_cast<unsigned>(nq));
  cdist_kernel<<<grid, block, 0, static_cast<cudaStream_t>(stream)>>>(q, nq, db, nb, code_size, out);
  return static_cast<int>(cudaGetLastError());
}
