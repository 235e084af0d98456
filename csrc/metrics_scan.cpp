#include "xmhash/metrics_scan.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "xmhash/isa.hpp"

namespace xmhash {
namespace {

// Rows of `bytes` bytes -> `words` zero-padded 64-bit words each, planar (word w of row j at [w * n + j]).
void planar_words(const code_t* src, std::size_t n, std::size_t bytes, int words, std::vector<std::uint64_t>& dst) {
  dst.assign(static_cast<std::size_t>(words) * n, 0);
  const std::size_t total = n * bytes;
  for (int w = 0; w < words; ++w) {
    const std::size_t off = static_cast<std::size_t>(w) * 8, len = std::min<std::size_t>(8, bytes - off);
    const std::uint64_t keep = len == 8 ? ~std::uint64_t(0) : (std::uint64_t(1) << (8 * len)) - 1;
    std::uint64_t* out = dst.data() + static_cast<std::size_t>(w) * n;
    std::size_t j = 0;
    for (; j < n && j * bytes + off + 8 <= total; ++j) {  // whole 8-byte reads, masked to the row's bytes
      std::uint64_t v;
      std::memcpy(&v, src + j * bytes + off, 8);
      out[j] = v & keep;
    }
    for (; j < n; ++j) std::memcpy(out + j, src + j * bytes + off, len);  // the last rows: exact reads
  }
}

// Rows -> zero-padded 64-bit words, row-major.
void row_words(const code_t* src, std::size_t n, std::size_t bytes, int words, std::vector<std::uint64_t>& dst) {
  dst.assign(n * static_cast<std::size_t>(words), 0);
  for (std::size_t i = 0; i < n; ++i) std::memcpy(dst.data() + i * words, src + i * bytes, bytes);
}

bool avx512_fused_cpu() {
#if defined(XMHASH_HAVE_AVX512) && (defined(__x86_64__) || defined(_M_X64))
  // Beyond the AVX-512 path's own requirements (isa.cpp): byte permutes, GF(2) affine, byte popcount, conflicts.
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512vbmi") && __builtin_cpu_supports("gfni") &&
         __builtin_cpu_supports("avx512bitalg") && __builtin_cpu_supports("avx512cd");
#else
  return false;
#endif
}

}  // namespace

ScanSet make_scan_set(const RetrievalSet& set) {
  ScanSet s;
  s.nq = set.nq;
  s.nb = set.nb;
  s.nbits = static_cast<int>(set.code_size * 8);
  s.code_words = static_cast<int>((set.code_size + 7) / 8);
  // One whole word per row is read in place; anything else becomes padded planes.
  auto planes = [&](const code_t* src, std::size_t bytes, int words, std::vector<std::uint64_t>& own) {
    if (bytes == 8) return reinterpret_cast<const std::uint64_t*>(src);
    planar_words(src, set.nb, bytes, words, own);
    return static_cast<const std::uint64_t*>(own.data());
  };
  s.db_codes = planes(set.db, set.code_size, s.code_words, s.owned_codes);
  row_words(set.q, set.nq, set.code_size, s.code_words, s.q_codes);
  if (set.labels.q_class) {
    const std::int64_t* q = set.labels.q_class;
    const std::int64_t* db = set.labels.db_class;
    auto narrow = [](std::int64_t v) { return v >= INT32_MIN && v <= INT32_MAX; };
    if (std::all_of(q, q + set.nq, narrow) && std::all_of(db, db + set.nb, narrow)) {
      s.labels = LabelLayout::Classes32;
      s.db_labels32.assign(db, db + set.nb);  // two's complement: equal as int64 iff equal as uint32
      s.q_labels32.assign(q, q + set.nq);
    } else {
      s.labels = LabelLayout::Classes;
      s.db_class = db;
      s.q_class = q;
    }
  } else if (set.labels.label_bytes <= 4) {
    const std::size_t lb = set.labels.label_bytes;
    s.labels = LabelLayout::Words32;
    auto rows = [lb](const code_t* src, std::size_t n, std::vector<std::uint32_t>& dst) {
      dst.assign(n, 0);
      for (std::size_t j = 0; j < n; ++j) std::memcpy(&dst[j], src + j * lb, lb);
    };
    rows(set.labels.db_bits, set.nb, s.db_labels32);
    rows(set.labels.q_bits, set.nq, s.q_labels32);
  } else {
    const std::size_t lb = set.labels.label_bytes;
    s.labels = LabelLayout::Words;
    s.label_words = static_cast<int>((lb + 7) / 8);
    s.db_labels = planes(set.labels.db_bits, lb, s.label_words, s.owned_labels);
    row_words(set.labels.q_bits, set.nq, lb, s.label_words, s.q_labels);
  }
  return s;
}

void assign_zeros(std::vector<std::uint32_t>& v, std::size_t n) { v.assign(n, 0); }
void assign_zeros(std::vector<std::uint64_t>& v, std::size_t n) { v.assign(n, 0); }
void grow_to(std::vector<std::uint32_t>& v, std::size_t n) {
  if (v.size() < n) v.resize(n);
}
void grow_to(std::vector<std::uint64_t>& v, std::size_t n) {
  if (v.size() < n) v.resize(n);
}

const MetricsScan* metrics_scan_for(const RetrievalSet& set) {
#if defined(XMHASH_HAVE_AVX512)
  static const bool cpu = avx512_fused_cpu();
  if (active_isa() == Isa::Avx512 && cpu && set.code_size * 8 <= kFusedMaxBits) return &metrics_scan_avx512();
#endif
  (void)set;
  return nullptr;
}

}  // namespace xmhash
