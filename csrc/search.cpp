#include "xmhash/search.hpp"

#include <algorithm>
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

namespace {

std::size_t ceil_div(std::size_t a, std::size_t b) { return (a + b - 1) / b; }

// How the (queries × database) work is cut: query blocks, and for small batches also database chunks
// (a single query then still uses every thread; chunk results are merged in index order).
struct Plan {
  std::size_t n_qblocks, n_chunks, chunk;  // chunk: database codes per chunk, a multiple of the tile
};

Plan make_plan(std::size_t nq, std::size_t nb, std::size_t code_size, int threads) {
  Plan p;
  p.n_qblocks = ceil_div(nq, kQueryBlock);
  const std::size_t tile = tile_codes(code_size);
  std::size_t want = 1;
  if (threads > 1 && p.n_qblocks < 4 * static_cast<std::size_t>(threads))
    want = ceil_div(4 * static_cast<std::size_t>(threads), p.n_qblocks);
  std::size_t max_chunks = std::max<std::size_t>(1, nb / (4 * tile));  // keep chunks worth a task
  p.n_chunks = std::min(want, max_chunks);
  p.chunk = ceil_div(ceil_div(nb, p.n_chunks), tile) * tile;
  p.n_chunks = std::max<std::size_t>(1, ceil_div(nb, p.chunk));
  return p;
}

}  // namespace

void cdist(const code_t* q, std::size_t nq, const code_t* db, std::size_t nb, std::size_t cs, dist_t* out,
           int threads) {
  check_code_size(cs);
  if (nq == 0 || nb == 0) return;
  threads = resolve_threads(threads);
  const Kernels& kern = active_kernels();
  const Plan plan = make_plan(nq, nb, cs, threads);
  const std::size_t tile = tile_codes(cs);
  parallel_for(plan.n_qblocks * plan.n_chunks, threads, [&](std::size_t task, int) {
    const std::size_t qb = task / plan.n_chunks, c = task % plan.n_chunks;
    const std::size_t q0 = qb * kQueryBlock;
    const int nqb = static_cast<int>(std::min<std::size_t>(kQueryBlock, nq - q0));
    const std::size_t b_end = std::min(nb, (c + 1) * plan.chunk);
    for (std::size_t b0 = c * plan.chunk; b0 < b_end; b0 += tile) {
      const std::size_t n = std::min(tile, b_end - b0);
      kern.cdist_block(q + q0 * cs, nqb, db + b0 * cs, n, cs, out + q0 * nb + b0, nb);
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
  const std::size_t tile = tile_codes(cs);

  // partial[(q * n_chunks) + chunk]: sorted result of one query over one chunk.
  QueryLists partial;
  const bool merge = plan.n_chunks > 1;
  if (merge) {
    partial.dist.resize(nq * plan.n_chunks);
    partial.idx.resize(nq * plan.n_chunks);
  }
  parallel_for(plan.n_qblocks * plan.n_chunks, threads, [&](std::size_t task, int) {
    const std::size_t qb = task / plan.n_chunks, c = task % plan.n_chunks;
    const std::size_t q0 = qb * kQueryBlock;
    const int nqb = static_cast<int>(std::min<std::size_t>(kQueryBlock, nq - q0));
    std::vector<TopK> top;
    top.reserve(nqb);
    for (int i = 0; i < nqb; ++i) top.emplace_back(k, max_radius, nbits);
    std::vector<std::uint32_t> idx_buf(kQueryBlock * tile);
    std::vector<std::uint16_t> dist_buf(kQueryBlock * tile);
    std::uint32_t count[kQueryBlock];
    int thresh[kQueryBlock];
    const std::size_t b_end = std::min(nb, (c + 1) * plan.chunk);
    for (std::size_t b0 = c * plan.chunk; b0 < b_end; b0 += tile) {
      const std::size_t n = std::min(tile, b_end - b0);
      bool any = false;
      for (int i = 0; i < nqb; ++i) {
        thresh[i] = top[i].threshold();
        any |= thresh[i] >= 0;
      }
      if (!any) break;  // every query already holds k exact matches at distance 0
      kern.scan_block(q + q0 * cs, nqb, db + b0 * cs, n, cs, thresh, idx_buf.data(), dist_buf.data(), count, tile);
      for (int i = 0; i < nqb; ++i) {
        const std::uint32_t* ib = idx_buf.data() + i * tile;
        const std::uint16_t* dbuf = dist_buf.data() + i * tile;
        for (std::uint32_t j = 0; j < count[i]; ++j) top[i].push(dbuf[j], static_cast<idx_t>(b0 + ib[j]));
        top[i].update();
      }
    }
    for (int i = 0; i < nqb; ++i) {
      const std::size_t slot = merge ? (q0 + i) * plan.n_chunks + c : q0 + i;
      QueryLists& dst = merge ? partial : out;
      top[i].finish(dst.dist[slot], dst.idx[slot]);
    }
  });
  if (!merge) return out;

  // Chunks hold increasing index ranges, so feeding their sorted lists in chunk order to a fresh TopK keeps
  // (distance, index) order.
  parallel_for(nq, threads, [&](std::size_t qi, int) {
    TopK top(k, max_radius, nbits);
    for (std::size_t c = 0; c < plan.n_chunks; ++c) {
      const auto& d = partial.dist[qi * plan.n_chunks + c];
      const auto& ix = partial.idx[qi * plan.n_chunks + c];
      for (std::size_t j = 0; j < d.size(); ++j) top.push(d[j], ix[j]);
    }
    top.finish(out.dist[qi], out.idx[qi]);
  });
  return out;
}

void knn(const code_t* q, std::size_t nq, const code_t* db, std::size_t nb, std::size_t cs, std::size_t k,
         dist_t* D, idx_t* I, int threads) {
  if (k == 0) invalid("k must be >= 1, got 0");
  const int nbits = static_cast<int>(cs * 8);
  QueryLists lists = scan_select(q, nq, db, nb, cs, k, nbits, threads);
  for (std::size_t i = 0; i < nq; ++i) {
    const auto& d = lists.dist[i];
    const auto& ix = lists.idx[i];
    for (std::size_t j = 0; j < k; ++j) {
      D[i * k + j] = j < d.size() ? d[j] : nbits + 1;
      I[i * k + j] = j < d.size() ? ix[j] : -1;
    }
  }
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
