// AVX-512 path (VPOPCNTDQ + BITALG): this translation unit alone is compiled with the AVX-512 flags (see
// CMakeLists.txt) and is only called after run-time CPU detection selected it (isa.cpp).
//
// Layouts, each one vector of distances per block of codes:
//   1, 2, 4 bytes     one code per 8/16/32-bit lane: 64/32/16 codes per VPOPCNTB/W/D
//   8, 16, 32 bytes   one code per 64-bit lane, 8 codes per block; 16- and 32-byte rows are transposed in registers
//                     (once per block, shared by the block's queries) so that vector w holds word w of 8 codes
//   other widths      re-laid word-major a slice at a time (scan_simd.hpp: pack_words), then as above
// Each database load is reused for up to 8 queries (register blocking); the threshold test is a lane-wise
// minimum over a group of blocks compared once per query, and groups with hits are rescanned afterwards, the
// hits written with compress-stores (scan_simd.hpp: scan_blocks).
#include <immintrin.h>

// GCC 12 reports its own _mm512_undefined_* placeholders inside the intrinsic headers as uninitialised.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <type_traits>

#include "xmhash/kernels.hpp"
#include "xmhash/scan_simd.hpp"

namespace xmhash {
namespace {

using Vec = __m512i;
using V = Vec;
using simd::code_word;

// ---- one code per 8/16/32-bit lane
template <int CS>
struct Narrow {
  static constexpr bool kPacked = false, kIdentity = true, kCompressEmit = false, kWordOuter = false;
  static constexpr int kLanes = 64 / CS, kGroup = 4, kQueries = kQueryBlock;
  using V = Vec;
  using Mask = std::conditional_t<CS == 1, __mmask64, std::conditional_t<CS == 2, __mmask32, __mmask16>>;
  using Elem = std::conditional_t<CS == 1, std::uint8_t, std::conditional_t<CS == 2, std::uint16_t, std::uint32_t>>;
  struct Block {
    V x;
  };
  std::size_t block_bytes = 64;
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
    if constexpr (CS == 1) q[i] = _mm512_set1_epi8(static_cast<char>(e));
    if constexpr (CS == 2) q[i] = _mm512_set1_epi16(static_cast<short>(e));
    if constexpr (CS == 4) q[i] = _mm512_set1_epi32(static_cast<int>(e));
  }
  void load(const code_t* p, Block& b) const { b.x = _mm512_loadu_si512(p); }
  V dist(const Block& b, int i) const {
    const V x = _mm512_xor_si512(b.x, q[i]);
    if constexpr (CS == 1) return _mm512_popcnt_epi8(x);
    if constexpr (CS == 2) return _mm512_popcnt_epi16(x);
    if constexpr (CS == 4) return _mm512_popcnt_epi32(x);
  }
  static V vmin(V a, V b) {
    if constexpr (CS == 1) return _mm512_min_epu8(a, b);
    if constexpr (CS == 2) return _mm512_min_epu16(a, b);
    if constexpr (CS == 4) return _mm512_min_epu32(a, b);
  }
  static V thr(int t) {
    if constexpr (CS == 1) return _mm512_set1_epi8(static_cast<char>(t));
    if constexpr (CS == 2) return _mm512_set1_epi16(static_cast<short>(t));
    if constexpr (CS == 4) return _mm512_set1_epi32(t);
  }
  static Mask le(V d, V t) {
    if constexpr (CS == 1) return _mm512_cmple_epi8_mask(d, t);
    if constexpr (CS == 2) return _mm512_cmple_epi16_mask(d, t);
    if constexpr (CS == 4) return _mm512_cmple_epi32_mask(d, t);
  }
  static void store(V d, Elem* a) { _mm512_storeu_si512(a, d); }
  static void store_i32(V d, dist_t* o) {
    if constexpr (CS == 4) {
      _mm512_storeu_si512(o, d);
    } else if constexpr (CS == 2) {
      _mm512_storeu_si512(o, _mm512_cvtepu16_epi32(_mm512_castsi512_si256(d)));
      _mm512_storeu_si512(o + 16, _mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(d, 1)));
    } else {
      _mm512_storeu_si512(o, _mm512_cvtepu8_epi32(_mm512_castsi512_si128(d)));
      _mm512_storeu_si512(o + 16, _mm512_cvtepu8_epi32(_mm512_extracti32x4_epi32(d, 1)));
      _mm512_storeu_si512(o + 32, _mm512_cvtepu8_epi32(_mm512_extracti32x4_epi32(d, 2)));
      _mm512_storeu_si512(o + 48, _mm512_cvtepu8_epi32(_mm512_extracti32x4_epi32(d, 3)));
    }
  }
};

