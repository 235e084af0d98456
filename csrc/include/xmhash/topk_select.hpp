// Exact top-k / radius selection by counting, cut into many independent workers ("units") so that even one
// query fills a GPU. Compiled by both g++ and nvcc (see hd.hpp): the CUDA kernels run these functions, and
// the CPU reference in select_by_units.cpp runs the same ones sequentially, so the CPU tests check the logic.
//
// Distances are small integers (0..nbits), so no sorting is needed:
//   1. count   each unit (a contiguous chunk of one query's database) counts its items per distance d <= limit;
//   2. scan    per query and distance, an exclusive prefix over units gives each unit's offset among the items
//              at that distance; the per-distance totals, prefixed over distances, give where each distance
//              starts in the query's output ("bin starts");
//   3. fill    each unit walks its chunk in index order: the item at distance d goes to
//              start[d] + unit_offset[d] + (items of this unit at d already placed).
// That position is the item's rank in (distance, index) order, so an item is kept iff its position < kept,
// kept = min(k, items within limit); ties at the k-th distance keep the smallest indices, exactly as the CPU
// path does.
#pragma once
#include <cstddef>
#include <cstdint>

#include "xmhash/hd.hpp"

namespace xmhash {

struct SelectPlan {
  std::size_t nb = 0;     // database codes
  std::size_t chunk = 0;  // database codes per unit (a multiple of 32 unless one unit holds everything)
  std::size_t units = 0;  // units per query, ceil(nb / chunk)
  int limit = 0;          // largest distance kept: the radius, or nbits for plain k-NN
  int nbins = 0;          // limit + 1
  std::size_t k = 0;      // most results per query; 0 keeps everything within limit
};

// Smallest chunk worth a unit: the per-unit work of step 2 and 3 is O(nbins), so a unit must scan several
// times that many codes.
XMHASH_HD std::size_t min_select_chunk(int nbins) {
  const std::size_t c = 4 * static_cast<std::size_t>(nbins);
  const std::size_t lo = c < 512 ? 512 : c;
  return (lo + 31) / 32 * 32;
}

// Splits each query's database into about `units_per_query` equal chunks of a multiple of 32 codes (one
// warp step), only the last shorter, and no more than nb / min_chunk of them. `units_per_query` comes from
// the caller's parallelism target (GPU warps / queries); `min_chunk` is min_select_chunk(limit + 1) except
// in tests, which cut small databases into many units.
XMHASH_HD SelectPlan make_select_plan(std::size_t nb, int limit, std::size_t k, std::size_t units_per_query,
                                      std::size_t min_chunk) {
  SelectPlan p;
  p.nb = nb;
  p.limit = limit;
  p.nbins = limit + 1;
  p.k = k;
  if (min_chunk < 1) min_chunk = 1;
  std::size_t max_units = nb / min_chunk;
  if (max_units < 1) max_units = 1;
  std::size_t u = units_per_query < 1 ? 1 : units_per_query;
  if (u > max_units) u = max_units;
  if (u == 1) {
    p.chunk = nb > 0 ? nb : 1;
  } else {
    p.chunk = ((nb + u - 1) / u + 31) / 32 * 32;
  }
  p.units = nb > 0 ? (nb + p.chunk - 1) / p.chunk : 1;
  return p;
}

XMHASH_HD std::size_t unit_begin(const SelectPlan& p, std::size_t u) { return u * p.chunk; }
XMHASH_HD std::size_t unit_end(const SelectPlan& p, std::size_t u) {
  const std::size_t e = (u + 1) * p.chunk;
  return e < p.nb ? e : p.nb;
}

// Per-unit counts of a batch of queries: rows (query, distance), each row contiguous over units, so step 2
// scans contiguous rows.
XMHASH_HD std::size_t count_row(const SelectPlan& p, std::size_t q, int d) {
  return q * static_cast<std::size_t>(p.nbins) + static_cast<std::size_t>(d);
}
XMHASH_HD std::size_t count_slot(const SelectPlan& p, std::size_t q, int d, std::size_t u) {
  return count_row(p, q, d) * p.units + u;
}

// Step 2, per query: turns the per-distance totals into bin starts in place (exclusive prefix over distances)
// and returns how many results the query keeps, min(k, total) (total when k == 0).
XMHASH_HD std::uint32_t bin_starts(std::uint32_t* totals, int nbins, std::size_t k) {
  std::uint64_t run = 0;
  for (int d = 0; d < nbins; ++d) {
    const std::uint32_t t = totals[d];
    totals[d] = static_cast<std::uint32_t>(run);
    run += t;
  }
  if (k != 0 && run > k) run = k;
  return static_cast<std::uint32_t>(run);
}

// The largest distance that still holds a kept position (the k-th distance), -1 when nothing is kept. Items
// farther than this can be skipped by step 3.
XMHASH_HD int last_kept_distance(const std::uint32_t* starts, int nbins, std::uint32_t kept) {
  int last = -1;
  for (int d = 0; d < nbins; ++d)
    if (starts[d] < kept) last = d;
  return last;
}

}  // namespace xmhash
