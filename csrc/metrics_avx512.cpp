// AVX-512 fused retrieval-metric scans. This translation unit alone is compiled with AVX-512 F/BW/VL/DQ/CD,
// VPOPCNTDQ, BITALG, VBMI and GFNI (CMakeLists.txt); metrics_scan_for() calls it only after checking the CPU.
//
// The core trick, for 8 items in the 64-bit lanes of a vector against one query:
//   d      = popcount(code ^ query)              the distance (codes of up to 64 bits: one word; up to 128: two)
//   rel    = (labels & query labels) != 0        relevance, one mask bit per item
//   hot    = 1 << d                              the distance as a one-hot row of 64 bins (page p: 1 << (d - 64p))
//   bins   = transpose(hot)                      byte b = which of the 8 items are at distance b: a byte permute
//                                                and a GF(2) affine 8x8 bit transpose per 64-bit lane
//   popcount of each byte of bins                the 8 items' histogram over the distances
// Counts (ties averaged, radius curves) need only the histograms of all and of relevant items (scan_counts).
// Ranks (ties by database index) need, for each relevant item, p = the number of items before it at its
// distance: the ranks sweep (scan_ranks) reads per-distance counters at each item's d, adds the earlier items of
// its group at the same d (conflict detection) and leaves one 32-bit entry (d << 16 | p) per relevant item, in
// index order. place_entries then puts the entries in the ranking without a sort, with the same counting run
// over the entries, and sums AP in ap_add's order, so the results equal the generic path's to the bit.
//
// The one-hot rows cover bins 0..64W-1 (W code words); the top bin d = 64W (every bit differs) has no column.
// Its items are counted as what is left over; the ranks sweep gives their entries p from a counter of their own
// (tiles that hold any are swept again by a variant that keeps it), and place_entries places them separately.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
// GCC 12's AVX-512 headers trip -Wmaybe-uninitialized on their own placeholder vectors (GCC bug 105593).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "xmhash/ap_math.hpp"
#include "xmhash/metrics_scan.hpp"