// ---- one code per 64-bit lane, 8 codes per block: layouts giving vector w = word w of the block's codes

struct Row1 {  // 8-byte rows: already one code per lane
  static constexpr bool kPacked = false, kIdentity = true;
  static constexpr int kW = 1;
  static void load(const code_t* p, V* x) { x[0] = _mm512_loadu_si512(p); }
  static V to_code_order(V d) { return d; }
  static unsigned code_mask(unsigned m) { return m; }
};

struct Row2 {  // 16-byte rows: lanes hold codes 0,4,1,5,2,6,3,7
  static constexpr bool kPacked = false, kIdentity = false;
  static constexpr int kW = 2;
  static constexpr int kLaneOfCode[8] = {0, 2, 4, 6, 1, 3, 5, 7};
  static void load(const code_t* p, V* x) {
    const V a = _mm512_loadu_si512(p), b = _mm512_loadu_si512(p + 64);
    x[0] = _mm512_unpacklo_epi64(a, b);
    x[1] = _mm512_unpackhi_epi64(a, b);
  }
  static V to_code_order(V d) { return _mm512_permutexvar_epi64(_mm512_setr_epi64(0, 2, 4, 6, 1, 3, 5, 7), d); }
  static unsigned code_mask(unsigned m) { return _pext_u32(m, 0x55) | (_pext_u32(m, 0xAA) << 4); }
};

struct Row4 {  // 32-byte rows: lanes hold codes 0,2,1,3,4,6,5,7
  static constexpr bool kPacked = false, kIdentity = false;
  static constexpr int kW = 4;
  static constexpr int kLaneOfCode[8] = {0, 2, 1, 3, 4, 6, 5, 7};
  static void load(const code_t* p, V* x) {
    const V r0 = _mm512_loadu_si512(p), r1 = _mm512_loadu_si512(p + 64);
    const V r2 = _mm512_loadu_si512(p + 128), r3 = _mm512_loadu_si512(p + 192);
    const V lo01 = _mm512_unpacklo_epi64(r0, r1), hi01 = _mm512_unpackhi_epi64(r0, r1);
    const V lo23 = _mm512_unpacklo_epi64(r2, r3), hi23 = _mm512_unpackhi_epi64(r2, r3);
    x[0] = _mm512_shuffle_i64x2(lo01, lo23, 0x88);
    x[1] = _mm512_shuffle_i64x2(hi01, hi23, 0x88);
    x[2] = _mm512_shuffle_i64x2(lo01, lo23, 0xDD);
    x[3] = _mm512_shuffle_i64x2(hi01, hi23, 0xDD);
  }
  static V to_code_order(V d) { return _mm512_permutexvar_epi64(_mm512_setr_epi64(0, 2, 1, 3, 4, 6, 5, 7), d); }
  static unsigned code_mask(unsigned m) {  // swap bits 1 and 2, 5 and 6
    const unsigned t = ((m >> 1) ^ (m >> 2)) & 0x11;
    return m ^ (t << 1) ^ (t << 2);
  }
};

template <int W>
struct Packed {  // pack_words layout, W words per code
  static constexpr bool kPacked = true, kIdentity = true;
  static constexpr int kW = W;
  static void load(const code_t* p, V* x) {
    for (int w = 0; w < W; ++w) x[w] = _mm512_loadu_si512(p + 64 * w);
  }
  static V to_code_order(V d) { return d; }
  static unsigned code_mask(unsigned m) { return m; }
};

