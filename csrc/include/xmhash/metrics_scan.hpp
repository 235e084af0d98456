// Fused retrieval-metric scans: per query block, one sweep over the database computes distances, relevance and
// the per-distance reductions together in registers, instead of writing a cdist tile and reducing it item by
// item (metrics.cpp's generic path, which stays the reference and serves every case a fused scan does not cover).
// The fused kernels are per ISA (metrics_avx512.cpp); what they need is laid out here once per call.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "xmhash/metrics.hpp"
#include "xmhash/types.hpp"

namespace xmhash {

// Codes and labels as the fused kernels read them, built once per call and shared read-only by the workers.
// Database rows are word-planar: 64-bit word w of item j at [w * nb + j], zero-padded to whole words. Rows that
// already are one whole word (64-bit codes, 57..64 classes, class ids) are read in place; others are copied
// (O(database) memory). Query rows are row-major copies: word w of query i at [i * words + w].
// Labels that fit 32 bits (multi-hot rows of at most 32 classes, class ids within int32) are narrowed: one
// 32-bit lane per item tests 16 items per instruction.
enum class LabelLayout { Words, Words32, Classes, Classes32 };

struct ScanSet {
  std::size_t nq = 0, nb = 0;
  int nbits = 0;        // code_size * 8; distances are 0..nbits
  int code_words = 0;   // 64-bit words per code
  LabelLayout labels = LabelLayout::Words;
  int label_words = 0;  // Words: 64-bit words per multi-hot label row
  const std::uint64_t* db_codes = nullptr;  // may be unaligned: read with unaligned loads only
  const std::uint64_t* db_labels = nullptr;
  const std::int64_t* db_class = nullptr;
  const std::int64_t* q_class = nullptr;
  std::vector<std::uint64_t> q_codes, q_labels;
  std::vector<std::uint32_t> db_labels32, q_labels32;    // Words32 rows or Classes32 ids
  std::vector<std::uint64_t> owned_codes, owned_labels;  // storage behind db_codes / db_labels when copied
};

// What a ranking must deliver besides the per-distance counts (metrics.cpp asks the same of its generic path).
struct RankRequest {
  bool ranks = false;  // the relevant items' ranks in (distance, index) order
  bool ap = false;     // AP@k with ties broken by index (ap_add/ap_value of ap_math.hpp)
  std::uint64_t k = 0;
  bool by_index() const { return ranks || ap; }
};

// Per-worker output of one query block, reused across blocks.
struct ScanOutput {
  std::vector<std::uint32_t> n_at, r_at;          // kQueryBlock x (nbits + 1): items / relevant items at d
  std::uint64_t n_rel[kQueryBlock] = {};          // relevant items per query
  std::vector<std::uint32_t> ranks[kQueryBlock];  // request.ranks: 1-based ranks, ascending (n_rel[i] of them)
  double ap[kQueryBlock] = {};                    // request.ap
  // Kernel scratch (its layout is the kernel's business).
  std::vector<std::uint32_t> entries[kQueryBlock];
  std::vector<std::uint64_t> placed;
  std::vector<std::uint32_t> epoch_counts;
  std::vector<std::uint64_t> epoch_first;
};

// Sizing of ScanOutput's vectors for the ISA kernels, defined in metrics_scan.cpp (baseline flags). An ISA
// translation unit that called std::vector's assign/resize itself would instantiate those members under its
// AVX-512 flags as weak symbols, and the linker may keep that copy for every other caller too, so a CPU without
// AVX-512 could fault outside the dispatched path.
void assign_zeros(std::vector<std::uint32_t>& v, std::size_t n);
void assign_zeros(std::vector<std::uint64_t>& v, std::size_t n);
void grow_to(std::vector<std::uint32_t>& v, std::size_t n);  // size >= n; keeps the contents
void grow_to(std::vector<std::uint64_t>& v, std::size_t n);

struct MetricsScan {
  // Queries q0 .. q0 + nq - 1 (nq <= kQueryBlock) against the whole database.
  void (*scan_block)(const ScanSet& set, std::size_t q0, int nq, const RankRequest& request, ScanOutput& out);
};

// The fused scan of the active ISA when it covers this set (code width, CPU features), else nullptr.
const MetricsScan* metrics_scan_for(const RetrievalSet& set);
ScanSet make_scan_set(const RetrievalSet& set);

#if defined(XMHASH_HAVE_AVX512)
// Codes of at most this many bits run fused on the AVX-512 path.
constexpr std::size_t kFusedMaxBits = 128;
const MetricsScan& metrics_scan_avx512();
#endif

}  // namespace xmhash