namespace xmhash {
namespace {

using u64 = std::uint64_t;
using u32 = std::uint32_t;

constexpr std::size_t kTile = 4096;          // items per tile: a query block sweeps a tile while it is in L2
constexpr std::size_t kEpoch = 15 * kTile;   // items per span of the 16-bit counters of the ranks sweep (< 65536)
constexpr std::size_t kCountChunk = 31 * 8;  // items (or entries) per span of byte counters: at most 248 per byte
constexpr std::size_t kEntryChunk = 16 * 8;  // entries per span of byte counters in place_entries

#define XMHASH_INLINE inline __attribute__((always_inline))
#define XMHASH_INLINE_LAMBDA __attribute__((always_inline))

// ---------------------------------------------------------------------------------------------- bit tricks
struct Consts {
  __m512i transpose_idx, transpose_pairs_idx, dup_d, eye, one;
  Consts() {
    alignas(64) std::uint8_t idx[64], pairs[64];
    // Byte 7 - l of lane y <- byte y of lane l (reversed within the lane: the affine step reads rows backwards);
    // the pairs variant fills lane y with bin group 0,4,1,5,2,6,3,7 instead of y.
    for (int y = 0; y < 8; ++y)
      for (int l = 0; l < 8; ++l) {
        idx[8 * y + 7 - l] = static_cast<std::uint8_t>(8 * l + y);
        pairs[8 * y + 7 - l] = static_cast<std::uint8_t>(8 * l + (y % 2 ? 4 + y / 2 : y / 2));
      }
    transpose_idx = _mm512_load_si512(idx);
    transpose_pairs_idx = _mm512_load_si512(pairs);
    alignas(64) std::uint16_t dup[32];  // 32-bit lane i <- word 0 of 64-bit lane i of (d0, d1), twice
    for (int i = 0; i < 16; ++i) dup[2 * i] = dup[2 * i + 1] = static_cast<std::uint16_t>(4 * i);
    dup_d = _mm512_load_si512(dup);
    eye = _mm512_set1_epi64(static_cast<long long>(0x8040201008040201ULL));
    one = _mm512_set1_epi64(1);
  }
};

constexpr __mmask64 kByte0 = 0x0101010101010101ULL;  // byte 0 of every 64-bit lane
constexpr __mmask16 kDword0 = 0x5555;                // 32-bit word 0 of every lane

// One-hot rows of page p: bit d - 64p of each lane (zero outside the page and in lanes not in `keep`).
template <int Page>
XMHASH_INLINE __m512i one_hot(__mmask8 keep, __m512i d, const Consts& c) {
  const __m512i shift = Page ? _mm512_sub_epi64(d, _mm512_set1_epi64(64 * Page)) : d;
  return _mm512_maskz_sllv_epi64(keep, c.one, shift);  // shifts >= 64 (and "negative" ones) give 0
}

// Byte b of the result: bit l set iff lane l of `hot` has bit b set (8x64 bit transpose).
XMHASH_INLINE __m512i transpose(__m512i hot, const Consts& c) {
  return _mm512_gf2p8affine_epi64_epi8(c.eye, _mm512_permutexvar_epi8(c.transpose_idx, hot), 0);
}

// The same with bin groups in the order 0,4,1,5,2,6,3,7 (see the ranks sweep).
XMHASH_INLINE __m512i transpose_pairs(__m512i hot, const Consts& c) {
  return _mm512_gf2p8affine_epi64_epi8(c.eye, _mm512_permutexvar_epi8(c.transpose_pairs_idx, hot), 0);
}

// Byte counters of W pages (bins 0..64W-1), read at each lane's d (byte 0 of each lane, the rest zero).
template <int W>
XMHASH_INLINE __m512i byte_lookup(const __m512i* cnt, __m512i d) {
  if constexpr (W == 1) return _mm512_maskz_permutexvar_epi8(kByte0, d, cnt[0]);
  else return _mm512_maskz_permutex2var_epi8(kByte0, cnt[0], d, cnt[1]);
}

// 32-bit counters (16 per register, 4W registers), read at each lane's d (bits 0..31, the rest zero).
template <int W>
XMHASH_INLINE __m512i dword_lookup(const __m512i* t, __m512i d) {
  const __mmask8 b5 = _mm512_test_epi64_mask(d, _mm512_set1_epi64(32));
  const __m512i a = _mm512_mask_blend_epi64(b5, _mm512_maskz_permutex2var_epi32(kDword0, t[0], d, t[1]),
                                            _mm512_maskz_permutex2var_epi32(kDword0, t[2], d, t[3]));
  if constexpr (W == 1) return a;
  const __m512i b = _mm512_mask_blend_epi64(b5, _mm512_maskz_permutex2var_epi32(kDword0, t[4], d, t[5]),
                                            _mm512_maskz_permutex2var_epi32(kDword0, t[6], d, t[7]));
  return _mm512_mask_blend_epi64(_mm512_test_epi64_mask(d, _mm512_set1_epi64(64)), a, b);
}

// dst[b] += bytes[b] for the 64 byte counters of one page, widened to 32 bits.
XMHASH_INLINE void add_bytes_to_dwords(__m512i bytes, __m512i* d32) {
  d32[0] = _mm512_add_epi32(d32[0], _mm512_cvtepu8_epi32(_mm512_castsi512_si128(bytes)));
  d32[1] = _mm512_add_epi32(d32[1], _mm512_cvtepu8_epi32(_mm512_extracti32x4_epi32(bytes, 1)));
  d32[2] = _mm512_add_epi32(d32[2], _mm512_cvtepu8_epi32(_mm512_extracti32x4_epi32(bytes, 2)));
  d32[3] = _mm512_add_epi32(d32[3], _mm512_cvtepu8_epi32(_mm512_extracti32x4_epi32(bytes, 3)));
}

XMHASH_INLINE __mmask8 tail_mask(std::size_t n) { return static_cast<__mmask8>(n >= 8 ? 0xFF : (1u << n) - 1); }

// ---------------------------------------------------------------------------------------------- one query
// 8 items from `p`: all of them, or (the database's last group) only the lanes in `valid`, the rest zero.
template <bool Tail>
XMHASH_INLINE __m512i load8(const void* p, __mmask8 valid) {
  return Tail ? _mm512_maskz_loadu_epi64(valid, p) : _mm512_loadu_si512(p);
}
XMHASH_INLINE u64 load1(const u64* p) {  // the planes may be unaligned views of byte arrays
  u64 v;
  std::memcpy(&v, p, 8);
  return v;
}

// Distances of 8 items to one query (W code words).
template <int W>
struct QueryCodes {
  const u64* db;
  std::size_t stride;
  const u64* q;
  __m512i qv[W];
  QueryCodes(const ScanSet& s, std::size_t qi) : db(s.db_codes), stride(s.nb), q(&s.q_codes[qi * W]) {
    for (int w = 0; w < W; ++w) qv[w] = _mm512_set1_epi64(static_cast<long long>(q[w]));
  }
  template <bool Tail>
  XMHASH_INLINE __m512i get(std::size_t g, __mmask8 valid) const {
    __m512i d = _mm512_popcnt_epi64(_mm512_xor_si512(load8<Tail>(db + g, valid), qv[0]));
    if constexpr (W == 2)
      d = _mm512_add_epi64(d, _mm512_popcnt_epi64(_mm512_xor_si512(load8<Tail>(db + stride + g, valid), qv[1])));
    return d;
  }
  int at(std::size_t j) const {
    int d = 0;
    for (int w = 0; w < W; ++w) d += __builtin_popcountll(load1(db + w * stride + j) ^ q[w]);
    return d;
  }
};

// Relevance: multi-hot rows of one word (<= 64 classes), of several words, or class ids.
// 16 items as two halves of 8.
#define XMHASH_GET16                                                                              \
  template <bool Tail>                                                                            \
  XMHASH_INLINE __mmask16 get16(std::size_t g, __mmask16 valid) const {                          \
    return _mm512_kunpackb(get<Tail>(g + 8, static_cast<__mmask8>(valid >> 8)),                  \
                           get<Tail>(g, static_cast<__mmask8>(valid)));                           \
  }

// Relevance (masked to `valid`): multi-hot rows of one word (<= 64 classes), of several words, or class ids.
struct OneWordLabels {
  const u64* db;
  u64 q;
  __m512i qv;
  OneWordLabels(const ScanSet& s, std::size_t qi)
      : db(s.db_labels), q(s.q_labels[qi]), qv(_mm512_set1_epi64(static_cast<long long>(q))) {}
  template <bool Tail>
  XMHASH_INLINE __mmask8 get(std::size_t g, __mmask8 valid) const {
    return _mm512_test_epi64_mask(load8<Tail>(db + g, valid), qv);  // zero lanes are never relevant
  }
  XMHASH_GET16
  bool at(std::size_t j) const { return (load1(db + j) & q) != 0; }
};
struct WordsLabels {
  const u64* db;
  std::size_t stride;
  const u64* q;
  int words;
  WordsLabels(const ScanSet& s, std::size_t qi)
      : db(s.db_labels), stride(s.nb), q(&s.q_labels[qi * s.label_words]), words(s.label_words) {}
  template <bool Tail>
  XMHASH_INLINE __mmask8 get(std::size_t g, __mmask8 valid) const {
    __m512i t = _mm512_and_si512(load8<Tail>(db + g, valid), _mm512_set1_epi64(static_cast<long long>(q[0])));
    for (int w = 1; w < words; ++w)  // t |= db_w & q_w
      t = _mm512_ternarylogic_epi64(t, load8<Tail>(db + w * stride + g, valid),
                                    _mm512_set1_epi64(static_cast<long long>(q[w])), 0xF8);
    return _mm512_test_epi64_mask(t, t);
  }
  XMHASH_GET16
  bool at(std::size_t j) const {
    for (int w = 0; w < words; ++w)
      if (load1(db + w * stride + j) & q[w]) return true;
    return false;
  }
};
struct ClassLabels {
  const std::int64_t* db;
  std::int64_t q;
  __m512i qv;
  ClassLabels(const ScanSet& s, std::size_t qi) : db(s.db_class), q(s.q_class[qi]), qv(_mm512_set1_epi64(q)) {}
  template <bool Tail>
  XMHASH_INLINE __mmask8 get(std::size_t g, __mmask8 valid) const {
    return _mm512_mask_cmpeq_epi64_mask(valid, load8<Tail>(db + g, valid), qv);
  }
  XMHASH_GET16
  bool at(std::size_t j) const { return db[j] == q; }
};
// Labels narrowed to 32 bits (LabelLayout::Words32 / Classes32): 16 items per test.
template <bool kClasses>
struct Labels32 {
  const u32* db;
  u32 q;
  Labels32(const ScanSet& s, std::size_t qi) : db(s.db_labels32.data()), q(s.q_labels32[qi]) {}
  template <bool Tail>
  XMHASH_INLINE __mmask8 get(std::size_t g, __mmask8 valid) const {
    const __m256i v = Tail ? _mm256_maskz_loadu_epi32(valid, db + g)
                           : _mm256_loadu_si256(reinterpret_cast<const __m256i*>(db + g));
    const __m256i qv = _mm256_set1_epi32(static_cast<int>(q));
    return kClasses ? _mm256_mask_cmpeq_epi32_mask(valid, v, qv) : _mm256_mask_test_epi32_mask(valid, v, qv);
  }
  template <bool Tail>
  XMHASH_INLINE __mmask16 get16(std::size_t g, __mmask16 valid) const {
    const __m512i v = Tail ? _mm512_maskz_loadu_epi32(valid, db + g) : _mm512_loadu_si512(db + g);
    const __m512i qv = _mm512_set1_epi32(static_cast<int>(q));
    return kClasses ? _mm512_mask_cmpeq_epi32_mask(valid, v, qv) : _mm512_mask_test_epi32_mask(valid, v, qv);
  }
  bool at(std::size_t j) const { return kClasses ? db[j] == q : (db[j] & q) != 0; }
};

// ---------------------------------------------------------------------------------------------- counts
// Per-query histograms of all and of relevant items, bins 0..64W-1, plus the relevant total.
template <int W>
struct CountState {
  alignas(64) u32 n[64 * W];
  alignas(64) u32 r[64 * W];
  u64 rel_total;
};

// Sweeps tile [t0, t1) for one query into its histograms (byte counters, moved out every kCountChunk items).
template <int W, class Rel>
void count_tile(const QueryCodes<W>& dist, const Rel& rel, std::size_t t0, std::size_t t1, CountState<W>& st,
                const Consts& c) {
  for (std::size_t c0 = t0; c0 < t1; c0 += kCountChunk) {
    const std::size_t ce = std::min(t1, c0 + kCountChunk);
    __m512i cn[W], cr[W];
    for (int p = 0; p < W; ++p) cn[p] = cr[p] = _mm512_setzero_si512();
    u64 rel_total = 0;
    auto step = [&](std::size_t g, __mmask8 valid, auto tail) XMHASH_INLINE_LAMBDA {
      constexpr bool kTail = decltype(tail)::value;
      const __m512i d = dist.template get<kTail>(g, valid);
      const __mmask8 r = rel.template get<kTail>(g, valid);
      rel_total += static_cast<u64>(__builtin_popcount(r));
      for (int p = 0; p < W; ++p) {
        const __m512i hot = p ? one_hot<1>(valid, d, c) : one_hot<0>(valid, d, c);
        cn[p] = _mm512_add_epi8(cn[p], _mm512_popcnt_epi8(transpose(hot, c)));
        cr[p] = _mm512_add_epi8(cr[p], _mm512_popcnt_epi8(transpose(_mm512_maskz_mov_epi64(r, hot), c)));
      }
    };
    const std::size_t full = c0 + (ce - c0) / 8 * 8;  // only the database's last group can be partial
    for (std::size_t g = c0; g < full; g += 8) step(g, 0xFF, std::false_type{});
    if (full < ce) step(full, tail_mask(ce - full), std::true_type{});
    st.rel_total += rel_total;
    for (int p = 0; p < W; ++p) {
      __m512i acc[4];
      for (int k = 0; k < 4; ++k) acc[k] = _mm512_load_si512(st.n + 64 * p + 16 * k);
      add_bytes_to_dwords(cn[p], acc);
      for (int k = 0; k < 4; ++k) _mm512_store_si512(st.n + 64 * p + 16 * k, acc[k]);
      for (int k = 0; k < 4; ++k) acc[k] = _mm512_load_si512(st.r + 64 * p + 16 * k);
      add_bytes_to_dwords(cr[p], acc);
      for (int k = 0; k < 4; ++k) _mm512_store_si512(st.r + 64 * p + 16 * k, acc[k]);
    }
  }
}

// ---------------------------------------------------------------------------------------------- ranks
// The sweep takes items 16 at a time: two 64-bit halves for the distances and one-hot rows, then 32-bit lanes
// holding d | d << 16 (a word permute of both halves) for the rest, so one conflict detection, one counter
// lookup and one compressed store serve 16 items. The counters are 16-bit per bin, counting the items of the
// current epoch; the two halves' transposed rows, interleaved byte by byte (unpack), are 16-bit lane masks per
// bin, so a 16-bit popcount adds the group to them directly. The transpose puts bin groups in the order
// 0,4,1,5,2,6,3,7 so that the unpacked words come out as bins 0..31 and 32..63.
constexpr __mmask32 kEvenWords = 0x55555555u;

// Per-query state of the ranks sweep between tiles.
template <int W>
struct RankState {
  alignas(64) std::uint16_t w16[64 * W];  // items per bin in the current epoch
  u64 n_out = 0;                          // entries written
  u32 top_count = 0;                      // items in the top bin in the current epoch
  bool top_seen = false;                  // some tile held top-bin items
};

// Sweeps tile [t0, t1) for one query: appends (d << 16 | p) for every relevant item, p = items before it at its
// distance within the epoch. Returns whether the top bin was hit: its items have no one-hot column, so the
// counters grow by less than the tile. The caller then sweeps the tile again from the same state with kTop,
// which also counts the top bin (one more compare per 16 items, and a branch where it occurs), and keeps kTop
// for the query's later tiles.
template <int W, bool kTop, class Rel>
bool rank_tile(const QueryCodes<W>& dist, const Rel& rel, std::size_t t0, std::size_t t1, RankState<W>& st,
               u32* entries, const Consts& c) {
  constexpr u32 kTopD = 64 * W;
  __m512i w16[2 * W];
  for (int k = 0; k < 2 * W; ++k) w16[k] = _mm512_load_si512(st.w16 + 32 * k);
  auto counted = [&] {  // sum of the (unsigned) counters: low and high bytes summed separately
    const __m512i zero = _mm512_setzero_si512();
    __m512i sum = zero;
    for (int k = 0; k < 2 * W; ++k) {
      sum = _mm512_add_epi64(sum, _mm512_sad_epu8(_mm512_and_si512(w16[k], _mm512_set1_epi16(0xFF)), zero));
      sum = _mm512_add_epi64(sum, _mm512_slli_epi64(_mm512_sad_epu8(_mm512_srli_epi16(w16[k], 8), zero), 8));
    }
    return static_cast<std::size_t>(_mm512_reduce_add_epi64(sum));
  };
  const std::size_t counted_before = counted();
  u32* out = entries + st.n_out;
  auto step = [&](std::size_t g, __mmask16 valid, auto tail) XMHASH_INLINE_LAMBDA {
    constexpr bool kTail = decltype(tail)::value;
    const __mmask8 va = static_cast<__mmask8>(valid), vb = static_cast<__mmask8>(valid >> 8);
    const __m512i d0 = dist.template get<kTail>(g, va), d1 = dist.template get<kTail>(g + 8, vb);
    const __mmask16 r = rel.template get16<kTail>(g, valid);
    const __m512i dd = _mm512_permutex2var_epi16(d0, c.dup_d, d1);  // lane i: d_i | d_i << 16
    const __m512i same_before = _mm512_popcnt_epi32(_mm512_conflict_epi32(dd));
    __m512i found = _mm512_mask2_permutex2var_epi16(w16[0], dd, kEvenWords, w16[1]);  // w16[d] | d << 16
    if constexpr (W == 2)
      found = _mm512_mask_blend_epi32(_mm512_test_epi32_mask(dd, _mm512_set1_epi32(64)), found,
                                      _mm512_mask2_permutex2var_epi16(w16[2], dd, kEvenWords, w16[3]));
    if (kTop) {  // top-bin lanes: their own counter, plus the earlier top-bin lanes of the group
      const __mmask16 top = _mm512_cmpeq_epi32_mask(dd, _mm512_set1_epi32(static_cast<int>(kTopD << 16 | kTopD)));
      if (top) {
        found = _mm512_mask_mov_epi32(found, top, _mm512_set1_epi32(static_cast<int>(kTopD << 16 | st.top_count)));
        st.top_count += static_cast<u32>(__builtin_popcount(top & valid));
      }
    }
    _mm512_storeu_si512(out, _mm512_maskz_compress_epi32(r, _mm512_add_epi32(found, same_before)));
    out += __builtin_popcount(r);
    for (int p = 0; p < W; ++p) {
      const __m512i b0 = transpose_pairs(p ? one_hot<1>(va, d0, c) : one_hot<0>(va, d0, c), c);
      const __m512i b1 = transpose_pairs(p ? one_hot<1>(vb, d1, c) : one_hot<0>(vb, d1, c), c);
      w16[2 * p] = _mm512_add_epi16(w16[2 * p], _mm512_popcnt_epi16(_mm512_unpacklo_epi8(b0, b1)));
      w16[2 * p + 1] = _mm512_add_epi16(w16[2 * p + 1], _mm512_popcnt_epi16(_mm512_unpackhi_epi8(b0, b1)));
    }
  };
  const std::size_t full = t0 + (t1 - t0) / 16 * 16;  // only the database's last group can be partial
  for (std::size_t g = t0; g < full; g += 16) step(g, 0xFFFF, std::false_type{});
  if (full < t1) step(full, static_cast<__mmask16>((1u << (t1 - full)) - 1), std::true_type{});
  const bool top_hit = counted() - counted_before != t1 - t0;
  for (int k = 0; k < 2 * W; ++k) _mm512_store_si512(st.w16 + 32 * k, w16[k]);
  st.n_out = static_cast<u64>(out - entries);
  return top_hit;
}

// Per-query bookkeeping of the epochs (16-bit counter spans).
struct Epochs {
  const u32* n;      // n[e * (64W + 1) + b]: items at distance b in epoch e (b = 64W: the top bin)
  const u64* first;  // first[e]: the first entry of epoch e; first[count] = the entry count
  std::size_t count;
};

// Places one query's entries (d << 16 | p, database index order) in the ranking: slot = relevant items before it
// in (distance, index) order = relevant items at smaller distances + earlier entries at its distance (running
// per-bin counts, as in the sweep); rank = items at smaller distances + items at its distance in earlier epochs
// + p + 1. Accumulates AP@k (ap_add's order: vectors start at entry indices divisible by 8, so lane l holds term
// t % 8 == l) and, when asked, writes the sorted ranks (through `placed`, one (slot, rank) pair per entry).
// Top-bin entries (kTop: the code width allows them) are placed by scalar code, in order.
template <int W, bool kAp, bool kWholeRanking, bool kRanks, bool kTop>
double place_entries(const u32* entries, u64 n_rel, const u32* n_at, const u32* r_at, int nbits, const Epochs& ep,
                     u64 k, u64* placed, u32* ranks, const Consts& c) {
  constexpr int kBins = 64 * W, kStride = kBins + 1;
  alignas(64) u32 below_r[kBins], table[kBins];
  u32 sn = 0, sr = 0;
  for (int b = 0; b < kBins; ++b) {
    table[b] = sn + 1;
    below_r[b] = sr + 1;  // slot + 1: the term's numerator
    sn += b <= nbits ? n_at[b] : 0;
    sr += b <= nbits ? r_at[b] : 0;
  }
  const u32 top_pos0 = sr + 1, top_rank0 = sn + 1;  // the top bin follows every other one
  u32 top_seen = 0;
  __m512i run32[4 * W], tab[4 * W];
  for (int j = 0; j < 4 * W; ++j) {
    run32[j] = _mm512_load_si512(below_r + 16 * j);
    tab[j] = _mm512_load_si512(table + 16 * j);
  }
  std::size_t e = 0;  // epoch of the current entries
  u64 next_epoch = ep.count > 1 ? ep.first[1] : ~u64(0);
  const __m512i lane = _mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0);
  const __m512i kv = _mm512_set1_epi64(static_cast<long long>(k ? k : ~u64(0) >> 1));
  const __m512i low16 = _mm512_set1_epi64(0xFFFF);
  __m512d acc = _mm512_setzero_pd();
  u64 hits = 0;
  __m512i cnt[W];
  for (int p = 0; p < W; ++p) cnt[p] = _mm512_setzero_si512();
  for (u64 t = 0; t < n_rel; t += 8) {
    const __mmask8 valid = tail_mask(n_rel - t);
    const __m512i ent = _mm512_cvtepu32_epi64(_mm256_maskz_loadu_epi32(valid, entries + t));
    const __m512i d = _mm512_srli_epi64(ent, 16);
    const __m512i p = _mm512_and_si512(ent, low16);
    const __mmask8 keep = kTop ? _mm512_mask_cmplt_epu64_mask(valid, d, _mm512_set1_epi64(kBins)) : valid;
    const __m512i same_before = _mm512_popcnt_epi64(_mm512_conflict_epi64(d));
    __m512i pos = _mm512_add_epi64(_mm512_add_epi64(dword_lookup<W>(run32, d), byte_lookup<W>(cnt, d)), same_before);
    __m512i rank = _mm512_add_epi64(p, dword_lookup<W>(tab, d));
    while (next_epoch < t + 8) {  // lanes from the next epoch on: its table
      for (int b = 0; b < kBins; ++b) table[b] += ep.n[e * kStride + b];
      for (int j = 0; j < 4 * W; ++j) tab[j] = _mm512_load_si512(table + 16 * j);
      ++e;
      const __mmask8 later = _mm512_cmpge_epu64_mask(lane, _mm512_set1_epi64(static_cast<long long>(next_epoch - t)));
      rank = _mm512_mask_add_epi64(rank, later, p, dword_lookup<W>(tab, d));
      next_epoch = e + 1 < ep.count ? ep.first[e + 1] : ~u64(0);
    }
    for (int q = 0; q < W; ++q)
      cnt[q] = _mm512_add_epi8(
          cnt[q], _mm512_popcnt_epi8(transpose(q ? one_hot<1>(keep, d, c) : one_hot<0>(keep, d, c), c)));
    if (t % kEntryChunk == kEntryChunk - 8)  // byte counters full: into the 32-bit ones
      for (int q = 0; q < W; ++q) {
        add_bytes_to_dwords(cnt[q], run32 + 4 * q);
        cnt[q] = _mm512_setzero_si512();
      }
    if (kTop && keep != valid) {  // rare: place the top-bin lanes, in index order
      alignas(64) u64 ps[8], rk[8], pv[8];
      _mm512_store_si512(ps, pos);
      _mm512_store_si512(rk, rank);
      _mm512_store_si512(pv, p);
      for (int l = 0; l < 8; ++l) {
        if (!((valid & ~keep) >> l & 1)) continue;
        u32 before = 0;  // top-bin items of the epochs before this entry's
        for (std::size_t x = 0; x + 1 < ep.count && ep.first[x + 1] <= t + l; ++x) before += ep.n[x * kStride + kBins];
        ps[l] = top_pos0 + top_seen++;
        rk[l] = top_rank0 + before + pv[l];
      }
      pos = _mm512_load_si512(ps);
      rank = _mm512_load_si512(rk);
    }
    if (kAp) {
      const __mmask8 in = kWholeRanking ? valid : _mm512_mask_cmple_epu64_mask(valid, rank, kv);
      acc = _mm512_mask_add_pd(acc, in, acc, _mm512_div_pd(_mm512_cvtepu64_pd(pos), _mm512_cvtepu64_pd(rank)));
      if (!kWholeRanking) hits += static_cast<u64>(__builtin_popcount(in));
    }
    if (kRanks) {  // (slot << 32 | rank), slot = pos - 1
      const __m512i slot = _mm512_sub_epi64(pos, _mm512_set1_epi64(1));
      _mm512_mask_storeu_epi64(placed + t, valid, _mm512_or_si512(_mm512_slli_epi64(slot, 32), rank));
    }
  }
  if (kRanks)
    for (u64 t = 0; t < n_rel; ++t) ranks[placed[t] >> 32] = static_cast<u32>(placed[t]);
  if (kWholeRanking) hits = n_rel;
  alignas(64) double lanes[8];
  _mm512_store_pd(lanes, acc);
  return hits ? combine_ap_lanes(lanes) / static_cast<double>(hits) : 0.0;
}

template <int W>
double place_entries(const u32* entries, u64 n_rel, const u32* n_at, const u32* r_at, int nbits, const Epochs& ep,
                     const RankRequest& req, u64* placed, u32* ranks, const Consts& c) {
  const bool top = nbits == 64 * W;
  auto run = [&](auto ap, auto whole, auto rk, auto tp) {
    return place_entries<W, decltype(ap)::value, decltype(whole)::value, decltype(rk)::value, decltype(tp)::value>(
        entries, n_rel, n_at, r_at, nbits, ep, req.k, placed, ranks, c);
  };
  using T = std::true_type;
  using F = std::false_type;
  if (req.ranks && req.ap) return top ? run(T{}, F{}, T{}, T{}) : run(T{}, F{}, T{}, F{});
  if (req.ranks) return top ? run(F{}, F{}, T{}, T{}) : run(F{}, F{}, T{}, F{});
  if (req.k == 0) return top ? run(T{}, T{}, F{}, T{}) : run(T{}, T{}, F{}, F{});
  return top ? run(T{}, F{}, F{}, T{}) : run(T{}, F{}, F{}, F{});
}

// Histogram of the entries' distances over bins 0..64W-1 (the relevant items per distance).
template <int W>
void entry_histogram(const u32* entries, u64 n, u32* hist, const Consts& c) {
  __m512i acc[4 * W];
  for (int k = 0; k < 4 * W; ++k) acc[k] = _mm512_setzero_si512();
  for (u64 c0 = 0; c0 < n; c0 += kCountChunk) {
    const u64 ce = std::min(n, c0 + kCountChunk);
    __m512i cnt[W];
    for (int p = 0; p < W; ++p) cnt[p] = _mm512_setzero_si512();
    for (u64 t = c0; t < ce; t += 8) {
      const __mmask8 valid = tail_mask(ce - t);
      const __m512i d = _mm512_srli_epi64(_mm512_cvtepu32_epi64(_mm256_maskz_loadu_epi32(valid, entries + t)), 16);
      cnt[0] = _mm512_add_epi8(cnt[0], _mm512_popcnt_epi8(transpose(one_hot<0>(valid, d, c), c)));
      if constexpr (W == 2)
        cnt[1] = _mm512_add_epi8(cnt[1], _mm512_popcnt_epi8(transpose(one_hot<1>(valid, d, c), c)));
    }
    for (int p = 0; p < W; ++p) add_bytes_to_dwords(cnt[p], acc + 4 * p);
  }
  for (int k = 0; k < 4 * W; ++k) _mm512_storeu_si512(hist + 16 * k, acc[k]);
}

// ---------------------------------------------------------------------------------------------- driver
// Bins 0..64W-1 of a histogram, then the top bin as what is left over.
void finish_histogram(const u32* bins, int kbins, u64 total, int nbits, u32* out) {
  u64 sum = 0;
  for (int b = 0; b <= nbits && b < kbins; ++b) {
    out[b] = bins[b];
    sum += bins[b];
  }
  if (nbits == kbins) out[kbins] = static_cast<u32>(total - sum);
}

template <int W, class Rel>
void scan_counts(const ScanSet& s, std::size_t q0, int nq, ScanOutput& out) {
  const Consts c;
  const int nbins = s.nbits + 1;
  CountState<W> st[kQueryBlock];
  for (int i = 0; i < nq; ++i) {
    std::memset(&st[i], 0, sizeof(st[i]));
  }
  for (std::size_t t0 = 0; t0 < s.nb; t0 += kTile) {
    const std::size_t t1 = std::min(s.nb, t0 + kTile);
    for (int i = 0; i < nq; ++i) count_tile<W>(QueryCodes<W>(s, q0 + i), Rel(s, q0 + i), t0, t1, st[i], c);
  }
  for (int i = 0; i < nq; ++i) {
    finish_histogram(st[i].n, 64 * W, s.nb, s.nbits, &out.n_at[i * nbins]);
    finish_histogram(st[i].r, 64 * W, st[i].rel_total, s.nbits, &out.r_at[i * nbins]);
    out.n_rel[i] = st[i].rel_total;
  }
}

template <int W, class Rel>
void scan_ranks(const ScanSet& s, std::size_t q0, int nq, const RankRequest& req, ScanOutput& out) {
  const Consts c;
  const int nbins = s.nbits + 1;
  constexpr int kBins = 64 * W, kStride = kBins + 1;
  const std::size_t n_epochs = (s.nb + kEpoch - 1) / kEpoch;
  RankState<W> st[kQueryBlock];
  // Per query: items per bin of each epoch; the first entry of each epoch (and, after the last, the entry count).
  assign_zeros(out.epoch_counts, static_cast<std::size_t>(nq) * n_epochs * kStride);
  assign_zeros(out.epoch_first, static_cast<std::size_t>(nq) * (n_epochs + 1));
  auto epochs = [&](int i) {
    return Epochs{out.epoch_counts.data() + i * n_epochs * kStride, out.epoch_first.data() + i * (n_epochs + 1),
                  n_epochs};
  };
  for (int i = 0; i < nq; ++i) std::memset(st[i].w16, 0, sizeof(st[i].w16));

  for (std::size_t t0 = 0; t0 < s.nb; t0 += kTile) {
    const std::size_t t1 = std::min(s.nb, t0 + kTile);
    for (int i = 0; i < nq; ++i) {
      const QueryCodes<W> dist(s, q0 + i);
      const Rel rel(s, q0 + i);
      std::vector<u32>& ent = out.entries[i];
      const std::size_t need = st[i].n_out + (t1 - t0) + 16;  // the compressed stores write whole vectors
      if (ent.size() < need) grow_to(ent, std::min(s.nb + 16, std::max(need, 2 * ent.size())));
      if (st[i].top_seen) {  // this query meets the top bin: keep the variant that counts it
        rank_tile<W, true>(dist, rel, t0, t1, st[i], ent.data(), c);
      } else {
        const RankState<W> before = st[i];
        if (rank_tile<W, false>(dist, rel, t0, t1, st[i], ent.data(), c)) {
          st[i] = before;
          st[i].top_seen = true;
          rank_tile<W, true>(dist, rel, t0, t1, st[i], ent.data(), c);
        }
      }
      if (t1 % kEpoch == 0 || t1 == s.nb) {  // close the epoch: its counts move out
        const std::size_t e = (t1 - 1) / kEpoch;
        u32* n = out.epoch_counts.data() + (i * n_epochs + e) * kStride;
        for (int b = 0; b < kBins; ++b) n[b] = st[i].w16[b];
        n[kBins] = st[i].top_count;
        std::memset(st[i].w16, 0, sizeof(st[i].w16));
        st[i].top_count = 0;
        out.epoch_first[i * (n_epochs + 1) + e + 1] = st[i].n_out;
      }
    }
  }
  for (int i = 0; i < nq; ++i) {
    u32* n_at = &out.n_at[i * nbins];
    u32* r_at = &out.r_at[i * nbins];
    const u64 n_rel = st[i].n_out;
    out.n_rel[i] = n_rel;
    const Epochs ep = epochs(i);
    alignas(64) u32 bins[kBins] = {};
    for (std::size_t e = 0; e < n_epochs; ++e)
      for (int b = 0; b < kBins; ++b) bins[b] += ep.n[e * kStride + b];
    finish_histogram(bins, kBins, s.nb, s.nbits, n_at);
    const u32* ent = out.entries[i].data();
    entry_histogram<W>(ent, n_rel, bins, c);
    finish_histogram(bins, kBins, n_rel, s.nbits, r_at);
    if (req.ranks) {
      grow_to(out.ranks[i], n_rel);
      grow_to(out.placed, n_rel + 8);
    }
    out.ap[i] = place_entries<W>(ent, n_rel, n_at, r_at, s.nbits, ep, req, out.placed.data(), out.ranks[i].data(), c);
  }
}

template <int W, class Rel>
void scan_with(const ScanSet& s, std::size_t q0, int nq, const RankRequest& req, ScanOutput& out) {
  if (req.by_index()) scan_ranks<W, Rel>(s, q0, nq, req, out);
  else scan_counts<W, Rel>(s, q0, nq, out);
}

void scan_block(const ScanSet& s, std::size_t q0, int nq, const RankRequest& req, ScanOutput& out) {
  const std::size_t nbins = static_cast<std::size_t>(s.nbits) + 1;
  assign_zeros(out.n_at, kQueryBlock * nbins);
  assign_zeros(out.r_at, kQueryBlock * nbins);
  auto by_labels = [&](auto words) {
    constexpr int W = decltype(words)::value;
    switch (s.labels) {
      case LabelLayout::Classes: return scan_with<W, ClassLabels>(s, q0, nq, req, out);
      case LabelLayout::Classes32: return scan_with<W, Labels32<true>>(s, q0, nq, req, out);
      case LabelLayout::Words32: return scan_with<W, Labels32<false>>(s, q0, nq, req, out);
      case LabelLayout::Words:
        if (s.label_words == 1) return scan_with<W, OneWordLabels>(s, q0, nq, req, out);
        return scan_with<W, WordsLabels>(s, q0, nq, req, out);
    }
  };
  if (s.code_words == 1) by_labels(std::integral_constant<int, 1>{});
  else by_labels(std::integral_constant<int, 2>{});
}

}  // namespace

const MetricsScan& metrics_scan_avx512() {
  static const MetricsScan scan{scan_block};
  return scan;
}

}  // namespace xmhash
