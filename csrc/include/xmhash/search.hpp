// Exact brute-force Hamming search over packed codes (row-major, code_size bytes per code).
// Ordering contract everywhere: results sorted by (distance, database index).
#pragma once
#include <cstdint>
#include <vector>

#include "xmhash/types.hpp"

namespace xmhash {

struct RangeResultData {
  std::vector<idx_t> lims;  // nq + 1 offsets into distances/indices
  std::vector<dist_t> distances;
  std::vector<idx_t> indices;
};

// Per-query sorted lists, the common output of the scans before they are laid out for the caller.
struct QueryLists {
  std::vector<std::vector<std::uint16_t>> dist;
  std::vector<std::vector<idx_t>> idx;
};

// Checks shapes shared by every entry point; throws std::invalid_argument naming the argument.
void check_code_size(std::size_t code_size);

// out: nq * nb int32, row-major.
void cdist(const code_t* q, std::size_t nq, const code_t* db, std::size_t nb, std::size_t code_size, dist_t* out,
           int threads);

// Up to k nearest per query among distances <= max_radius (pass nbits for plain k-NN); k == 0 means all
// within max_radius (range search).
QueryLists scan_select(const code_t* q, std::size_t nq, const code_t* db, std::size_t nb, std::size_t code_size,
                       std::size_t k, int max_radius, int threads);

// k-NN results, shared by the flat scan and the MIH index: k >= 1, and a row of k slots holds the `count` nearest
// (distance, index) pairs, then distance nbits + 1 and index -1 in the slots no database code fills.
void check_k(std::size_t k);
template <class Dist, class Idx>
void write_knn_row(std::size_t k, int nbits, std::size_t count, const Dist* dist, const Idx* idx, dist_t* D,
                   idx_t* I) {
  for (std::size_t j = 0; j < k; ++j) {
    D[j] = j < count ? static_cast<dist_t>(dist[j]) : nbits + 1;
    I[j] = j < count ? static_cast<idx_t>(idx[j]) : -1;
  }
}

// D, I: nq * k. Rows shorter than k (k > nb) are padded with index -1 and distance nbits + 1.
void knn(const code_t* q, std::size_t nq, const code_t* db, std::size_t nb, std::size_t code_size, std::size_t k,
         dist_t* D, idx_t* I, int threads);

// Every database code with distance <= radius (inclusive); k > 0 keeps at most the k nearest of them.
RangeResultData range_search(const code_t* q, std::size_t nq, const code_t* db, std::size_t nb,
                             std::size_t code_size, int radius, int threads, std::size_t k = 0);

// Lays out per-query lists as CSR.
RangeResultData to_csr(QueryLists&& lists);

}  // namespace xmhash
