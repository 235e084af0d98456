// AVX2 path: this translation unit alone is compiled with the AVX2 flags (see CMakeLists.txt) and is only
// called after run-time CPU detection selected it (isa.cpp).
//
// Popcount is the nibble lookup (VPSHUFB) on bytes, summed per code with VPSADBW (64-bit lanes) or
// VPMADDUBSW/VPMADDWD (16/32-bit lanes). Layouts mirror the AVX-512 file with 4 codes per block:
//   1, 2, 4 bytes     one code per 8/16/32-bit lane: 32/16/8 codes per vector
//   8, 16, 32 bytes   one code per 64-bit lane; 16- and 32-byte rows are transposed in registers
//   other widths      re-laid word-major a slice at a time (scan_simd.hpp: pack_words)
#include <immintrin.h>

#include <type_traits>

#include "xmhash/kernels.hpp"
#include "xmhash/scan_simd.hpp"

namespace xmhash {
namespace {

using Vec = __m256i;
using V = Vec;
using simd::code_word;

// Per-byte popcount by the 4-bit lookup table.
inline V popcnt_bytes(V v) {
  const V lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2,
                                 3, 3, 4);
  const V low = _mm256_set1_epi8(0x0f);
  const V lo = _mm256_shuffle_epi8(lut, _mm256_and_si256(v, low));
  const V hi = _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(v, 4), low));
  return _mm256_add_epi8(lo, hi);
}

// ---- one code per 8/16/32-bit lane
template <int CS>
struct Narrow {
  static constexpr bool kPacked = false, kIdentity = true, kCompressEmit = false, kWordOuter = false;
  static constexpr int kLanes = 32 / CS, kGroup = 4, kQueries = kQueryBlock;
  using V = Vec;
  using Mask = std::uint32_t;
  using Elem = std::conditional_t<CS == 1, std::uint8_t, std::conditional_t<CS == 2, std::uint16_t, std::uint32_t>>;
  struct Block {
    V x;
  };
  std::size_t block_bytes = 32;
  V q[kQueryBlock];
  Elem qs[kQueryBlock];

  explicit Narrow(std::size_t) {}
  static std::uint64_t code_mask(Mask m) { return m; }
  unsigned code_dist(const code_t* p, int j, int i) const {
    Elem e;
    std::memcpy(&e, p + j * CS, CS);
    return static_cast<unsigned>(__builtin_popcount(static_cast<unsigned>(e ^ qs[i])));
  }
  void set_query(int i, const code_t* qi, std::size_t) {
    Elem e;
    std::memcpy(&e, qi, CS);
    qs[i] = e;
    if constexpr (CS == 1) q[i] = _mm256_set1_epi8(static_cast<char>(e));
    if constexpr (CS == 2) q[i] = _mm256_set1_epi16(static_cast<short>(e));
    if constexpr (CS == 4) q[i] = _mm256_set1_epi32(static_cast<int>(e));
  }
  void load(const code_t* p, Block& b) const { b.x = _mm256_loadu_si256(reinterpret_cast<const V*>(p)); }
  V dist(const Block& b, int i) const {
    const V c = popcnt_bytes(_mm256_xor_si256(b.x, q[i]));
    if constexpr (CS == 1) return c;
    const V c16 = _mm256_maddubs_epi16(c, _mm256_set1_epi8(1));
    if constexpr (CS == 2) return c16;
    if constexpr (CS == 4) return _mm256_madd_epi16(c16, _mm256_set1_epi16(1));
  }
  static V vmin(V a, V b) {
    if constexpr (CS == 1) return _mm256_min_epu8(a, b);
    if constexpr (CS == 2) return _mm256_min_epu16(a, b);
    if constexpr (CS == 4) return _mm256_min_epu32(a, b);
  }
  // le(d, thr(t)) tests t + 1 > d (signed; t = -1 selects nothing).
  static V thr(int t) {
    if constexpr (CS == 1) return _mm256_set1_epi8(static_cast<char>(t + 1));
    if constexpr (CS == 2) return _mm256_set1_epi16(static_cast<short>(t + 1));
    if constexpr (CS == 4) return _mm256_set1_epi32(t + 1);
  }
  static Mask le(V d, V t) {
    if constexpr (CS == 1) return static_cast<Mask>(_mm256_movemask_epi8(_mm256_cmpgt_epi8(t, d)));
    if constexpr (CS == 2)
      return _pext_u32(static_cast<Mask>(_mm256_movemask_epi8(_mm256_cmpgt_epi16(t, d))), 0x55555555u);
    if constexpr (CS == 4) return static_cast<Mask>(_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpgt_epi32(t, d))));
  }
  static void store(V d, Elem* a) { _mm256_storeu_si256(reinterpret_cast<V*>(a), d); }
  static void store_i32(V d, dist_t* o) {
    if constexpr (CS == 4) {
      _mm256_storeu_si256(reinterpret_cast<V*>(o), d);
    } else if constexpr (CS == 2) {
      _mm256_storeu_si256(reinterpret_cast<V*>(o), _mm256_cvtepu16_epi32(_mm256_castsi256_si128(d)));
      _mm256_storeu_si256(reinterpret_cast<V*>(o + 8), _mm256_cvtepu16_epi32(_mm256_extracti128_si256(d, 1)));
    } else {
      const __m128i lo = _mm256_castsi256_si128(d), hi = _mm256_extracti128_si256(d, 1);
      _mm256_storeu_si256(reinterpret_cast<V*>(o), _mm256_cvtepu8_epi32(lo));
      _mm256_storeu_si256(reinterpret_cast<V*>(o + 8), _mm256_cvtepu8_epi32(_mm_srli_si128(lo, 8)));
      _mm256_storeu_si256(reinterpret_cast<V*>(o + 16), _mm256_cvtepu8_epi32(hi));
      _mm256_storeu_si256(reinterpret_cast<V*>(o + 24), _mm256_cvtepu8_epi32(_mm_srli_si128(hi, 8)));
    }
  }
};

