// The fused pairwise loss on the GPU: the block schedule of pairwise_tiles.hpp (shared with the CPU model the
// tests run), then the slot and loss sums. See pairwise.cuh.
#include <cuda_runtime.h>

#include <algorithm>

#include "launch_common.cuh"
#include "pairwise.cuh"
#include "xmhash/pairwise_tiles.hpp"

namespace xmhash::cuda {
namespace {

namespace tiles = xmhash::pairwise_tiles;

// The block's threads for run_block(): each runs its part of a phase, then the block waits.
template <class T>
struct BlockThreads {
  tiles::ThreadState<T>& state;
  template <class Fn>
  __device__ __forceinline__ void each(Fn&& fn) {
    fn(static_cast<int>(threadIdx.x), state);
    __syncthreads();
  }
};

template <class T>
__global__ void __launch_bounds__(tiles::kThreads) pairwise_tiles_kernel(const tiles::Job<T> job) {
  __shared__ tiles::Shared<T> sh;
  tiles::ThreadState<T> state;
  BlockThreads<T> threads{state};
  tiles::run_block(job, blockIdx.x, sh, threads);
}

template <class T>
__global__ void add_slots_kernel(T* out, const T* extra, std::size_t extra_slots, std::size_t count) {
  for (std::size_t x = blockIdx.x * std::size_t{blockDim.x} + threadIdx.x; x < count;
       x += std::size_t{gridDim.x} * blockDim.x)
    tiles::add_slots(out, extra, extra_slots, count, x);
}

template <class T>
__global__ void total_loss_kernel(const tiles::Job<T> job, T* loss) {
  *loss = tiles::total_loss(job);  // one thread: a few hundred doubles, in block order
}

template <class T>
cudaError_t add_slots(T* out, const T* extra, std::size_t extra_slots, std::size_t count, cudaStream_t s) {
  if (extra_slots == 0 || count == 0) return cudaSuccess;
  constexpr int kThreads = 256;
  const unsigned blocks = static_cast<unsigned>(std::min<std::size_t>(ceil_div(count, kThreads), 4096));
  add_slots_kernel<T><<<blocks, kThreads, 0, s>>>(out, extra, extra_slots, count);
  return cudaGetLastError();
}

template <class T>
int pairwise_loss(const T* a, std::size_t n, const T* b, std::size_t N, std::size_t d, const std::uint8_t* labels_a,
                  const std::uint8_t* labels_b, std::size_t label_bytes, const PairwiseOptions* options, T* loss,
                  T* grad_a, T* grad_b, void* workspace, std::size_t workspace_bytes, int device, void* stream) {
  if (!options || !loss || !tiles::valid_request(d, label_bytes, *options)) return cudaErrorInvalidValue;
  DeviceGuard guard(device);
  XMHASH_CUDA_TRY(guard.status());
  const cudaStream_t s = as_stream(stream);
  if (n == 0 || N == 0) {  // no pairs: zero loss and gradients (all-zero bits are 0.0 in both types)
    XMHASH_CUDA_TRY(cudaMemsetAsync(loss, 0, sizeof(T), s));
    if (grad_a) XMHASH_CUDA_TRY(cudaMemsetAsync(grad_a, 0, n * d * sizeof(T), s));
    if (grad_b) XMHASH_CUDA_TRY(cudaMemsetAsync(grad_b, 0, N * d * sizeof(T), s));
    return 0;
  }
  const tiles::Plan plan = tiles::make_plan<T>(n, N, d, grad_a != nullptr, grad_b != nullptr);
  if (!workspace || workspace_bytes < plan.bytes) return cudaErrorInvalidValue;
  const tiles::Job<T> job = tiles::make_job(a, n, b, N, d, labels_a, labels_b, label_bytes, *options, plan, grad_a,
                                            grad_b, workspace);
  pairwise_tiles_kernel<T><<<static_cast<unsigned>(plan.blocks()), tiles::kThreads, 0, s>>>(job);
  XMHASH_CUDA_TRY(cudaGetLastError());
  if (grad_a) XMHASH_CUDA_TRY(add_slots(grad_a, job.grad_a_extra, plan.j_groups - 1, n * d, s));
  if (grad_b) XMHASH_CUDA_TRY(add_slots(grad_b, job.grad_b_extra, plan.i_groups - 1, N * d, s));
  total_loss_kernel<T><<<1, 1, 0, s>>>(job, loss);
  return static_cast<int>(cudaGetLastError());
}

}  // namespace
}  // namespace xmhash::cuda

extern "C" int xmhash_cuda_pairwise_workspace(std::size_t n, std::size_t N, std::size_t d, std::size_t element_bytes,
                                              int want_grad_a, int want_grad_b, std::size_t* bytes) {
  namespace tiles = xmhash::pairwise_tiles;
  if (!bytes || (element_bytes != 4 && element_bytes != 8)) return cudaErrorInvalidValue;
  if (n == 0 || N == 0 || d == 0) {
    *bytes = 0;
    return 0;
  }
  *bytes = element_bytes == 4 ? tiles::make_plan<float>(n, N, d, want_grad_a, want_grad_b).bytes
                              : tiles::make_plan<double>(n, N, d, want_grad_a, want_grad_b).bytes;
  return 0;
}

extern "C" int xmhash_cuda_pairwise_loss_f32(const float* a, std::size_t n, const float* b, std::size_t N,
                                             std::size_t d, const std::uint8_t* labels_a,
                                             const std::uint8_t* labels_b, std::size_t label_bytes,
                                             const xmhash::PairwiseOptions* options, float* loss, float* grad_a,
                                             float* grad_b, void* workspace, std::size_t workspace_bytes,
                                             int device, void* stream) {
  return xmhash::cuda::pairwise_loss(a, n, b, N, d, labels_a, labels_b, label_bytes, options, loss, grad_a, grad_b,
                                     workspace, workspace_bytes, device, stream);
}

extern "C" int xmhash_cuda_pairwise_loss_f64(const double* a, std::size_t n, const double* b, std::size_t N,
                                             std::size_t d, const std::uint8_t* labels_a,
                                             const std::uint8_t* labels_b, std::size_t label_bytes,
                                             const xmhash::PairwiseOptions* options, double* loss, double* grad_a,
                                             double* grad_b, void* workspace, std::size_t workspace_bytes,
                                             int device, void* stream) {
  return xmhash::cuda::pairwise_loss(a, n, b, N, d, labels_a, labels_b, label_bytes, options, loss, grad_a, grad_b,
                                     workspace, workspace_bytes, device, stream);
}