// Branch-free append of the hits of one block of 8 codes (distances and mask in code order): compress the
// indices and distances, store the first popcount(m) of each.
inline std::uint32_t compress_emit(V d, unsigned m, std::size_t j0, std::uint32_t* idx, std::uint16_t* dist,
                                   std::uint32_t n) {
  const int c = __builtin_popcount(m);
  const __mmask8 keep = static_cast<__mmask8>((1u << c) - 1);
  const __m256i ids = _mm256_add_epi32(_mm256_set1_epi32(static_cast<int>(j0)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  _mm256_mask_storeu_epi32(idx + n, keep, _mm256_maskz_compress_epi32(static_cast<__mmask8>(m), ids));
  _mm_mask_storeu_epi16(dist + n, keep, _mm512_cvtepi64_epi16(_mm512_maskz_compress_epi64(static_cast<__mmask8>(m), d)));
  return n + c;
}

template <class L>
struct Words {
  static constexpr bool kPacked = L::kPacked, kIdentity = L::kIdentity, kCompressEmit = true, kWordOuter = false;
  static constexpr int kLanes = 8, kGroup = 8, kQueries = kQueryBlock, kW = L::kW;
  static constexpr const int* kLaneOfCode = [] {
    if constexpr (L::kIdentity) return static_cast<const int*>(nullptr);
    else return L::kLaneOfCode;
  }();
  using V = Vec;
  using Mask = __mmask8;
  using Elem = std::uint64_t;
  struct Block {
    V x[kW];
  };
  std::size_t block_bytes;
  V q[kQueryBlock][kW];
  std::uint64_t qs[kQueryBlock][kW];

  explicit Words(std::size_t cs) : block_bytes(kPacked ? 64 * kW : 8 * cs) {}
  void set_query(int i, const code_t* qi, std::size_t cs) {
    for (int w = 0; w < kW; ++w) {
      qs[i][w] = code_word(qi, cs, w);
      q[i][w] = _mm512_set1_epi64(static_cast<long long>(qs[i][w]));
    }
  }
  static unsigned code_mask(Mask m) { return L::code_mask(m); }
  // Distance of the group's j-th code (row-major: row j; packed: lane j % 8 of block j / 8) to query i.
  unsigned code_dist(const code_t* p, int j, int i) const {
    const code_t* c = kPacked ? p + (j / 8) * block_bytes + 8 * (j % 8) : p + j * (block_bytes / 8);
    const std::size_t step = kPacked ? 64 : 8;
    unsigned d = 0;
    for (int w = 0; w < kW; ++w) d += static_cast<unsigned>(__builtin_popcountll(simd::load_word(c + w * step) ^ qs[i][w]));
    return d;
  }
  void load(const code_t* p, Block& b) const { L::load(p, b.x); }
  V dist(const Block& b, int i) const {
    V d = _mm512_popcnt_epi64(_mm512_xor_si512(b.x[0], q[i][0]));
    for (int w = 1; w < kW; ++w) d = _mm512_add_epi64(d, _mm512_popcnt_epi64(_mm512_xor_si512(b.x[w], q[i][w])));
    return d;
  }
  // Distances are below 2^32, so the upper half of every 64-bit lane is zero and the 32-bit minimum is the 64-bit
  // one (VPMINUQ has a fraction of VPMINUD's throughput on Zen 4/5: measured 32 vs 40 G comparisons/s).
  static V vmin(V a, V b) { return _mm512_min_epu32(a, b); }
  static V thr(int t) { return _mm512_set1_epi64(t); }
  static Mask le(V d, V t) { return _mm512_cmple_epi64_mask(d, t); }
  static void store(V d, Elem* a) { _mm512_storeu_si512(a, d); }
  static void store_i32(V d, dist_t* o) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(o), _mm512_cvtepi64_epi32(L::to_code_order(d)));
  }
  static std::uint32_t emit(V d, Mask m, std::size_t j0, std::uint32_t* idx, std::uint16_t* dist, std::uint32_t n) {
    return compress_emit(L::to_code_order(d), L::code_mask(m), j0, idx, dist, n);
  }
};

// Packed layout with a run-time word count (codes wider than 64 bytes): the block stays in memory (L1); dists()
// loads each of its words once for all queries.
struct WordsAny {
  static constexpr bool kPacked = true, kIdentity = true, kCompressEmit = true, kWordOuter = true;
  static constexpr int kLanes = 8, kGroup = 8, kQueries = kQueryBlock;
  static constexpr const int* kLaneOfCode = nullptr;
  using V = Vec;
  using Mask = __mmask8;
  using Elem = std::uint64_t;
  struct Block {
    const code_t* p;
  };
  std::size_t block_bytes, words;
  const code_t* q[kQueryBlock];
  std::uint64_t last[kQueryBlock];  // zero-padded last word of each query