// ---- one code per 64-bit lane, 4 codes per block: layouts giving vector w = word w of the block's codes

inline V loadv(const code_t* p) { return _mm256_loadu_si256(reinterpret_cast<const V*>(p)); }

struct Row1 {  // 8-byte rows
  static constexpr bool kPacked = false, kIdentity = true;
  static constexpr int kW = 1;
  static void load(const code_t* p, V* x) { x[0] = loadv(p); }
  static unsigned code_mask(unsigned m) { return m; }
};

struct Row2 {  // 16-byte rows: lanes hold codes 0,2,1,3
  static constexpr bool kPacked = false, kIdentity = false;
  static constexpr int kW = 2;
  static constexpr int kLaneOfCode[4] = {0, 2, 1, 3};
  static void load(const code_t* p, V* x) {
    const V a = loadv(p), b = loadv(p + 32);
    x[0] = _mm256_unpacklo_epi64(a, b);
    x[1] = _mm256_unpackhi_epi64(a, b);
  }
  static unsigned code_mask(unsigned m) { return (m & 9) | ((m & 2) << 1) | ((m & 4) >> 1); }  // swap bits 1, 2
};

struct Row4 {  // 32-byte rows: a 4x4 transpose of 64-bit words
  static constexpr bool kPacked = false, kIdentity = true;
  static constexpr int kW = 4;
  static void load(const code_t* p, V* x) {
    const V r0 = loadv(p), r1 = loadv(p + 32), r2 = loadv(p + 64), r3 = loadv(p + 96);
    const V lo01 = _mm256_unpacklo_epi64(r0, r1), hi01 = _mm256_unpackhi_epi64(r0, r1);
    const V lo23 = _mm256_unpacklo_epi64(r2, r3), hi23 = _mm256_unpackhi_epi64(r2, r3);
    x[0] = _mm256_permute2x128_si256(lo01, lo23, 0x20);
    x[1] = _mm256_permute2x128_si256(hi01, hi23, 0x20);
    x[2] = _mm256_permute2x128_si256(lo01, lo23, 0x31);
    x[3] = _mm256_permute2x128_si256(hi01, hi23, 0x31);
  }
  static unsigned code_mask(unsigned m) { return m; }
};

template <int W>
struct Packed {  // pack_words layout, W words per code
  static constexpr bool kPacked = true, kIdentity = true;
  static constexpr int kW = W;
  static void load(const code_t* p, V* x) {
    for (int w = 0; w < W; ++w) x[w] = loadv(p + 32 * w);
  }
  static unsigned code_mask(unsigned m) { return m; }
};

// 64-bit-lane operations shared by the word layouts. Distances stay below 2^16, so the upper half of each lane
// is zero and the 32-bit minimum is the 64-bit one.
struct Lanes64 {
  static constexpr bool kCompressEmit = false;
  static constexpr int kLanes = 4, kGroup = 8, kQueries = kQueryBlock;
  using V = Vec;
  using Mask = std::uint32_t;
  using Elem = std::uint64_t;
  static V vmin(V a, V b) { return _mm256_min_epu32(a, b); }
  static V thr(int t) { return _mm256_set1_epi64x(t + 1); }
  static Mask le(V d, V t) { return static_cast<Mask>(_mm256_movemask_pd(_mm256_castsi256_pd(_mm256_cmpgt_epi64(t, d)))); }
  static void store(V d, Elem* a) { _mm256_storeu_si256(reinterpret_cast<V*>(a), d); }
  static V sad(V bytes) { return _mm256_sad_epu8(bytes, _mm256_setzero_si256()); }
};

