// The per-ISA kernel table. Every entry has the same contract on every path; tests compare each path with a
// numpy reference. Kernels work on a batch of queries against one tile of the database (row-major codes), so the
// caller owns threading, tiling and result selection. Inside, queries go kQueryBlock at a time: each database
// load is reused for a block of queries, and each block sweeps the tile while it is in cache.
#pragma once
#include <cstddef>
#include <cstdint>

#include "xmhash/types.hpp"

namespace xmhash {

struct Kernels {
  // out[i * ld + j] = hamming(q_i, db_j) for i < nq, j < nb.
  void (*cdist_block)(const code_t* q, int nq, const code_t* db, std::size_t nb, std::size_t code_size,
                      dist_t* out, std::size_t ld);

  // Threshold filter: for query i, appends every j < nb with d = hamming(q_i, db_j) <= thresh[i], in
  // increasing j, to idx_out[i * ld + ...] (uint32, relative to db) and dist_out[i * ld + ...]; sets
  // count[i]. A threshold < 0 selects nothing. nb <= ld.
  void (*scan_block)(const code_t* q, int nq, const code_t* db, std::size_t nb, std::size_t code_size,
                     const int* thresh, std::uint32_t* idx_out, std::uint16_t* dist_out,
                     std::uint32_t* count, std::size_t ld);
};

const Kernels& kernels_scalar();
#if defined(XMHASH_HAVE_AVX2)
const Kernels& kernels_avx2();
#endif
#if defined(XMHASH_HAVE_AVX512)
const Kernels& kernels_avx512();
// The popcount ceiling the benchmark compares the kernels with: one sweep of 8 queries over nb codes of 8 or 16
// bytes, each database load reused for the 8 queries, XOR + VPOPCNTQ + add and nothing else. Returns the sum of
// all distances (so the work cannot be optimised away).
std::uint64_t popcount_ceiling_avx512(const code_t* q8, const code_t* db, std::size_t nb, std::size_t code_size);
#endif

// Database tile (codes per scan_block call) sized so a tile stays in L2 while a query block sweeps it.
inline std::size_t tile_codes(std::size_t code_size) {
  std::size_t t = (std::size_t(256) << 10) / (code_size ? code_size : 1);
  if (t > 8192) t = 8192;
  if (t < 64) t = 64;
  return t & ~std::size_t(63);
}

}  // namespace xmhash
