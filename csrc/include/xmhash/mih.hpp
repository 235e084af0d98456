// Multi-index hashing (Norouzi, Punjani & Fleet, CVPR 2012 / TPAMI 2014): exact radius and k-NN search in
// Hamming space that touches only a small part of the database for small radii.
//
// Each code is cut into m disjoint substrings (contiguous bit ranges, lengths differing by at most one bit, not
// necessarily byte-aligned); each substring gets a table that groups the codes by their substring value. Search
// runs in steps t = 0, 1, 2, ...: step t probes table i = t mod m at exact substring distance s = t div m. After
// step t every code with d <= t has been seen (pigeonhole: a code missed so far has d_j >= s + 1 for j <= i and
// d_j >= s for j > i, so d >= t + 1). Radius r therefore needs steps 0..r, and exact k-NN stops at the first t
// with k results of distance <= t, the per-substring radius growing one table at a time.
//
// A batch of queries runs the steps in lockstep: the probes of all queries in a step are sorted by bucket, each
// bucket is read once and verified against up to kQueryBlock of its queries per call of the active ISA kernel
// (Kernels::scan_block), over copies of the codes stored inline in the table (a bucket is one contiguous run, so
// verification streams memory instead of chasing ids). A code is reported only from the first step that can reach
// it (its substring distances tell which), which de-duplicates exactly with no per-query bitmap or epoch array to
// clear, and keeps a k-NN query's hits of a bucket to its k best. Results are sorted by (distance, index),
// identical to the scan's.
//
// Incremental add: the index is a list of segments (contiguous id ranges, each with its own tables and m);
// a new batch becomes a segment and trailing segments of similar size are rebuilt into one, so every code is
// rebuilt O(log n) times in total and a single bulk add yields a single segment.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <shared_mutex>
#include <string>
#include <vector>

#include "xmhash/search.hpp"
#include "xmhash/types.hpp"

namespace xmhash {

// Bits [start, start + len) of a code (bit j = bit j % 8 of byte j / 8), len in 1..64.
struct Substring {
  int start = 0, len = 0;
};

// Throws std::invalid_argument unless nbits is a positive multiple of 8 up to kMaxCodeSize * 8.
void check_nbits(int nbits);

// Splits nbits into m contiguous substrings whose lengths differ by at most one (the longer ones first).
std::vector<Substring> split_substrings(int nbits, int m);

// The substring value: bit j of the key is bit sub.start + j of the code.
inline std::uint64_t substring_key(const code_t* code, std::size_t code_size, Substring sub) {
  const std::size_t byte = static_cast<std::size_t>(sub.start) >> 3;
  const int shift = sub.start & 7;
  std::uint64_t lo = 0;
  if (byte + 8 <= code_size) {
    std::memcpy(&lo, code + byte, 8);
  } else {
    for (std::size_t b = 0; byte + b < code_size; ++b) lo |= std::uint64_t(code[byte + b]) << (8 * b);
  }
  std::uint64_t v = lo >> shift;
  if (shift + sub.len > 64) v |= std::uint64_t(code[byte + 8]) << (64 - shift);
  return sub.len == 64 ? v : v & ((std::uint64_t(1) << sub.len) - 1);
}

// Smallest and largest valid m: substrings of at most 64 and at least 1 bit.
int min_substrings(int nbits);
int max_substrings(int nbits);

// The paper's rule m ~ nbits / log2(n), adapted to how this implementation spends its time: candidates are cheap
// (inline, streamed, verified by the blocked kernel for all the queries that probe a bucket) while a probe costs a
// bucket fetch. When the k-NN radius of uniform codes is small against the code length (R10 <= 0.28 nbits: 64-bit
// codes from ~100k codes), substrings are log2(n) - 10 bits, at least 13 and at most log2(n) - 5 (64-bit codes:
// m = 5 from 0.1M to 19M codes, ~1000 codes per bucket at 10M): k-NN needs few probes and radii up to 3 stay cheap.
// Otherwise (128-bit codes below billions) the scan answers k-NN anyway and substrings are log2(n) - 2 bits (~4 codes
// per bucket: few candidates for radius searches; 128-bit codes: m = 7 at 1M). Rounded and clamped to
// [min_substrings, max_substrings].
int auto_substrings(int nbits, std::size_t n);

enum class SearchMethod { Flat = 0, Mih = 1, Auto = 2 };
const char* method_name(SearchMethod m);
SearchMethod parse_method(const std::string& name);  // throws std::invalid_argument

// What one search call did (summed over queries); costs are the model's estimates in nanoseconds per query.
struct MihStats {
  SearchMethod used = SearchMethod::Flat;  // Mih or Flat (auto resolved)
  std::size_t queries = 0;
  std::size_t probes = 0;          // buckets looked up
  std::size_t candidates = 0;      // codes verified with the full distance
  std::size_t mih_queries = 0;     // queries answered by the tables
  std::size_t scan_queries = 0;    // queries answered by the scan (auto fallbacks included)
  std::size_t sampled = 0;         // queries the auto decision ran on the tables first
  double est_mih_ns = 0, est_scan_ns = 0;
};

class MultiIndexHashing {
 public:
  // m == 0: chosen per segment by auto_substrings. Throws std::invalid_argument on bad nbits / m.
  MultiIndexHashing(int nbits, int m = 0);
  ~MultiIndexHashing();
  MultiIndexHashing(const MultiIndexHashing&) = delete;
  MultiIndexHashing& operator=(const MultiIndexHashing&) = delete;

  // Indexes db[ntotal(), n): db holds every code added so far (same order) followed by the new ones.
  void add(const code_t* db, std::size_t n, int threads);
  void reset();

  int nbits() const { return nbits_; }
  int m() const { return m_; }  // 0 = automatic
  std::size_t ntotal() const;
  std::vector<std::size_t> segment_sizes() const;
  std::vector<int> segment_substrings() const;
  // Bytes held by the tables (ids, inline codes, directories), not counting the caller's codes.
  std::size_t memory_bytes() const;

  // Up to k nearest (k == 0: all) with d <= radius per query, sorted by (distance, index), as CSR. db must be the
  // ntotal() codes that were added. method Flat scans, Mih uses the tables, Auto picks by the cost model.
  RangeResultData search(const code_t* q, std::size_t nq, const code_t* db, std::size_t n, std::size_t k,
                         int radius, int threads, SearchMethod method, MihStats* stats) const;

  // Exact k-NN laid out like xmhash::knn (rows padded with index -1 and distance nbits + 1).
  void knn(const code_t* q, std::size_t nq, const code_t* db, std::size_t n, std::size_t k, dist_t* D, idx_t* I,
           int threads, SearchMethod method, MihStats* stats) const;

  struct Segment;

 private:
  int nbits_, m_;
  std::size_t code_size_;
  std::vector<std::unique_ptr<Segment>> segments_;
  mutable std::shared_mutex mutex_;  // searches share, add/reset exclude

  std::size_t indexed_locked() const;  // ntotal() for a caller that holds mutex_
};

}  // namespace xmhash
