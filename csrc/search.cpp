#include "xmhash/search.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <memory>
#include <string>

#include "xmhash/isa.hpp"
#include "xmhash/parallel.hpp"
#include "xmhash/topk.hpp"

namespace xmhash {

void check_code_size(std::size_t code_size) {
  if (code_size == 0 || code_size > kMaxCodeSize)
    invalid("code width must be 1.." + std::to_string(kMaxCodeSize) + " bytes (8.." +
            std::to_string(kMaxCodeSize * 8) + " bits), got " + std::to_string(code_size) + " bytes");
}

void check_k(std::size_t k) {
  if (k == 0) invalid("k must be >= 1, got 0");
}

namespace {

std::size_t ceil_div(std::size_t a, std::size_t b) { return (a + b - 1) / b; }

// Queries per task at most: one kernel call sweeps a database tile with all of them (kQueryBlock at a time) while
// the tile sits in L2, so the database streams from memory once per task.
constexpr std::size_t kMaxTaskQueries = 64;

// How the (queries x database) work is cut: tasks of `task_queries` queries, and for small batches also database
// chunks (a single query then still uses every thread; chunk results are merged in index order).
struct Plan {
  std::size_t task_queries, n_qtasks, n_chunks, chunk, tile;
};

Plan make_plan(std::size_t nq, std::size_t nb, std::size_t code_size, int threads) {
  Plan p;
  p.tile = tile_codes(code_size);
  const std::size_t t = static_cast<std::size_t>(threads > 0 ? threads : 1);
  const std::size_t blocks = ceil_div(nq, kQueryBlock);
  // Widest tasks that still leave about 4 per thread for load balance.
  const std::size_t per = std::max<std::size_t>(1, std::min(kMaxTaskQueries / kQueryBlock, blocks / (4 * t)));
  p.task_queries = per * kQueryBlock;
  p.n_qtasks = ceil_div(nq, p.task_queries);
  std::size_t want = 1;
  if (t > 1 && p.n_qtasks < 4 * t) want = ceil_div(4 * t, p.n_qtasks);
  const std::size_t max_chunks = std::max<std::size_t>(1, nb / (4 * p.tile));  // keep chunks worth a task
  p.n_chunks = std::min(want, max_chunks);
  p.chunk = ceil_div(ceil_div(nb, p.n_chunks), p.tile) * p.tile;
  p.n_chunks = std::max<std::size_t>(1, ceil_div(nb, p.chunk));
  return p;
}

// Size of the first tile of a k-NN scan. Until a query holds k candidates its threshold is its limit, so every
// code of the first tile may be a hit; tiles then double, so the threshold tightens before the tiles are large.
std::size_t first_tile(std::size_t k, std::size_t tile) {
  if (k == 0) return tile;
  return std::min(tile, std::max<std::size_t>(64, ceil_div(2 * k, 64) * 64));
}

// Hit buffers of one worker: a row of `tile` slots per query (the row stride `ld` is padded off multiples of 4 KiB,
// so rows do not all map to the same cache sets), plus the guess's distance rows. Allocated once per worker and
// call, uninitialised: only rows with hits are touched.
struct ScanBuffers {
  std::size_t tile, ld;
  std::unique_ptr<std::uint32_t[]> idx;
  std::unique_ptr<std::uint16_t[]> dist;
  std::unique_ptr<dist_t[]> sample;
  std::vector<std::uint32_t> count;
  std::vector<int> thresh;
  ScanBuffers(std::size_t nq, std::size_t tile_, std::size_t sample_codes)
      : tile(tile_),
        ld(tile_ + 40),
        idx(new std::uint32_t[nq * ld]),
        dist(new std::uint16_t[nq * ld]),
        sample(new dist_t[nq * sample_codes]),
        count(nq),
        thresh(nq) {}
};

// Streams database codes [c0, c1) past nq queries, tile by tile, each query's threshold taken from its TopK.
// `shared` (optional, one per query): a distance bound shared by the chunks of the same queries scanned on other
// threads, lowered to this chunk's k-th distance whenever that is lower.
void scan_range(const Kernels& kern, const code_t* q, int nq, const code_t* db, std::size_t c0, std::size_t c1,
                std::size_t cs, std::size_t first, TopK* top, ScanBuffers& buf, std::atomic<int>* shared = nullptr) {
  const std::size_t tile = buf.tile;
  std::size_t size = first;
  for (std::size_t b0 = c0; b0 < c1; b0 += size, size = std::min(tile, 2 * size)) {
    const std::size_t n = std::min(size, c1 - b0);
    bool any = false;
    for (int i = 0; i < nq; ++i) {
      buf.thresh[i] = top[i].threshold();
      if (shared) buf.thresh[i] = std::min(buf.thresh[i], shared[i].load(std::memory_order_relaxed));
      any |= buf.thresh[i] >= 0;
    }
    if (!any) return;  // every query already holds k exact matches at distance 0
    kern.scan_block(q, nq, db + b0 * cs, n, cs, buf.thresh.data(), buf.idx.get(), buf.dist.get(), buf.count.data(),
                    buf.ld);
    for (int i = 0; i < nq; ++i) {
      if (buf.count[i] == 0) continue;
      top[i].push_hits(buf.dist.get() + i * buf.ld, buf.idx.get() + i * buf.ld, buf.count[i], static_cast<idx_t>(b0));
      top[i].update();
      if (shared) {  // atomic minimum
        const int kth = top[i].kth();
        int cur = shared[i].load(std::memory_order_relaxed);
        while (kth < cur && !shared[i].compare_exchange_weak(cur, kth, std::memory_order_relaxed)) {
        }
      }
    }
  }
}

constexpr std::size_t kGuessSub = 1024;  // codes of the guess's first stage (all distances)

// k-NN thresholds guessed from a sample (the database's first codes): per query, the smallest distance within
// which the sample predicts at least 3k of the `len` codes. Streaming without a guess lets through about
// k * ln(len / k) candidates, most of them while the threshold is still loose; with it, a few k. A guess costs
// time, never exactness: the caller rescans any query that ends with fewer than k candidates within its guess.
// Returns `limit` for every query when the database is too small for a sample to say anything.
std::vector<int> guess_thresholds(const Kernels& kern, const code_t* q, int nq, const code_t* db, std::size_t len,
                                  std::size_t cs, std::size_t k, int limit, ScanBuffers& buf) {
  std::vector<int> guess(nq, limit);
  const std::size_t tile = buf.tile, sub = kGuessSub, sample = std::min(len / 8, 2 * tile);
  if (len < 4 * tile || sample < 4 * sub || 3 * k > len / 4) return guess;
  // Sample hits expected within the guess: 3k scaled to the sample, plus two standard deviations (Poisson).
  const double mean = 3.0 * static_cast<double>(k) * static_cast<double>(sample) / static_cast<double>(len);
  if (mean < 2) return guess;  // small k: streaming lets few candidates through anyway
  const double want = mean + 2 * std::sqrt(mean);
  // Stage 1: all distances to the first `sub` codes; a low quantile of them (expected to hold about four times
  // the sample hits wanted) bounds the part of the sample's distance distribution that stage 2 needs, so stage 2
  // gets a few hundred hits per query, not `sample`.
  const std::size_t rank =
      std::min(sub, std::max<std::size_t>(4, static_cast<std::size_t>(std::ceil(4.0 * want * sub / sample))));
  dist_t* d = buf.sample.get();
  kern.cdist_block(q, nq, db, sub, cs, d, sub);
  std::vector<int> bound(nq);
  std::vector<std::uint32_t> count(cs * 8 + 1, 0);  // distance histogram of one row (cleared after use)
  int top_bound = 0;
  for (int i = 0; i < nq; ++i) {
    const dist_t* row = d + i * sub;
    for (std::size_t j = 0; j < sub; ++j) ++count[row[j]];
    std::size_t cum = 0;
    int t = 0;
    while ((cum += count[t]) < rank) ++t;  // the rank-th smallest distance
    for (std::size_t j = 0; j < sub; ++j) count[row[j]] = 0;
    bound[i] = std::min(t, limit);
    top_bound = std::max(top_bound, bound[i]);
  }
  // Stage 2: the distance histogram of the sample below each bound.
  const std::size_t width = static_cast<std::size_t>(top_bound) + 1;
  std::vector<std::uint32_t> hist(nq * width, 0);
  for (std::size_t b0 = 0; b0 < sample; b0 += tile) {
    const std::size_t n = std::min(tile, sample - b0);
    kern.scan_block(q, nq, db + b0 * cs, n, cs, bound.data(), buf.idx.get(), buf.dist.get(), buf.count.data(),
                    buf.ld);
    for (int i = 0; i < nq; ++i) {
      const std::uint16_t* hd = buf.dist.get() + i * buf.ld;
      std::uint32_t* h = hist.data() + i * width;
      for (std::uint32_t j = 0; j < buf.count[i]; ++j) ++h[hd[j]];
    }
  }
  for (int i = 0; i < nq; ++i) {
    double cum = 0;
    for (int t = 0; t <= bound[i]; ++t) {
      cum += hist[i * width + t];
      if (cum >= want) {
        guess[i] = t;
        break;
      }
    }
  }
  return guess;
}

}  // namespace

void cdist(const code_t* q, std::size_t nq, const code_t* db, std::size_t nb, std::size_t cs, dist_t* out,
           int threads) {
  check_code_size(cs);
  if (nq == 0 || nb == 0) return;
  threads = resolve_threads(threads);
  const Kernels& kern = active_kernels();
  const Plan plan = make_plan(nq, nb, cs, threads);
  parallel_for(plan.n_qtasks * plan.n_chunks, threads, [&](std::size_t task, int) {
    const std::size_t qt = task / plan.n_chunks, c = task % plan.n_chunks;
    const std::size_t q0 = qt * plan.task_queries;
    const int nqt = static_cast<int>(std::min(plan.task_queries, nq - q0));
    const std::size_t b_end = std::min(nb, (c + 1) * plan.chunk);
    for (std::size_t b0 = c * plan.chunk; b0 < b_end; b0 += plan.tile) {
      const std::size_t n = std::min(plan.tile, b_end - b0);
      kern.cdist_block(q + q0 * cs, nqt, db + b0 * cs, n, cs, out + q0 * nb + b0, nb);
    }
  });
}

QueryLists scan_select(const code_t* q, std::size_t nq, const code_t* db, std::size_t nb, std::size_t cs,
                       std::size_t k, int max_radius, int threads) {
  check_code_size(cs);
  const int nbits = static_cast<int>(cs * 8);
  max_radius = std::min(max_radius, nbits);
  QueryLists out;
  out.dist.resize(nq);
  out.idx.resize(nq);
  if (nq == 0 || nb == 0 || max_radius < 0) return out;
  threads = resolve_threads(threads);
  const Kernels& kern = active_kernels();
  const Plan plan = make_plan(nq, nb, cs, threads);
  const std::size_t tile = plan.tile;

  std::vector<std::unique_ptr<ScanBuffers>> buffers(static_cast<std::size_t>(threads));
  auto buffers_of = [&](int worker) -> ScanBuffers& {
    if (!buffers[worker]) buffers[worker].reset(new ScanBuffers(plan.task_queries, tile, k > 0 ? kGuessSub : 0));
    return *buffers[worker];
  };

  // k-NN: a threshold guess per query, from a sample at the start of the database.
  std::vector<int> guess(nq, max_radius);
  if (k > 0) {
    parallel_for(plan.n_qtasks, threads, [&](std::size_t qt, int worker) {
      const std::size_t q0 = qt * plan.task_queries;
      const int nqt = static_cast<int>(std::min(plan.task_queries, nq - q0));
      const std::vector<int> g = guess_thresholds(kern, q + q0 * cs, nqt, db, nb, cs, k, max_radius, buffers_of(worker));
      std::copy(g.begin(), g.end(), guess.begin() + q0);
    });
  }

  // The scan: tasks of (query block, database chunk). The chunks of a query share a distance bound, so each chunk
  // stops collecting what another chunk has already beaten. partial[q * n_chunks + chunk]: the sorted result of
  // one query over one chunk.
  const bool merge = plan.n_chunks > 1;
  QueryLists partial;
  std::unique_ptr<std::atomic<int>[]> shared;
  if (merge) {
    partial.dist.resize(nq * plan.n_chunks);
    partial.idx.resize(nq * plan.n_chunks);
    shared.reset(new std::atomic<int>[nq]);
    for (std::size_t i = 0; i < nq; ++i) shared[i].store(guess[i], std::memory_order_relaxed);
  }
  parallel_for(plan.n_qtasks * plan.n_chunks, threads, [&](std::size_t task, int worker) {
    const std::size_t qt = task / plan.n_chunks, c = task % plan.n_chunks;
    const std::size_t q0 = qt * plan.task_queries;
    const int nqt = static_cast<int>(std::min(plan.task_queries, nq - q0));
    const std::size_t c0 = c * plan.chunk, c1 = std::min(nb, c0 + plan.chunk);
    bool guessed = false;
    std::vector<TopK> top;
    top.reserve(nqt);
    for (int i = 0; i < nqt; ++i) {
      top.emplace_back(k, guess[q0 + i], nbits);
      guessed |= guess[q0 + i] < max_radius;
    }
    scan_range(kern, q + q0 * cs, nqt, db, c0, c1, cs, guessed ? tile : first_tile(k, tile), top.data(),
               buffers_of(worker), merge ? shared.get() + q0 : nullptr);
    for (int i = 0; i < nqt; ++i) {
      const std::size_t slot = merge ? (q0 + i) * plan.n_chunks + c : q0 + i;
      QueryLists& dst = merge ? partial : out;
      top[i].finish(dst.dist[slot], dst.idx[slot]);
    }
  });

  // Chunks hold increasing index ranges, so feeding their sorted lists in chunk order to a fresh TopK keeps
  // (distance, index) order.
  if (merge) {
    parallel_for(nq, threads, [&](std::size_t qi, int) {
      TopK top(k, max_radius, nbits);
      for (std::size_t c = 0; c < plan.n_chunks; ++c) {
        const auto& d = partial.dist[qi * plan.n_chunks + c];
        const auto& ix = partial.idx[qi * plan.n_chunks + c];
        for (std::size_t j = 0; j < d.size(); ++j) top.push(d[j], ix[j]);
      }
      top.finish(out.dist[qi], out.idx[qi]);
    });
  }

  // A guess that let fewer than k candidates through was too tight: scan those queries again, without it.
  std::vector<std::size_t> again;
  for (std::size_t i = 0; i < nq; ++i)
    if (guess[i] < max_radius && out.dist[i].size() < k) again.push_back(i);
  const std::size_t per = plan.task_queries;
  parallel_for(ceil_div(again.size(), per), threads, [&](std::size_t t, int worker) {
    const std::size_t r0 = t * per, n = std::min(per, again.size() - r0);
    std::vector<code_t> codes(n * cs);
    std::vector<TopK> top;
    for (std::size_t r = 0; r < n; ++r) {
      std::copy_n(q + again[r0 + r] * cs, cs, codes.begin() + r * cs);
      top.emplace_back(k, max_radius, nbits);
    }
    scan_range(kern, codes.data(), static_cast<int>(n), db, 0, nb, cs, first_tile(k, tile), top.data(),
               buffers_of(worker));
    for (std::size_t r = 0; r < n; ++r) top[r].finish(out.dist[again[r0 + r]], out.idx[again[r0 + r]]);
  });
  return out;
}

void knn(const code_t* q, std::size_t nq, const code_t* db, std::size_t nb, std::size_t cs, std::size_t k,
         dist_t* D, idx_t* I, int threads) {
  check_k(k);
  const int nbits = static_cast<int>(cs * 8);
  QueryLists lists = scan_select(q, nq, db, nb, cs, k, nbits, threads);
  for (std::size_t i = 0; i < nq; ++i)
    write_knn_row(k, nbits, lists.dist[i].size(), lists.dist[i].data(), lists.idx[i].data(), D + i * k, I + i * k);
}

RangeResultData to_csr(QueryLists&& lists) {
  RangeResultData r;
  const std::size_t nq = lists.dist.size();
  r.lims.resize(nq + 1, 0);
  for (std::size_t i = 0; i < nq; ++i) r.lims[i + 1] = r.lims[i] + static_cast<idx_t>(lists.dist[i].size());
  r.distances.resize(static_cast<std::size_t>(r.lims[nq]));
  r.indices.resize(static_cast<std::size_t>(r.lims[nq]));
  for (std::size_t i = 0; i < nq; ++i) {
    std::copy(lists.dist[i].begin(), lists.dist[i].end(), r.distances.begin() + r.lims[i]);
    std::copy(lists.idx[i].begin(), lists.idx[i].end(), r.indices.begin() + r.lims[i]);
    std::vector<std::uint16_t>().swap(lists.dist[i]);
    std::vector<idx_t>().swap(lists.idx[i]);
  }
  return r;
}

RangeResultData range_search(const code_t* q, std::size_t nq, const code_t* db, std::size_t nb, std::size_t cs,
                             int radius, int threads, std::size_t k) {
  if (radius < 0) invalid("radius must be >= 0, got " + std::to_string(radius));
  return to_csr(scan_select(q, nq, db, nb, cs, k, radius, threads));
}

}  // namespace xmhash
