#include "xmhash/metrics.hpp"

#include <algorithm>
#include <functional>
#include <limits>
#include <memory>
#include <numeric>
#include <string>

#include "xmhash/ap_math.hpp"
#include "xmhash/isa.hpp"
#include "xmhash/metrics_scan.hpp"
#include "xmhash/parallel.hpp"
#include "xmhash/popcount.hpp"
#include "xmhash/search.hpp"

namespace xmhash {
namespace {

// What one query's ranking reduces to (see ap_math.hpp).
struct Ranking {
  const std::uint32_t* n_at;
  const std::uint32_t* r_at;
  int nbins;                      // nbits + 1
  const std::uint32_t* rel_rank;  // only when ranks were requested
  std::uint64_t n_rel;
  double ap;                      // AP@k by index, only when requested
};

// Label rows padded to whole 8-byte words, so shares_label() reads words only (one AND for <= 64 labels).
struct PaddedLabels {
  std::vector<code_t> q, db;
  std::size_t width = 0;
};

PaddedLabels pad_labels(const RetrievalSet& set) {
  PaddedLabels p;
  const std::size_t lb = set.labels.label_bytes;
  p.width = (lb + 7) / 8 * 8;
  auto pad = [&](const code_t* src, std::size_t n, std::vector<code_t>& dst) {
    dst.assign(n * p.width, 0);
    for (std::size_t i = 0; i < n; ++i) std::copy(src + i * lb, src + (i + 1) * lb, dst.data() + i * p.width);
  };
  pad(set.labels.q_bits, set.nq, p.q);
  pad(set.labels.db_bits, set.nb, p.db);
  return p;
}

// Relevance of database item j to query i of a block (rows from the block's first query), per label form.
struct ClassRelevance {
  const std::int64_t* db;
  const std::int64_t* q;
  bool operator()(int i, std::size_t j) const { return db[j] == q[i]; }
};
template <std::size_t Width>  // Width == 0: run-time width
struct BitsRelevance {
  const code_t* db;
  const code_t* q;
  std::size_t width;
  bool operator()(int i, std::size_t j) const {
    const std::size_t w = Width ? Width : width;
    return shares_label(q + static_cast<std::size_t>(i) * w, db + j * w, w);
  }
};

// Reduces query i's row of one cdist tile (dist[j] = distance to item b0 + j) into its counts:
//   counts only:  ++counts[2d + relevant]  (one table: one store per item instead of two)
//   with ranks:   counts[d] = items seen at distance d; each item is appended to `found` as
//                 (d << 32) | its position within distance d (the count before it, since items arrive in
//                 index order), branch-free: every item is written, only a relevant one advances the end.
template <bool Ranks, class Rel>
void reduce_row(const dist_t* dist, std::size_t n, std::size_t b0, int i, const Rel& rel, std::uint32_t* counts,
                std::uint64_t* found, std::uint64_t& n_rel) {
  if (Ranks) {
    std::uint64_t end = n_rel;
    for (std::size_t j = 0; j < n; ++j) {
      const dist_t d = dist[j];
      found[end] = (static_cast<std::uint64_t>(d) << 32) | counts[d]++;
      end += rel(i, b0 + j);
    }
    n_rel = end;
  } else {
    for (std::size_t j = 0; j < n; ++j) ++counts[2 * dist[j] + rel(i, b0 + j)];
  }
}

// Per-worker buffers, reused across the query blocks the worker takes.
struct Scratch {
  std::vector<dist_t> dist;              // kQueryBlock x tile: one cdist_block
  std::vector<std::uint32_t> counts;     // kQueryBlock x 2 nbins: [2d + relevant] (counts only) or [d] (ranks)
  // Per query: the relevant items in index order as (d << 32) | position, grown with the relevant count.
  std::vector<std::uint64_t> found[kQueryBlock];
  std::vector<std::uint64_t> n_rel;      // kQueryBlock
  std::vector<std::uint32_t> n_at, r_at, offset, n_before;  // nbins: one query's summary and counting sort
  std::vector<std::uint32_t> ranks;      // one query's relevant items' ranks, ascending
};

using Consumer = std::function<void(std::size_t task, std::size_t query, const Ranking&)>;

// Fixed query partition (independent of the thread count, so per-task partial sums reduce identically).
constexpr std::size_t kMaxTasks = 256;

struct Partition {
  std::size_t n_tasks, blocks_per_task;
};

Partition partition(std::size_t nq) {
  const std::size_t n_blocks = (nq + kQueryBlock - 1) / kQueryBlock;
  const std::size_t per = (n_blocks + kMaxTasks - 1) / kMaxTasks;
  return {(n_blocks + per - 1) / per, per};
}

template <class MakeRel>
void rank_queries(const RetrievalSet& set, const RankRequest& req, int threads, MakeRel make_rel,
                  const Consumer& consume) {
  const bool want_ranks = req.by_index();
  const std::size_t cs = set.code_size, nb = set.nb, nq = set.nq;
  const int nbins = static_cast<int>(cs * 8) + 1;
  const std::size_t tile = tile_codes(cs);
  const Kernels& kern = active_kernels();
  threads = resolve_threads(threads);
  const Partition part = partition(nq);
  std::vector<std::unique_ptr<Scratch>> scratch(static_cast<std::size_t>(threads));

  parallel_for(part.n_tasks, threads, [&](std::size_t task, int worker) {
    auto& sp = scratch[static_cast<std::size_t>(worker)];
    if (!sp) {
      sp = std::make_unique<Scratch>();
      sp->dist.resize(kQueryBlock * tile);
      sp->counts.resize(kQueryBlock * 2 * nbins);
      sp->n_rel.resize(kQueryBlock);
      for (auto* v : {&sp->n_at, &sp->r_at, &sp->offset, &sp->n_before}) v->resize(nbins);
    }
    Scratch& s = *sp;
    const std::size_t q_begin = task * part.blocks_per_task * kQueryBlock;
    const std::size_t q_end = std::min(nq, q_begin + part.blocks_per_task * kQueryBlock);
    for (std::size_t q0 = q_begin; q0 < q_end; q0 += kQueryBlock) {
      const int nqb = static_cast<int>(std::min<std::size_t>(kQueryBlock, q_end - q0));
      std::fill(s.counts.begin(), s.counts.end(), 0u);
      std::fill(s.n_rel.begin(), s.n_rel.end(), 0u);
      for (std::size_t b0 = 0; b0 < nb; b0 += tile) {
        const std::size_t n = std::min(tile, nb - b0);
        kern.cdist_block(set.q + q0 * cs, nqb, set.db + b0 * cs, n, cs, s.dist.data(), tile);
        const auto rel = make_rel(q0);
        for (int i = 0; i < nqb; ++i) {
          const dist_t* row = s.dist.data() + static_cast<std::size_t>(i) * tile;
          std::uint32_t* cnt = s.counts.data() + static_cast<std::size_t>(i) * 2 * nbins;
          if (want_ranks) {
            std::vector<std::uint64_t>& found = s.found[i];
            const std::size_t need = s.n_rel[i] + n;  // the branch-free append may write one past the end
            if (found.size() < need) found.resize(std::min(nb, std::max(need, 2 * found.size())));
            reduce_row<true>(row, n, b0, i, rel, cnt, found.data(), s.n_rel[i]);
          } else {
            reduce_row<false>(row, n, b0, i, rel, cnt, nullptr, s.n_rel[i]);
          }
        }
      }
      for (int i = 0; i < nqb; ++i) {
        const std::uint32_t* cnt = s.counts.data() + static_cast<std::size_t>(i) * 2 * nbins;
        const std::uint64_t nr = s.n_rel[i];
        std::uint32_t* na = s.n_at.data();
        std::uint32_t* ra = s.r_at.data();
        double ap_result = 0.0;
        if (!want_ranks) {
          for (int d = 0; d < nbins; ++d) {
            na[d] = cnt[2 * d] + cnt[2 * d + 1];
            ra[d] = cnt[2 * d + 1];
          }
        } else {
          // Counting sort of the relevant items by distance (within a distance they arrived in index order):
          // rank = items at smaller distances + position within the distance + 1.
          const std::uint64_t* f = s.found[i].data();
          std::copy(cnt, cnt + nbins, na);
          std::fill(ra, ra + nbins, 0u);
          for (std::uint64_t t = 0; t < nr; ++t) ++ra[f[t] >> 32];
          if (s.ranks.size() < nr) s.ranks.resize(nr);
          std::uint32_t slot = 0, before = 0;
          for (int d = 0; d < nbins; ++d) {
            s.offset[d] = slot;
            s.n_before[d] = before;
            slot += ra[d];
            before += na[d];
          }
          ApByIndex ap;
          for (std::uint64_t t = 0; t < nr; ++t) {
            const std::size_t d = f[t] >> 32;
            const std::uint32_t slot = s.offset[d]++, rank = s.n_before[d] + static_cast<std::uint32_t>(f[t]) + 1;
            s.ranks[slot] = rank;
            if (req.ap) ap_add(ap, t, slot, rank, req.k);
          }
          ap_result = ap_value(ap);
        }
        const std::uint64_t n_rel = want_ranks ? nr : std::accumulate(ra, ra + nbins, std::uint64_t(0));
        consume(task, q0 + i, Ranking{na, ra, nbins, want_ranks ? s.ranks.data() : nullptr, n_rel, ap_result});
      }
    }
  });
}

void check_set(const RetrievalSet& set) {
  check_code_size(set.code_size);
  if (set.nb >= std::numeric_limits<std::uint32_t>::max())
    invalid("the database must hold fewer than 2^32 - 1 codes for metrics, got " + std::to_string(set.nb));
  const bool bits = set.labels.q_bits && set.labels.db_bits && set.labels.label_bytes > 0;
  const bool cls = set.labels.q_class && set.labels.db_class;
  if (bits == cls && (set.nq > 0 || set.nb > 0))
    invalid("labels must be either packed multi-hot rows or class ids, for both queries and database");
}

// The same rankings from the active ISA's fused scan (metrics_scan.hpp), over the same query partition.
void fused_rankings(const MetricsScan& scan, const RetrievalSet& set, const RankRequest& req, int threads,
                    const Consumer& consume) {
  const ScanSet scan_set = make_scan_set(set);
  const int nbins = static_cast<int>(set.code_size * 8) + 1;
  threads = resolve_threads(threads);
  const Partition part = partition(set.nq);
  std::vector<std::unique_ptr<ScanOutput>> outputs(static_cast<std::size_t>(threads));
  parallel_for(part.n_tasks, threads, [&](std::size_t task, int worker) {
    auto& op = outputs[static_cast<std::size_t>(worker)];
    if (!op) op = std::make_unique<ScanOutput>();
    ScanOutput& o = *op;
    const std::size_t q_begin = task * part.blocks_per_task * kQueryBlock;
    const std::size_t q_end = std::min(set.nq, q_begin + part.blocks_per_task * kQueryBlock);
    for (std::size_t q0 = q_begin; q0 < q_end; q0 += kQueryBlock) {
      const int nqb = static_cast<int>(std::min<std::size_t>(kQueryBlock, q_end - q0));
      scan.scan_block(scan_set, q0, nqb, req, o);
      for (int i = 0; i < nqb; ++i) {
        const std::size_t off = static_cast<std::size_t>(i) * nbins;
        const std::uint32_t* ranks = req.ranks ? o.ranks[i].data() : nullptr;
        consume(task, q0 + i, Ranking{&o.n_at[off], &o.r_at[off], nbins, ranks, o.n_rel[i], o.ap[i]});
      }
    }
  });
}

// Dispatches on the label form and runs the ranking.
void for_each_ranking(const RetrievalSet& set, const RankRequest& req, int threads, const Consumer& consume) {
  check_set(set);
  if (set.nq == 0) return;
  if (const MetricsScan* scan = metrics_scan_for(set)) {
    fused_rankings(*scan, set, req, threads, consume);
    return;
  }
  if (set.labels.q_class) {
    rank_queries(
        set, req, threads,
        [&](std::size_t q0) { return ClassRelevance{set.labels.db_class, set.labels.q_class + q0}; }, consume);
    return;
  }
  const PaddedLabels lab = pad_labels(set);
  const std::size_t w = lab.width;
  if (w == 8) {
    rank_queries(
        set, req, threads,
        [&](std::size_t q0) { return BitsRelevance<8>{lab.db.data(), lab.q.data() + q0 * 8, 8}; }, consume);
  } else {
    rank_queries(
        set, req, threads,
        [&](std::size_t q0) { return BitsRelevance<0>{lab.db.data(), lab.q.data() + q0 * w, w}; }, consume);
  }
}

}  // namespace

void average_precision(const RetrievalSet& set, std::size_t k, Ties ties, double* ap, int threads) {
  const bool by_index = ties == Ties::Index;
  RankRequest req;
  req.ap = by_index;
  req.k = k;
  for_each_ranking(set, req, threads, [&](std::size_t, std::size_t qi, const Ranking& r) {
    if (by_index) ap[qi] = r.ap;
    else if (k == 0 || k >= set.nb) ap[qi] = ap_tie(r.n_at, r.r_at, r.nbins);
    else ap[qi] = ap_tie_at_k(r.n_at, r.r_at, r.nbins, k);
  });
}

void precision_recall_at(const RetrievalSet& set, const std::size_t* ks, std::size_t nk, Ties ties, double* precision,
                         double* recall, int threads) {
  for (std::size_t j = 0; j < nk; ++j)
    if (ks[j] == 0) invalid("every cut-off k must be >= 1, got 0");
  const bool by_index = ties == Ties::Index;
  RankRequest req;
  req.ranks = by_index;
  for_each_ranking(set, req, threads, [&](std::size_t, std::size_t qi, const Ranking& r) {
    for (std::size_t j = 0; j < nk; ++j) {
      const std::uint64_t k = std::min<std::uint64_t>(ks[j], set.nb);
      const double hits = by_index ? static_cast<double>(hits_at_index(r.rel_rank, r.n_rel, k))
                                   : hits_at_tie(r.n_at, r.r_at, r.nbins, k);
      precision[qi * nk + j] = hits / static_cast<double>(k);
      recall[qi * nk + j] = r.n_rel ? hits / static_cast<double>(r.n_rel) : 0.0;
    }
  });
}

RadiusCurves radius_curves(const RetrievalSet& set, int threads) {
  const std::size_t nbins = set.code_size * 8 + 1;
  const std::size_t n_tasks = set.nq ? partition(set.nq).n_tasks : 0;
  // Per-task partial sums, reduced in task order: the result does not depend on the thread count.
  std::vector<std::uint64_t> tp(n_tasks * nbins, 0), ret(n_tasks * nbins, 0), rel(n_tasks, 0);
  std::vector<std::uint64_t> p_count(n_tasks * nbins, 0);
  std::vector<double> p_sum(n_tasks * nbins, 0.0), r_sum(n_tasks * nbins, 0.0);
  for_each_ranking(set, RankRequest{}, threads, [&](std::size_t task, std::size_t, const Ranking& r) {
    const std::size_t o = task * nbins;
    std::uint64_t cum_n = 0, cum_r = 0;
    rel[task] += r.n_rel;
    for (std::size_t d = 0; d < nbins; ++d) {
      cum_n += r.n_at[d];
      cum_r += r.r_at[d];
      tp[o + d] += cum_r;
      ret[o + d] += cum_n;
      if (cum_n) {
        p_sum[o + d] += static_cast<double>(cum_r) / static_cast<double>(cum_n);
        ++p_count[o + d];
      }
      if (r.n_rel) r_sum[o + d] += static_cast<double>(cum_r) / static_cast<double>(r.n_rel);
    }
  });
  RadiusCurves out;
  out.tp.assign(nbins, 0);
  out.retrieved.assign(nbins, 0);
  out.precision_count.assign(nbins, 0);
  out.precision_sum.assign(nbins, 0.0);
  out.recall_sum.assign(nbins, 0.0);
  for (std::size_t t = 0; t < n_tasks; ++t) {
    out.relevant += rel[t];
    for (std::size_t d = 0; d < nbins; ++d) {
      out.tp[d] += tp[t * nbins + d];
      out.retrieved[d] += ret[t * nbins + d];
      out.precision_count[d] += p_count[t * nbins + d];
      out.precision_sum[d] += p_sum[t * nbins + d];
      out.recall_sum[d] += r_sum[t * nbins + d];
    }
  }
  return out;
}

void precision_within_radius(const RetrievalSet& set, int radius, double* precision, int threads) {
  if (radius < 0) invalid("radius must be >= 0, got " + std::to_string(radius));
  for_each_ranking(set, RankRequest{}, threads, [&](std::size_t, std::size_t qi, const Ranking& r) {
    const int top = std::min(radius, r.nbins - 1);
    std::uint64_t n = 0, rel = 0;
    for (int d = 0; d <= top; ++d) {
      n += r.n_at[d];
      rel += r.r_at[d];
    }
    precision[qi] = n ? static_cast<double>(rel) / static_cast<double>(n) : 0.0;
  });
}

}  // namespace xmhash
