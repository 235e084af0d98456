// Exact k-NN and radius lookup on the GPU by counting, no sorting: the count / scan / fill steps of
// csrc/include/xmhash/topk_select.hpp, with one warp per unit (a contiguous database chunk of one query).
// Units are sized so that the whole GPU is busy even for a single query, and any k works.
#include <cuda_runtime.h>

#include <algorithm>
#include <climits>

#include "hamming.cuh"
#include "launch_common.cuh"
#include "xmhash/topk_select.hpp"
#include "xmhash/types.hpp"

namespace xmhash::cuda {
namespace {

constexpr std::size_t kCountBudget = std::size_t{256} << 20;  // bytes of per-unit counts per query batch
constexpr int kScanThreads = 256;

// Everything a launch needs, derived only from its arguments and the device, so that the workspace query,
// range_count and range_fill agree on it.
struct BatchPlan {
  SelectPlan p;
  std::size_t batch = 0;     // queries per batch
  int warps_per_block = 0;   // units per block in the count and fill kernels
  bool shared_bins = false;  // per-unit counters in shared memory, else in the global counts array
  std::size_t counts_off = 0, totals_off = 0, kept_off = 0, last_off = 0, bytes = 0;
};

std::size_t align256(std::size_t x) { return (x + 255) / 256 * 256; }

int make_batch_plan(std::size_t nq, std::size_t nb, std::size_t cs, int limit, std::size_t k, int device,
                    BatchPlan* out) {
  if (cs == 0 || cs > kMaxCodeSize || nb >= (std::size_t{1} << 31) || limit < 0) return cudaErrorInvalidValue;
  limit = std::min(limit, static_cast<int>(cs * 8));
  int sms = 0;
  if (int err = sm_count(device, &sms)) return err;
  const std::size_t nbins = static_cast<std::size_t>(limit) + 1;
  std::size_t units = ceil_div(static_cast<std::size_t>(sms) * kUnitsPerSm, std::max<std::size_t>(nq, 1));
  units = std::min(units, std::max<std::size_t>(1, kCountBudget / (nbins * 4) - 1));  // one query fits
  BatchPlan bp;
  bp.p = make_select_plan(nb, limit, k, units, min_select_chunk(limit + 1));
  const std::size_t per_query = nbins * (bp.p.units + 1) * 4 + 8;
  bp.batch = std::max<std::size_t>(1, std::min(nq, kCountBudget / per_query));
  const std::size_t bin_bytes = nbins * 4;
  bp.shared_bins = bins_in_shared(bin_bytes);
  bp.warps_per_block = counting_warps_per_block(bin_bytes);
  bp.counts_off = 0;
  bp.totals_off = align256(bp.counts_off + bp.batch * nbins * bp.p.units * 4);
  bp.kept_off = align256(bp.totals_off + bp.batch * nbins * 4);
  bp.last_off = align256(bp.kept_off + bp.batch * 4);
  bp.bytes = align256(bp.last_off + bp.batch * 4);
  *out = bp;
  return 0;
}

// ---- kernels

// Step 1: each warp counts its unit's items per distance <= limit.
template <class Word, int kWords>
__global__ void count_kernel(const Word* q, const Word* db, int nwords, SelectPlan p, std::size_t n_units,
                             std::uint32_t* counts, bool shared_bins) {
  extern __shared__ std::uint32_t smem[];
  const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
  const std::size_t unit = blockIdx.x * static_cast<std::size_t>(blockDim.x / kWarp) + warp;
  if (unit >= n_units) return;  // whole warps only; no block-wide barrier below
  const std::size_t qi = unit / p.units, u = unit % p.units;
  const Bins h = shared_bins ? Bins{smem + warp * p.nbins, 1} : Bins{counts + count_slot(p, qi, 0, u), p.units};
  if (shared_bins) {
    for (int d = lane; d < p.nbins; d += kWarp) h[d] = 0;
    __syncwarp();
  }
  const QueryCode<kWords, Word> qc(q + qi * nwords, nwords);
  const std::size_t end = unit_end(p, u);
  for (std::size_t j = unit_begin(p, u) + lane; j < end; j += kWarp) {
    const int d = qc.dist(db + j * nwords);
    if (d <= p.limit) atomicAdd(&h[d], 1u);
  }
  __syncwarp();
  if (shared_bins)
    for (int d = lane; d < p.nbins; d += kWarp) counts[count_slot(p, qi, d, u)] = h[d];
}

// Step 2a: exclusive prefix over units of every (query, distance) row, in place; row totals to `totals`.
// kThreads threads per row: a warp for short rows (8 rows per block), the whole block for long ones.
template <int kThreads>
__global__ void scan_units_kernel(std::uint32_t* counts, std::uint32_t* totals, std::size_t rows,
                                  std::size_t units) {
  constexpr int kRowsPerBlock = kScanThreads / kThreads;
  const std::size_t row = blockIdx.x * static_cast<std::size_t>(kRowsPerBlock) + threadIdx.x / kThreads;
  const int t = threadIdx.x % kThreads, lane = threadIdx.x % kWarp;
  std::uint32_t* r = counts + row * units;
  std::uint32_t carry = 0;
  if constexpr (kThreads == kWarp) {
    if (row >= rows) return;  // whole warps
    for (std::size_t b = 0; b < units; b += kWarp) {
      const std::size_t i = b + t;
      const std::uint32_t v = i < units ? r[i] : 0;
      const std::uint32_t inc = warp_inclusive_scan(v);
      if (i < units) r[i] = carry + inc - v;
      carry += __shfl_sync(0xffffffffu, inc, kWarp - 1);
    }
  } else {
    constexpr int kWarps = kThreads / kWarp;
    __shared__ std::uint32_t warp_sums[kWarps];
    const int warp = t / kWarp;
    for (std::size_t b = 0; b < units; b += kThreads) {
      const std::size_t i = b + t;
      const std::uint32_t v = i < units ? r[i] : 0;
      const std::uint32_t inc = warp_inclusive_scan(v);
      if (lane == kWarp - 1) warp_sums[warp] = inc;
      __syncthreads();
      if (warp == 0) {
        const std::uint32_t s = warp_inclusive_scan(lane < kWarps ? warp_sums[lane] : 0u);
        if (lane < kWarps) warp_sums[lane] = s;
      }
      __syncthreads();
      if (i < units) r[i] = carry + (warp > 0 ? warp_sums[warp - 1] : 0u) + inc - v;
      carry += warp_sums[kWarps - 1];
      __syncthreads();
    }
  }
  if (t == 0) totals[row] = carry;
}

// Step 2b, one thread per query: bin starts, results kept, last useful distance; optionally the kept count
// for the CSR offsets.
__global__ void finish_queries_kernel(std::uint32_t* totals, std::size_t nq, int nbins, std::size_t k,
                                      std::uint32_t* kept, int* last, std::int64_t* kept_out) {
  const std::size_t qi = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x;
  if (qi >= nq) return;
  std::uint32_t* st = totals + qi * nbins;
  const std::uint32_t n = bin_starts(st, nbins, k);
  kept[qi] = n;
  last[qi] = last_kept_distance(st, nbins, n);
  if (kept_out) kept_out[qi] = n;
}

// Step 3: each warp walks its unit in index order; the item at distance d goes to position
// start[d] + unit offset[d] + (earlier items of the unit at d), and is written when that position < kept.
// Positions are relative to the query's row: lims[qi] (CSR) or qi * k (dense, lims == nullptr).
template <class Word, int kWords>
__global__ void fill_kernel(const Word* q, const Word* db, int nwords, SelectPlan p, std::size_t n_units,
                            std::uint32_t* counts, const std::uint32_t* starts, const std::uint32_t* kept,
                            const int* last, bool shared_bins, const std::int64_t* lims, std::int32_t* D,
                            std::int64_t* I) {
  extern __shared__ std::uint32_t smem[];
  const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
  const std::size_t unit = blockIdx.x * static_cast<std::size_t>(blockDim.x / kWarp) + warp;
  if (unit >= n_units) return;
  const std::size_t qi = unit / p.units, u = unit % p.units;
  const int last_d = last[qi];
  if (last_d < 0) return;
  const std::uint32_t* st = starts + qi * p.nbins;
  const Bins c = shared_bins ? Bins{smem + warp * p.nbins, 1} : Bins{counts + count_slot(p, qi, 0, u), p.units};
  for (int d = lane; d <= last_d; d += kWarp) c[d] = st[d] + counts[count_slot(p, qi, d, u)];
  __syncwarp();

  const std::uint32_t n_kept = kept[qi];
  const std::size_t base = lims ? static_cast<std::size_t>(lims[qi]) : qi * p.k;
  const QueryCode<kWords, Word> qc(q + qi * nwords, nwords);
  const unsigned below = lanemask_lt();
  const std::size_t end = unit_end(p, u);
  for (std::size_t j0 = unit_begin(p, u); j0 < end; j0 += kWarp) {
    const std::size_t j = j0 + lane;
    const int d = j < end ? qc.dist(db + j * nwords) : INT_MAX;
    const bool keep = d <= last_d;
    const unsigned mask = __ballot_sync(0xffffffffu, keep);
    if (mask == 0) continue;
    unsigned peers = 0;
    std::uint32_t pos = 0;
    if (keep) {
      peers = __match_any_sync(mask, d);  // lanes at the same distance; lower lanes hold lower indices
      pos = c[d] + __popc(peers & below);
    }
    __syncwarp();
    if (keep) {
      if ((peers & below) == 0) c[d] += __popc(peers);
      if (pos < n_kept) {
        D[base + pos] = d;
        I[base + pos] = static_cast<std::int64_t>(j);
      }
    }
    __syncwarp();
  }
}

// k-NN rows shorter than k (k > nb): distance nbits + 1, index -1. kept == nullptr: nothing kept.
__global__ void pad_rows_kernel(const std::uint32_t* kept, std::size_t nq, std::size_t k, int pad_distance,
                                std::int32_t* D, std::int64_t* I) {
  const std::size_t n = nq * k;
  for (std::size_t t = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; t < n;
       t += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    const std::size_t kq = kept ? kept[t / k] : 0;
    if (t % k >= kq) {
      D[t] = pad_distance;
      I[t] = -1;
    }
  }
}

// lims[1..nq] hold per-query counts; turn them into CSR offsets (lims[0] = 0). One block: nq is small next
// to the scans above.
__global__ void lims_scan_kernel(std::int64_t* lims, std::size_t nq) {
  constexpr int kWarps = 1024 / kWarp;
  __shared__ std::int64_t warp_sums[kWarps];
  const int t = threadIdx.x, warp = t / kWarp, lane = t % kWarp;
  std::int64_t carry = 0;
  for (std::size_t b = 0; b < nq; b += 1024) {
    const std::size_t i = b + t;
    const std::int64_t v = i < nq ? lims[i + 1] : 0;
    const std::int64_t inc = warp_inclusive_scan(v);
    if (lane == kWarp - 1) warp_sums[warp] = inc;
    __syncthreads();
    if (warp == 0) {
      const std::int64_t s = warp_inclusive_scan(warp_sums[lane]);
      warp_sums[lane] = s;
    }
    __syncthreads();
    if (i < nq) lims[i + 1] = carry + (warp > 0 ? warp_sums[warp - 1] : 0) + inc;
    carry += warp_sums[kWarps - 1];
    __syncthreads();
  }
  if (t == 0) lims[0] = 0;
}

// ---- launch sequences

enum class Mode { Knn, RangeCount, RangeFill };

struct SelectArgs {
  const std::uint8_t* q;
  std::size_t nq;
  const std::uint8_t* db;
  std::size_t nb, cs;
  std::int64_t* lims;  // range modes
  std::int32_t* D;
  std::int64_t* I;
  char* ws;
  cudaStream_t stream;
};

template <class Word, int kWords>
int run_select(const SelectArgs& a, const BatchPlan& bp, int nwords, Mode mode) {
  const SelectPlan& p = bp.p;
  auto* counts = reinterpret_cast<std::uint32_t*>(a.ws + bp.counts_off);
  auto* totals = reinterpret_cast<std::uint32_t*>(a.ws + bp.totals_off);
  auto* kept = reinterpret_cast<std::uint32_t*>(a.ws + bp.kept_off);
  auto* last = reinterpret_cast<int*>(a.ws + bp.last_off);
  const auto* qw = reinterpret_cast<const Word*>(a.q);
  const auto* dw = reinterpret_cast<const Word*>(a.db);
  const int W = bp.warps_per_block;
  const std::size_t smem = bp.shared_bins ? static_cast<std::size_t>(W) * p.nbins * 4 : 0;
  const bool single_batch = bp.batch >= a.nq;

  for (std::size_t q0 = 0; q0 < a.nq; q0 += bp.batch) {
    const std::size_t nqb = std::min(bp.batch, a.nq - q0);
    const std::size_t n_units = nqb * p.units;
    const auto blocks = static_cast<unsigned>(ceil_div(n_units, W));
    const Word* qb = qw + q0 * nwords;
    // range_fill over a single batch reuses the counts range_count left in the workspace.
    if (!(mode == Mode::RangeFill && single_batch)) {
      if (!bp.shared_bins)
        XMHASH_CUDA_TRY(cudaMemsetAsync(counts, 0, nqb * p.nbins * p.units * 4, a.stream));
      count_kernel<Word, kWords><<<blocks, W * kWarp, smem, a.stream>>>(qb, dw, nwords, p, n_units, counts,
                                                                        bp.shared_bins);
      const std::size_t rows = nqb * p.nbins;
      if (p.units <= static_cast<std::size_t>(kScanThreads))
        scan_units_kernel<kWarp><<<static_cast<unsigned>(ceil_div(rows, kScanThreads / kWarp)), kScanThreads, 0,
                                   a.stream>>>(counts, totals, rows, p.units);
      else
        scan_units_kernel<kScanThreads><<<static_cast<unsigned>(rows), kScanThreads, 0, a.stream>>>(counts, totals,
                                                                                                   rows, p.units);
      finish_queries_kernel<<<static_cast<unsigned>(ceil_div(nqb, 256)), 256, 0, a.stream>>>(
          totals, nqb, p.nbins, p.k, kept, last, mode == Mode::RangeCount ? a.lims + q0 + 1 : nullptr);
    }
    if (mode == Mode::RangeCount) continue;
    const bool dense = mode == Mode::Knn;
    if (dense && p.k > a.nb)
      pad_rows_kernel<<<static_cast<unsigned>(std::min<std::size_t>(ceil_div(nqb * p.k, 256), 65535)), 256, 0,
                        a.stream>>>(kept, nqb, p.k, static_cast<int>(a.cs * 8) + 1, a.D + q0 * p.k,
                                    a.I + q0 * p.k);
    fill_kernel<Word, kWords><<<blocks, W * kWarp, smem, a.stream>>>(
        qb, dw, nwords, p, n_units, counts, totals, kept, last, bp.shared_bins, dense ? nullptr : a.lims + q0,
        dense ? a.D + q0 * p.k : a.D, dense ? a.I + q0 * p.k : a.I);
  }
  if (mode == Mode::RangeCount)
    lims_scan_kernel<<<1, 1024, 0, a.stream>>>(a.lims, a.nq);
  return static_cast<int>(cudaGetLastError());
}

int select(const SelectArgs& a, int limit, std::size_t k, std::size_t ws_bytes, int device, Mode mode) {
  DeviceGuard guard(device);
  XMHASH_CUDA_TRY(guard.status());
  BatchPlan bp;
  if (int err = make_batch_plan(a.nq, a.nb, a.cs, limit, k, device, &bp)) return err;
  if (mode == Mode::RangeCount && (a.nq == 0 || a.nb == 0)) {
    XMHASH_CUDA_TRY(cudaMemsetAsync(a.lims, 0, (a.nq + 1) * sizeof(std::int64_t), a.stream));
    return 0;
  }
  if (a.nq == 0 || (mode == Mode::RangeFill && a.nb == 0)) return 0;
  if (mode == Mode::Knn && a.nb == 0) {
    pad_rows_kernel<<<static_cast<unsigned>(std::min<std::size_t>(ceil_div(a.nq * k, 256), 65535)), 256, 0,
                      a.stream>>>(nullptr, a.nq, k, static_cast<int>(a.cs * 8) + 1, a.D, a.I);
    return static_cast<int>(cudaGetLastError());
  }
  if (ws_bytes < bp.bytes || a.ws == nullptr) return cudaErrorInvalidValue;
  const int wb = code_word_bytes(a.cs, reinterpret_cast<std::uintptr_t>(a.q), reinterpret_cast<std::uintptr_t>(a.db));
  const int nwords = static_cast<int>(a.cs) / wb;
  return dispatch_code_words(a.cs, wb, [&](auto tag) {
    return run_select<typename decltype(tag)::word, decltype(tag)::words>(a, bp, nwords, mode);
  });
}

}  // namespace
}  // namespace xmhash::cuda

