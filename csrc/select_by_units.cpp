#include "xmhash/select_by_units.hpp"

#include <cstdint>
#include <string>
#include <vector>

#include "xmhash/code_words.hpp"
#include "xmhash/topk_select.hpp"

namespace xmhash {

RangeResultData select_by_units(const code_t* q, std::size_t nq, const code_t* db, std::size_t nb,
                                std::size_t cs, int limit, std::size_t k, std::size_t units_per_query,
                                std::size_t min_chunk) {
  check_code_size(cs);
  if (limit < 0) invalid("limit must be >= 0, got " + std::to_string(limit));
  const int nbits = static_cast<int>(cs * 8);
  if (limit > nbits) limit = nbits;
  const SelectPlan p =
      make_select_plan(nb, limit, k, units_per_query, min_chunk ? min_chunk : min_select_chunk(limit + 1));
  RangeResultData r;
  r.lims.assign(nq + 1, 0);
  if (nq == 0 || nb == 0) return r;

  const int word_bytes = code_word_bytes(cs, reinterpret_cast<std::uintptr_t>(q), reinterpret_cast<std::uintptr_t>(db));
  const int nwords = static_cast<int>(cs) / word_bytes;
  return dispatch_code_words(cs, word_bytes, [&](auto tag) {
    using Word = typename decltype(tag)::word;
    constexpr int kWords = decltype(tag)::words;
    const Word* qw = reinterpret_cast<const Word*>(q);
    const Word* dw = reinterpret_cast<const Word*>(db);
    auto dist = [&](std::size_t i, std::size_t j) {
      return hamming_words<kWords>(qw + i * nwords, dw + j * nwords, nwords);
    };

    // 1. count
    std::vector<std::uint32_t> counts(nq * p.nbins * p.units, 0);
    for (std::size_t i = 0; i < nq; ++i)
      for (std::size_t u = 0; u < p.units; ++u)
        for (std::size_t j = unit_begin(p, u); j < unit_end(p, u); ++j) {
          const int d = dist(i, j);
          if (d <= p.limit) ++counts[count_slot(p, i, d, u)];
        }
    // 2. scan: unit offsets per (query, distance) row, then bin starts and kept counts per query
    std::vector<std::uint32_t> starts(nq * p.nbins);
    std::vector<std::uint32_t> kept(nq);
    for (std::size_t row = 0; row < nq * p.nbins; ++row) {
      std::uint32_t run = 0;
      for (std::size_t u = 0; u < p.units; ++u) {
        const std::uint32_t c = counts[row * p.units + u];
        counts[row * p.units + u] = run;
        run += c;
      }
      starts[row] = run;
    }
    for (std::size_t i = 0; i < nq; ++i) {
      kept[i] = bin_starts(starts.data() + i * p.nbins, p.nbins, p.k);
      r.lims[i + 1] = r.lims[i] + kept[i];
    }
    r.distances.resize(static_cast<std::size_t>(r.lims[nq]));
    r.indices.resize(static_cast<std::size_t>(r.lims[nq]));
    // 3. fill, each unit in index order
    std::vector<std::uint32_t> counter(p.nbins);
    for (std::size_t i = 0; i < nq; ++i) {
      const std::uint32_t* st = starts.data() + i * p.nbins;
      const int last = last_kept_distance(st, p.nbins, kept[i]);
      for (std::size_t u = 0; u < p.units; ++u) {
        for (int d = 0; d <= last; ++d) counter[d] = st[d] + counts[count_slot(p, i, d, u)];
        for (std::size_t j = unit_begin(p, u); j < unit_end(p, u); ++j) {
          const int d = dist(i, j);
          if (d > last) continue;
          const std::uint32_t pos = counter[d]++;
          if (pos < kept[i]) {
            r.distances[r.lims[i] + pos] = d;
            r.indices[r.lims[i] + pos] = static_cast<idx_t>(j);
          }
        }
      }
    }
    return r;
  });
}

}  // namespace xmhash