template <class L>
struct Words : Lanes64 {
  static constexpr bool kPacked = L::kPacked, kIdentity = L::kIdentity, kWordOuter = false;
  static constexpr int kW = L::kW;
  static constexpr const int* kLaneOfCode = [] {
    if constexpr (L::kIdentity) return static_cast<const int*>(nullptr);
    else return L::kLaneOfCode;
  }();
  struct Block {
    V x[kW];
  };
  std::size_t block_bytes;
  V q[kQueryBlock][kW];
  std::uint64_t qs[kQueryBlock][kW];

  explicit Words(std::size_t cs) : block_bytes(kPacked ? 32 * kW : 4 * cs) {}
  void set_query(int i, const code_t* qi, std::size_t cs) {
    for (int w = 0; w < kW; ++w) {
      qs[i][w] = code_word(qi, cs, w);
      q[i][w] = _mm256_set1_epi64x(static_cast<long long>(qs[i][w]));
    }
  }
  static unsigned code_mask(Mask m) { return L::code_mask(m); }
  // Distance of the group's j-th code (row-major: row j; packed: lane j % 4 of block j / 4) to query i.
  unsigned code_dist(const code_t* p, int j, int i) const {
    const code_t* c = kPacked ? p + (j / 4) * block_bytes + 8 * (j % 4) : p + j * (block_bytes / 4);
    const std::size_t step = kPacked ? 32 : 8;
    unsigned d = 0;
    for (int w = 0; w < kW; ++w) d += static_cast<unsigned>(__builtin_popcountll(simd::load_word(c + w * step) ^ qs[i][w]));
    return d;
  }
  void load(const code_t* p, Block& b) const { L::load(p, b.x); }
  V dist(const Block& b, int i) const {  // byte counts of all words (<= 8 * kW each), one SAD
    V c = popcnt_bytes(_mm256_xor_si256(b.x[0], q[i][0]));
    for (int w = 1; w < kW; ++w) c = _mm256_add_epi8(c, popcnt_bytes(_mm256_xor_si256(b.x[w], q[i][w])));
    return sad(c);
  }
  static void store_i32(V d, dist_t* o) {
    alignas(32) Elem lanes[4];
    store(d, lanes);
    for (int j = 0; j < 4; ++j) o[j] = static_cast<dist_t>(lanes[simd::lane_of<Words>(j)]);
  }
};

// Packed layout with a run-time word count (codes wider than 64 bytes): the block stays in memory (L1); dists()
// loads each of its words once for all queries.
struct WordsAny : Lanes64 {
  static constexpr bool kPacked = true, kIdentity = true, kWordOuter = true;
  static constexpr const int* kLaneOfCode = nullptr;
  struct Block {
    const code_t* p;
  };
  std::size_t block_bytes, words;
  const code_t* q[kQueryBlock];
  std::uint64_t last[kQueryBlock];  // zero-padded last word of each query