using xmhash::cuda::Mode;
using xmhash::cuda::SelectArgs;

extern "C" int xmhash_cuda_select_workspace(std::size_t nq, std::size_t nb, std::size_t code_size, int limit,
                                            std::size_t k, int device, std::size_t* bytes) {
  xmhash::cuda::BatchPlan bp;
  if (int err = xmhash::cuda::make_batch_plan(nq, nb, code_size, limit, k, device, &bp)) return err;
  *bytes = bp.bytes;
  return 0;
}

extern "C" int xmhash_cuda_knn(const std::uint8_t* q, std::size_t nq, const std::uint8_t* db, std::size_t nb,
                               std::size_t code_size, std::size_t k, std::int32_t* D, std::int64_t* I,
                               void* workspace, std::size_t workspace_bytes, int device, void* stream) {
  if (k == 0) return cudaErrorInvalidValue;
  const SelectArgs a{q, nq, db, nb, code_size, nullptr, D, I, static_cast<char*>(workspace),
                     xmhash::cuda::as_stream(stream)};
  return xmhash::cuda::select(a, static_cast<int>(code_size * 8), k, workspace_bytes, device, Mode::Knn);
}

extern "C" int xmhash_cuda_range_count(const std::uint8_t* q, std::size_t nq, const std::uint8_t* db, std::size_t nb,
                                       std::size_t code_size, int limit, std::size_t k, std::int64_t* lims,
                                       void* workspace, std::size_t workspace_bytes, int device, void* stream) {
  const SelectArgs a{q, nq, db, nb, code_size, lims, nullptr, nullptr, static_cast<char*>(workspace),
                     xmhash::cuda::as_stream(stream)};
  return xmhash::cuda::select(a, limit, k, workspace_bytes, device, Mode::RangeCount);
}

extern "C" int xmhash_cuda_range_fill(const std::uint8_t* q, std::size_t nq, const std::uint8_t* db, std::size_t nb,
                                      std::size_t code_size, int limit, std::size_t k, const std::int64_t* lims,
                                      std::int32_t* distances, std::int64_t* indices, void* workspace,
                                      std::size_t workspace_bytes, int device, void* stream) {
  const SelectArgs a{q, nq, db, nb, code_size, const_cast<std::int64_t*>(lims), distances, indices,
                     static_cast<char*>(workspace), xmhash::cuda::as_stream(stream)};
  return xmhash::cuda::select(a, limit, k, workspace_bytes, device, Mode::RangeFill);
}
