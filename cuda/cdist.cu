// All pairwise Hamming distances. One thread per database code and query block: the database code stays in
// cache for the block's queries; query blocks beyond the grid's y limit are looped over.
#include <cuda_runtime.h>

#include <algorithm>

#include "hamming.cuh"
#include "launch_common.cuh"

namespace xmhash::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kQueriesPerBlock = 8;
constexpr unsigned kMaxGridY = 65535;

template <class Word, int kWords>
__global__ void cdist_kernel(const Word* q, std::size_t nq, const Word* db, std::size_t nb, int nwords,
                             std::int32_t* out) {
  const std::size_t j = blockIdx.x * static_cast<std::size_t>(kThreads) + threadIdx.x;
  if (j >= nb) return;
  const Word* b = db + j * nwords;
  for (std::size_t q0 = blockIdx.y * std::size_t{kQueriesPerBlock}; q0 < nq;
       q0 += gridDim.y * std::size_t{kQueriesPerBlock}) {
    const std::size_t q1 = q0 + kQueriesPerBlock < nq ? q0 + kQueriesPerBlock : nq;
    for (std::size_t i = q0; i < q1; ++i) out[i * nb + j] = hamming_words<kWords>(q + i * nwords, b, nwords);
  }
}

}  // namespace
}  // namespace xmhash::cuda

extern "C" int xmhash_cuda_cdist(const std::uint8_t* q, std::size_t nq, const std::uint8_t* db, std::size_t nb,
                                 std::size_t code_size, std::int32_t* out, int device, void* stream) {
  using namespace xmhash::cuda;
  if (nq == 0 || nb == 0) return 0;
  DeviceGuard guard(device);
  XMHASH_CUDA_TRY(guard.status());
  const int wb = xmhash::code_word_bytes(code_size, reinterpret_cast<std::uintptr_t>(q),
                                         reinterpret_cast<std::uintptr_t>(db));
  const int nwords = static_cast<int>(code_size) / wb;
  const dim3 grid(static_cast<unsigned>(ceil_div(nb, kThreads)),
                  static_cast<unsigned>(std::min<std::size_t>(ceil_div(nq, kQueriesPerBlock), kMaxGridY)));
  xmhash::dispatch_code_words(code_size, wb, [&](auto tag) {
    using Word = typename decltype(tag)::word;
    cdist_kernel<Word, decltype(tag)::words><<<grid, kThreads, 0, as_stream(stream)>>>(
        reinterpret_cast<const Word*>(q), nq, reinterpret_cast<const Word*>(db), nb, nwords, out);
  });
  return static_cast<int>(cudaGetLastError());
}
