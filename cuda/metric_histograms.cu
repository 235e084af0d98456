// Per-query, per-distance counts of database items and of relevant items: everything mAP (tie-aware), PR by
// radius and precision/recall at cut-offs need, for databases too large to rank on the host. One warp per
// unit (a database chunk of one query, as in select.cu); each warp counts into its own shared-memory rows
// and adds them to the output once.
#include <cuda_runtime.h>

#include <algorithm>

#include "hamming.cuh"
#include "launch_common.cuh"
#include "xmhash/popcount.hpp"
#include "xmhash/topk_select.hpp"
#include "xmhash/types.hpp"

namespace xmhash::cuda {
namespace {

struct Relevance {
  const code_t* q_labels;
  const code_t* db_labels;
  std::size_t label_bytes;
  const std::int64_t* q_class;
  const std::int64_t* db_class;
  __device__ bool operator()(std::size_t qi, std::size_t j) const {
    if (q_labels) return shares_label(q_labels + qi * label_bytes, db_labels + j * label_bytes, label_bytes);
    return q_class[qi] == db_class[j];
  }
};

template <class Word, int kWords>
__global__ void metric_histograms_kernel(const Word* q, const Word* db, int nwords, SelectPlan p,
                                         std::size_t n_units, Relevance rel, bool shared_bins, std::int32_t* n_at,
                                         std::int32_t* r_at) {
  extern __shared__ std::uint32_t smem[];
  const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
  const std::size_t unit = blockIdx.x * static_cast<std::size_t>(blockDim.x / kWarp) + warp;
  if (unit >= n_units) return;
  const std::size_t qi = unit / p.units, u = unit % p.units;
  const std::size_t row = qi * p.nbins;
  // Counts for d live in n[d] / r[d]: shared rows, or the output rows themselves (atomics) for huge codes.
  std::uint32_t* n = shared_bins ? smem + warp * 2 * p.nbins : reinterpret_cast<std::uint32_t*>(n_at + row);
  std::uint32_t* r = shared_bins ? n + p.nbins : reinterpret_cast<std::uint32_t*>(r_at + row);
  if (shared_bins) {
    for (int d = lane; d < 2 * p.nbins; d += kWarp) n[d] = 0;
    __syncwarp();
  }
  const QueryCode<kWords, Word> qc(q + qi * nwords, nwords);
  const std::size_t end = unit_end(p, u);
  for (std::size_t j = unit_begin(p, u) + lane; j < end; j += kWarp) {
    const int d = qc.dist(db + j * nwords);
    atomicAdd(&n[d], 1u);
    if (rel(qi, j)) atomicAdd(&r[d], 1u);
  }
  __syncwarp();
  if (shared_bins) {
    for (int d = lane; d < p.nbins; d += kWarp) {
      if (n[d]) atomicAdd(reinterpret_cast<std::uint32_t*>(n_at + row + d), n[d]);
      if (r[d]) atomicAdd(reinterpret_cast<std::uint32_t*>(r_at + row + d), r[d]);
    }
  }
}

}  // namespace
}  // namespace xmhash::cuda

extern "C" int xmhash_cuda_metric_histograms(const std::uint8_t* q, std::size_t nq, const std::uint8_t* db,
                                             std::size_t nb, std::size_t code_size, const std::uint8_t* q_labels,
                                             const std::uint8_t* db_labels, std::size_t label_bytes,
                                             const std::int64_t* q_class, const std::int64_t* db_class,
                                             std::int32_t* n_at, std::int32_t* r_at, int device, void* stream) {
  using namespace xmhash::cuda;
  if (code_size == 0 || code_size > xmhash::kMaxCodeSize || nb >= (std::size_t{1} << 31)) return cudaErrorInvalidValue;
  if ((q_labels == nullptr || db_labels == nullptr || label_bytes == 0) && (q_class == nullptr || db_class == nullptr))
    return cudaErrorInvalidValue;
  DeviceGuard guard(device);
  XMHASH_CUDA_TRY(guard.status());
  const cudaStream_t s = as_stream(stream);
  const int nbits = static_cast<int>(code_size * 8);
  const std::size_t nbins = static_cast<std::size_t>(nbits) + 1;
  XMHASH_CUDA_TRY(cudaMemsetAsync(n_at, 0, nq * nbins * sizeof(std::int32_t), s));
  XMHASH_CUDA_TRY(cudaMemsetAsync(r_at, 0, nq * nbins * sizeof(std::int32_t), s));
  if (nq == 0 || nb == 0) return 0;
  int sms = 0;
  if (int err = sm_count(device, &sms)) return err;
  const xmhash::SelectPlan p =
      xmhash::make_select_plan(nb, nbits, 0, ceil_div(static_cast<std::size_t>(sms) * kUnitsPerSm, nq),
                               xmhash::min_select_chunk(nbits + 1));
  const std::size_t bin_bytes = 2 * nbins * 4;
  const bool shared_bins = bins_in_shared(bin_bytes);
  const int W = counting_warps_per_block(bin_bytes);
  const std::size_t smem = shared_bins ? W * bin_bytes : 0;
  const std::size_t n_units = nq * p.units;
  const Relevance rel{q_labels, db_labels, q_labels ? label_bytes : 0, q_class, db_class};
  const int wb = xmhash::code_word_bytes(code_size, reinterpret_cast<std::uintptr_t>(q),
                                         reinterpret_cast<std::uintptr_t>(db));
  const int nwords = static_cast<int>(code_size) / wb;
  xmhash::dispatch_code_words(code_size, wb, [&](auto tag) {
    using Word = typename decltype(tag)::word;
    metric_histograms_kernel<Word, decltype(tag)::words>
        <<<static_cast<unsigned>(ceil_div(n_units, W)), W * kWarp, smem, s>>>(
            reinterpret_cast<const Word*>(q), reinterpret_cast<const Word*>(db), nwords, p, n_units, rel,
            shared_bins, n_at, r_at);
  });
  return static_cast<int>(cudaGetLastError());
}
