// Retrieval metrics of a Hamming ranking: mAP (whole ranking, top-window @K, tie-aware), precision/recall at
// cut-offs, precision-recall by lookup radius. Each query is ranked against the whole database, streamed tile
// by tile through the active ISA's fused metric scan (metrics_scan.hpp) or, where there is none, its cdist
// kernel, and reduced on the fly to per-distance counts (and, for ties broken by database index, the ranks of
// its relevant items), so memory is O(threads x database), never O(queries x database). The per-query
// arithmetic is in ap_math.hpp; every path returns the same bits.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "xmhash/types.hpp"

namespace xmhash {

// Relevance: exactly one of the two label forms is set.
struct Labels {
  // Multi-hot: packed label bits (same layout as codes), label_bytes per row; relevant iff rows share a bit.
  const code_t* q_bits = nullptr;
  const code_t* db_bits = nullptr;
  std::size_t label_bytes = 0;
  // Single-label: class ids; relevant iff equal.
  const std::int64_t* q_class = nullptr;
  const std::int64_t* db_class = nullptr;
};

struct RetrievalSet {
  const code_t* q;
  std::size_t nq;
  const code_t* db;
  std::size_t nb;
  std::size_t code_size;
  Labels labels;
};

// How items at the same Hamming distance are ordered: by database index, or every order averaged (expected
// value over uniformly random orders within each distance).
enum class Ties { Index, Average };

// ap[i]: average precision of query i; k == 0: whole ranking, k > 0: top-window AP@k.
void average_precision(const RetrievalSet& set, std::size_t k, Ties ties, double* ap, int threads);

// precision[i * nk + j], recall[i * nk + j] at cut-off ks[j] (each >= 1). Precision divides by min(k, nb);
// recall is 0 for a query with no relevant item.
void precision_recall_at(const RetrievalSet& set, const std::size_t* ks, std::size_t nk, Ties ties, double* precision,
                         double* recall, int threads);

// Curves over radius r = 0..nbits, everything retrieved with d <= r.
struct RadiusCurves {
  // Pooled over all query-database pairs: relevant retrieved, retrieved, all relevant pairs.
  std::vector<std::uint64_t> tp, retrieved;
  std::uint64_t relevant = 0;
  // Per-query: sum of precision over queries that retrieve something, their number, sum of recall (0 for a
  // query with no relevant item).
  std::vector<double> precision_sum, recall_sum;
  std::vector<std::uint64_t> precision_count;
};
RadiusCurves radius_curves(const RetrievalSet& set, int threads);

// precision[i]: relevant / retrieved within d <= radius for query i, 0 when nothing is retrieved.
void precision_within_radius(const RetrievalSet& set, int radius, double* precision, int threads);

}  // namespace xmhash