  explicit WordsAny(std::size_t cs) : block_bytes(32 * ((cs + 7) / 8)), words((cs + 7) / 8) {}
  static unsigned code_mask(Mask m) { return m; }
  unsigned code_dist(const code_t* p, int j, int i) const {
    const code_t* c = p + (j / 4) * block_bytes + 8 * (j % 4);
    unsigned d = 0;
    for (std::size_t w = 0; w + 1 < words; ++w)
      d += static_cast<unsigned>(__builtin_popcountll(simd::load_word(c + 32 * w) ^ simd::load_word(q[i] + 8 * w)));
    return d + static_cast<unsigned>(__builtin_popcountll(simd::load_word(c + 32 * (words - 1)) ^ last[i]));
  }
  void set_query(int i, const code_t* qi, std::size_t cs) {
    q[i] = qi;
    last[i] = code_word(qi, cs, words - 1);
  }
  void load(const code_t* p, Block& b) const { b.p = p; }
  V dist(const Block& b, int i) const {
    V d = _mm256_setzero_si256(), c = _mm256_setzero_si256();
    const std::size_t n = words - 1;
    int pending = 0;  // words summed in the byte counters c (at most 31: 8 * 31 < 256)
    for (std::size_t w = 0; w < n; ++w) {
      const V qw = _mm256_set1_epi64x(static_cast<long long>(simd::load_word(q[i] + 8 * w)));
      c = _mm256_add_epi8(c, popcnt_bytes(_mm256_xor_si256(loadv(b.p + 32 * w), qw)));
      if (++pending == 31) {
        d = _mm256_add_epi64(d, sad(c));
        c = _mm256_setzero_si256();
        pending = 0;
      }
    }
    const V ql = _mm256_set1_epi64x(static_cast<long long>(last[i]));
    c = _mm256_add_epi8(c, popcnt_bytes(_mm256_xor_si256(loadv(b.p + 32 * n), ql)));
    return _mm256_add_epi64(d, sad(c));
  }
  template <int NQ>
  void dists(const Block& b, V* d) const {  // each block word loaded once for all queries
    V c[NQ];
    for (int i = 0; i < NQ; ++i) d[i] = c[i] = _mm256_setzero_si256();
    const std::size_t n = words - 1;
    int pending = 0;  // words summed in the byte counters (at most 31: 8 * 31 < 256)
    for (std::size_t w = 0; w < n; ++w) {
      const V x = loadv(b.p + 32 * w);
      for (int i = 0; i < NQ; ++i) {
        const V qw = _mm256_set1_epi64x(static_cast<long long>(simd::load_word(q[i] + 8 * w)));
        c[i] = _mm256_add_epi8(c[i], popcnt_bytes(_mm256_xor_si256(x, qw)));
      }
      if (++pending == 31) {
        for (int i = 0; i < NQ; ++i) {
          d[i] = _mm256_add_epi64(d[i], sad(c[i]));
          c[i] = _mm256_setzero_si256();
        }
        pending = 0;
      }
    }
    const V x = loadv(b.p + 32 * n);
    for (int i = 0; i < NQ; ++i) {
      c[i] = _mm256_add_epi8(c[i], popcnt_bytes(_mm256_xor_si256(x, _mm256_set1_epi64x(static_cast<long long>(last[i])))));
      d[i] = _mm256_add_epi64(d[i], sad(c[i]));
    }
  }
  static void store_i32(V d, dist_t* o) {
    alignas(32) Elem lanes[4];
    store(d, lanes);
    for (int j = 0; j < 4; ++j) o[j] = static_cast<dist_t>(lanes[j]);
  }
};

template <class F>
void with_config(std::size_t cs, F&& f) {
  switch (cs) {
    case 1: return f(static_cast<Narrow<1>*>(nullptr));
    case 2: return f(static_cast<Narrow<2>*>(nullptr));
    case 4: return f(static_cast<Narrow<4>*>(nullptr));
    case 8: return f(static_cast<Words<Row1>*>(nullptr));
    case 16: return f(static_cast<Words<Row2>*>(nullptr));
    case 32: return f(static_cast<Words<Row4>*>(nullptr));
    default: break;
  }
  switch ((cs + 7) / 8) {
    case 1: return f(static_cast<Words<Packed<1>>*>(nullptr));
    case 2: return f(static_cast<Words<Packed<2>>*>(nullptr));
    case 3: return f(static_cast<Words<Packed<3>>*>(nullptr));
    case 4: return f(static_cast<Words<Packed<4>>*>(nullptr));
    case 5: return f(static_cast<Words<Packed<5>>*>(nullptr));
    case 6: return f(static_cast<Words<Packed<6>>*>(nullptr));
    case 7: return f(static_cast<Words<Packed<7>>*>(nullptr));
    case 8: return f(static_cast<Words<Packed<8>>*>(nullptr));
    default: return f(static_cast<WordsAny*>(nullptr));
  }
}

void cdist_block(const code_t* q, int nq, const code_t* db, std::size_t nb, std::size_t cs, dist_t* out,
                 std::size_t ld) {
  if (nq <= 0 || nb == 0) return;
  with_config(cs, [&](auto* tag) {
    using K = std::remove_pointer_t<decltype(tag)>;
    simd::run_cdist<K>(q, nq, db, nb, cs, out, ld);
  });
}

void scan_block(const code_t* q, int nq, const code_t* db, std::size_t nb, std::size_t cs, const int* thresh,
                std::uint32_t* idx_out, std::uint16_t* dist_out, std::uint32_t* count, std::size_t ld) {
  for (int i = 0; i < nq; ++i) count[i] = 0;
  if (nq <= 0 || nb == 0) return;
  with_config(cs, [&](auto* tag) {
    using K = std::remove_pointer_t<decltype(tag)>;
    simd::run_scan<K>(q, nq, db, nb, cs, thresh, simd::HitSink{idx_out, dist_out, count, ld});
  });
}

}  // namespace

const Kernels& kernels_avx2() {
  static const Kernels k{cdist_block, scan_block};
  return k;
}

}  // namespace xmhash