  explicit WordsAny(std::size_t cs) : block_bytes(64 * ((cs + 7) / 8)), words((cs + 7) / 8) {}
  static unsigned code_mask(Mask m) { return m; }
  unsigned code_dist(const code_t* p, int j, int i) const {
    const code_t* c = p + (j / 8) * block_bytes + 8 * (j % 8);
    unsigned d = 0;
    for (std::size_t w = 0; w + 1 < words; ++w)
      d += static_cast<unsigned>(__builtin_popcountll(simd::load_word(c + 64 * w) ^ simd::load_word(q[i] + 8 * w)));
    return d + static_cast<unsigned>(__builtin_popcountll(simd::load_word(c + 64 * (words - 1)) ^ last[i]));
  }
  void set_query(int i, const code_t* qi, std::size_t cs) {
    q[i] = qi;
    last[i] = code_word(qi, cs, words - 1);
  }
  void load(const code_t* p, Block& b) const { b.p = p; }
  V dist(const Block& b, int i) const {
    V d = _mm512_setzero_si512();
    const std::size_t n = words - 1;
    for (std::size_t w = 0; w < n; ++w) {
      const V qw = _mm512_set1_epi64(static_cast<long long>(simd::load_word(q[i] + 8 * w)));
      d = _mm512_add_epi64(d, _mm512_popcnt_epi64(_mm512_xor_si512(_mm512_loadu_si512(b.p + 64 * w), qw)));
    }
    const V ql = _mm512_set1_epi64(static_cast<long long>(last[i]));
    return _mm512_add_epi64(d, _mm512_popcnt_epi64(_mm512_xor_si512(_mm512_loadu_si512(b.p + 64 * n), ql)));
  }
  template <int NQ>
  void dists(const Block& b, V* d) const {  // each block word loaded once for all queries
    for (int i = 0; i < NQ; ++i) d[i] = _mm512_setzero_si512();
    const std::size_t n = words - 1;
    for (std::size_t w = 0; w < n; ++w) {
      const V x = _mm512_loadu_si512(b.p + 64 * w);
      for (int i = 0; i < NQ; ++i) {
        const V qw = _mm512_set1_epi64(static_cast<long long>(simd::load_word(q[i] + 8 * w)));
        d[i] = _mm512_add_epi64(d[i], _mm512_popcnt_epi64(_mm512_xor_si512(x, qw)));
      }
    }
    const V x = _mm512_loadu_si512(b.p + 64 * n);
    for (int i = 0; i < NQ; ++i)
      d[i] = _mm512_add_epi64(d[i], _mm512_popcnt_epi64(_mm512_xor_si512(x, _mm512_set1_epi64(static_cast<long long>(last[i])))));
  }
  static V vmin(V a, V b) { return _mm512_min_epu32(a, b); }  // as in Words
  static V thr(int t) { return _mm512_set1_epi64(t); }
  static Mask le(V d, V t) { return _mm512_cmple_epi64_mask(d, t); }
  static void store(V d, Elem* a) { _mm512_storeu_si512(a, d); }
  static void store_i32(V d, dist_t* o) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(o), _mm512_cvtepi64_epi32(d));
  }
  static std::uint32_t emit(V d, Mask m, std::size_t j0, std::uint32_t* idx, std::uint16_t* dist, std::uint32_t n) {
    return compress_emit(d, m, j0, idx, dist, n);
  }
};

// Calls f with a default-constructed tag of the config for code width cs.
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

const Kernels& kernels_avx512() {
  static const Kernels k{cdist_block, scan_block};
  return k;
}

// The popcount ceiling: 8 queries per database load, XOR + VPOPCNTQ + add, nothing else.
std::uint64_t popcount_ceiling_avx512(const code_t* q8, const code_t* db, std::size_t nb, std::size_t cs) {
  V acc[kQueryBlock];
  for (auto& a : acc) a = _mm512_setzero_si512();
  if (cs == 8) {
    V q[kQueryBlock];
    for (int i = 0; i < kQueryBlock; ++i) q[i] = _mm512_set1_epi64(static_cast<long long>(simd::load_word(q8 + 8 * i)));
    for (std::size_t j = 0; j + 8 <= nb; j += 8) {
      const V x = _mm512_loadu_si512(db + 8 * j);
      for (int i = 0; i < kQueryBlock; ++i) acc[i] = _mm512_add_epi64(acc[i], _mm512_popcnt_epi64(_mm512_xor_si512(x, q[i])));
    }
  } else {  // 16 bytes, transposed in registers as Row2 does
    V q0[kQueryBlock], q1[kQueryBlock];
    for (int i = 0; i < kQueryBlock; ++i) {
      q0[i] = _mm512_set1_epi64(static_cast<long long>(simd::load_word(q8 + 16 * i)));
      q1[i] = _mm512_set1_epi64(static_cast<long long>(simd::load_word(q8 + 16 * i + 8)));
    }
    for (std::size_t j = 0; j + 8 <= nb; j += 8) {
      const V a = _mm512_loadu_si512(db + 16 * j), b = _mm512_loadu_si512(db + 16 * j + 64);
      const V w0 = _mm512_unpacklo_epi64(a, b), w1 = _mm512_unpackhi_epi64(a, b);
      for (int i = 0; i < kQueryBlock; ++i)
        acc[i] = _mm512_add_epi64(acc[i], _mm512_add_epi64(_mm512_popcnt_epi64(_mm512_xor_si512(w0, q0[i])),
                                                           _mm512_popcnt_epi64(_mm512_xor_si512(w1, q1[i]))));
    }
  }
  V s = acc[0];
  for (int i = 1; i < kQueryBlock; ++i) s = _mm512_add_epi64(s, acc[i]);
  return static_cast<std::uint64_t>(_mm512_reduce_add_epi64(s));
}

}  // namespace xmhash
