// The fused distance + threshold scan shared by the SIMD translation units (kernels_avx2.cpp,
// kernels_avx512.cpp). Everything here is a template over a "lane config" K that the including file defines with
// its own intrinsics inside an anonymous namespace, so every instantiation is private to that translation unit and
// compiled with its flags (no inline function with wide instructions can leak into the portable path).
//
// A lane config K describes one code layout on one ISA:
//   V, Mask, Elem         vector type, lane mask (one bit per code lane), integer type of one distance lane
//   kLanes                codes per block (one vector of distances)
//   kGroup                blocks scanned between two threshold checks (hits are rare: check seldom)
//   kIdentity             lane l holds code l of the block (else kLaneOfCode[j] is the lane of code j)
//   Block, load(p, blk)   one block of codes starting at byte p, as the vectors dist() reads
//   dist(blk, i)          distances of the block's codes to query i (set by the caller through the config)
//   vmin, thr, le         lane-wise min, threshold vector, lanes with distance <= threshold (signed: -1 selects none)
//   store(d, Elem*)       the kLanes lanes of d, in lane order
//   block_bytes           bytes between consecutive blocks
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "xmhash/types.hpp"

namespace xmhash::simd {
namespace {

// Where scan_block writes its hits (see Kernels::scan_block).
struct HitSink {
  std::uint32_t* idx;
  std::uint16_t* dist;
  std::uint32_t* count;
  std::size_t ld;
  void add(int i, std::size_t j, unsigned d) {
    const std::size_t n = count[i]++;
    idx[i * ld + n] = static_cast<std::uint32_t>(j);
    dist[i * ld + n] = static_cast<std::uint16_t>(d);
  }
};

inline std::uint64_t load_word(const code_t* p) {
  std::uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

// Word w (8 bytes, zero-padded past the end of the code) of a code of cs bytes.
inline std::uint64_t code_word(const code_t* code, std::size_t cs, std::size_t w) {
  if (8 * w + 8 <= cs) return load_word(code + 8 * w);
  std::uint64_t v = 0;
  if (8 * w >= cs) return v;
  std::memcpy(&v, code + 8 * w, cs - 8 * w);
  return v;
}

// Lays codes [0, n) out as blocks of `lanes` codes, word-major inside a block: word w of code j at
// out[((j / lanes) * words + w) * lanes + j % lanes]. Codes are zero-padded to `words` words and the last block
// with zero codes, so every block can be read with full vector loads.
inline void pack_words(const code_t* db, std::size_t n, std::size_t cs, std::size_t words, std::size_t lanes,
                       std::uint64_t* out) {
  const std::size_t nblocks = (n + lanes - 1) / lanes;
  for (std::size_t b = 0; b < nblocks; ++b) {
    std::uint64_t* blk = out + b * words * lanes;
    const std::size_t m = n - b * lanes < lanes ? n - b * lanes : lanes;
    for (std::size_t l = 0; l < m; ++l) {
      const code_t* code = db + (b * lanes + l) * cs;
      std::size_t w = 0;
      for (; 8 * w + 8 <= cs; ++w) blk[w * lanes + l] = load_word(code + 8 * w);
      for (; w < words; ++w) blk[w * lanes + l] = code_word(code, cs, w);
    }
    for (std::size_t l = m; l < lanes; ++l)
      for (std::size_t w = 0; w < words; ++w) blk[w * lanes + l] = 0;
  }
}

// Lane of the block's j-th code.
template <class K>
constexpr int lane_of(int j) {
  if constexpr (K::kIdentity)
    return j;
  else
    return K::kLaneOfCode[j];
}

// Appends the lanes of mask m (hits of query i in block b, distances d) to the sink in increasing code order.
template <class K>
void emit(const typename K::V& d, typename K::Mask m, int i, std::size_t j0, HitSink& out) {
  alignas(64) typename K::Elem lanes[K::kLanes];
  K::store(d, lanes);
  if constexpr (K::kIdentity) {
    std::uint64_t bits = static_cast<std::uint64_t>(m);
    while (bits) {
      const int l = __builtin_ctzll(bits);
      out.add(i, j0 + l, static_cast<unsigned>(lanes[l]));
      bits &= bits - 1;
    }
  } else {
    for (int j = 0; j < K::kLanes; ++j) {
      const int l = lane_of<K>(j);
      if ((static_cast<std::uint64_t>(m) >> l) & 1) out.add(i, j0 + j, static_cast<unsigned>(lanes[l]));
    }
  }
}

// Lanes holding codes 0..n-1 of a partial block.
template <class K>
typename K::Mask lane_prefix(int n) {
  typename K::Mask m = 0;
  for (int j = 0; j < n; ++j) m = static_cast<typename K::Mask>(m | (typename K::Mask(1) << lane_of<K>(j)));
  return m;
}

// Threshold scan of nq <= NQ queries (set in k) over `nblocks` blocks at db; the last block holds `last` codes
// (it is still readable as a full block). Hits are reported with code index j0 + position.
template <class K, int NQ>
void scan_blocks(const K& k, const code_t* db, std::size_t nblocks, int last, std::size_t j0, const int* thr,
                 HitSink& out) {
  using V = typename K::V;
  using Mask = typename K::Mask;
  V tv[NQ];
  for (int i = 0; i < NQ; ++i) tv[i] = K::thr(thr[i]);
  const std::size_t bb = k.block_bytes;
  const std::size_t nfull = last == K::kLanes ? nblocks : nblocks - 1;
  std::size_t b = 0;
  // Fast loop: per query, the lane-wise minimum over kGroup blocks, compared once with the threshold. Only a
  // group with a hit is scanned again, block by block and only for the queries that hit.
  for (; b + K::kGroup <= nfull; b += K::kGroup) {
    V acc[NQ];
    {
      typename K::Block blk;
      k.load(db + b * bb, blk);
      for (int i = 0; i < NQ; ++i) acc[i] = k.dist(blk, i);
    }
    for (int g = 1; g < K::kGroup; ++g) {
      typename K::Block blk;
      k.load(db + (b + g) * bb, blk);
      for (int i = 0; i < NQ; ++i) acc[i] = K::vmin(acc[i], k.dist(blk, i));
    }
    Mask any = 0;
    for (int i = 0; i < NQ; ++i) any |= K::le(acc[i], tv[i]);
    if (__builtin_expect(any != 0, 0)) {
      for (int i = 0; i < NQ; ++i) {
        if (!K::le(acc[i], tv[i])) continue;
        for (int g = 0; g < K::kGroup; ++g) {
          typename K::Block blk;
          k.load(db + (b + g) * bb, blk);
          const V d = k.dist(blk, i);
          const Mask m = K::le(d, tv[i]);
          if (m) emit<K>(d, m, i, j0 + (b + g) * K::kLanes, out);
        }
      }
    }
  }
  for (; b < nblocks; ++b) {
    typename K::Block blk;
    k.load(db + b * bb, blk);
    const Mask valid = b < nfull ? static_cast<Mask>(~Mask(0)) : lane_prefix<K>(last);
    for (int i = 0; i < NQ; ++i) {
      const V d = k.dist(blk, i);
      const Mask m = static_cast<Mask>(K::le(d, tv[i]) & valid);
      if (m) emit<K>(d, m, i, j0 + b * K::kLanes, out);
    }
  }
}

// All distances of nq queries (set in k) to the codes of `nblocks` blocks: out[i * ld + j0 + j].
template <class K, int NQ>
void cdist_blocks(const K& k, int nq, const code_t* db, std::size_t nblocks, int last, std::size_t j0, dist_t* out,
                  std::size_t ld) {
  for (std::size_t b = 0; b < nblocks; ++b) {
    typename K::Block blk;
    k.load(db + b * k.block_bytes, blk);
    const int n = b + 1 < nblocks ? K::kLanes : last;
    for (int i = 0; i < NQ && i < nq; ++i) {
      const typename K::V d = k.dist(blk, i);
      dist_t* o = out + i * ld + j0 + b * K::kLanes;
      if (n == K::kLanes) {
        K::store_i32(d, o);
      } else {
        alignas(64) typename K::Elem lanes[K::kLanes];
        K::store(d, lanes);
        for (int j = 0; j < n; ++j) o[j] = static_cast<dist_t>(lanes[lane_of<K>(j)]);
      }
    }
  }
}

// Smallest compiled query count >= nq: blocks of 3, 5, 6 or 7 queries run with idle slots (threshold -1).
inline int query_slots(int nq) { return nq <= 1 ? 1 : nq <= 2 ? 2 : nq <= 4 ? 4 : 8; }

// Row-major layouts: full blocks are read in place, the last partial block from a zero-padded copy.
constexpr std::size_t kMaxRowBlockBytes = 256;

template <class K, int NQ>
void scan_rows(const K& k, const code_t* db, std::size_t nb, std::size_t cs, const int* thr, HitSink& out) {
  const std::size_t nfull = nb / K::kLanes;
  if (nfull) scan_blocks<K, NQ>(k, db, nfull, K::kLanes, 0, thr, out);
  const int rem = static_cast<int>(nb % K::kLanes);
  if (rem) {
    alignas(64) code_t buf[kMaxRowBlockBytes] = {};
    std::memcpy(buf, db + nfull * K::kLanes * cs, rem * cs);
    scan_blocks<K, NQ>(k, buf, 1, rem, nfull * K::kLanes, thr, out);
  }
}

template <class K, int NQ>
void cdist_rows(const K& k, int nq, const code_t* db, std::size_t nb, std::size_t cs, dist_t* out, std::size_t ld) {
  const std::size_t nfull = nb / K::kLanes;
  if (nfull) cdist_blocks<K, NQ>(k, nq, db, nfull, K::kLanes, 0, out, ld);
  const int rem = static_cast<int>(nb % K::kLanes);
  if (rem) {
    alignas(64) code_t buf[kMaxRowBlockBytes] = {};
    std::memcpy(buf, db + nfull * K::kLanes * cs, rem * cs);
    cdist_blocks<K, NQ>(k, nq, buf, 1, rem, nfull * K::kLanes, out, ld);
  }
}

// Other widths: the codes are re-laid word-major (pack_words) a slice at a time into a stack buffer.
constexpr std::size_t kPackWords = 4096;  // 32 KiB: one block of the widest code (512 words x 8 lanes)

template <class K>
std::size_t pack_slice_codes(std::size_t words) {
  std::size_t blocks = kPackWords / (words * K::kLanes);
  return (blocks ? blocks : 1) * K::kLanes;
}

template <class K, int NQ>
void scan_packed(const K& k, const code_t* db, std::size_t nb, std::size_t cs, std::size_t words, const int* thr,
                 HitSink& out) {
  alignas(64) std::uint64_t buf[kPackWords];
  const std::size_t per = pack_slice_codes<K>(words);
  for (std::size_t j0 = 0; j0 < nb; j0 += per) {
    const std::size_t n = nb - j0 < per ? nb - j0 : per;
    pack_words(db + j0 * cs, n, cs, words, K::kLanes, buf);
    const std::size_t nblocks = (n + K::kLanes - 1) / K::kLanes;
    const int last = static_cast<int>(n - (nblocks - 1) * K::kLanes);
    scan_blocks<K, NQ>(k, reinterpret_cast<const code_t*>(buf), nblocks, last, j0, thr, out);
  }
}

template <class K, int NQ>
void cdist_packed(const K& k, int nq, const code_t* db, std::size_t nb, std::size_t cs, std::size_t words,
                  dist_t* out, std::size_t ld) {
  alignas(64) std::uint64_t buf[kPackWords];
  const std::size_t per = pack_slice_codes<K>(words);
  for (std::size_t j0 = 0; j0 < nb; j0 += per) {
    const std::size_t n = nb - j0 < per ? nb - j0 : per;
    pack_words(db + j0 * cs, n, cs, words, K::kLanes, buf);
    const std::size_t nblocks = (n + K::kLanes - 1) / K::kLanes;
    const int last = static_cast<int>(n - (nblocks - 1) * K::kLanes);
    cdist_blocks<K, NQ>(k, nq, reinterpret_cast<const code_t*>(buf), nblocks, last, j0, out, ld);
  }
}

// Entry points used by the ISA files: K::kPacked picks the layout, `slots` (query_slots) the query count.
template <class K, int NQ>
void scan_any(const K& k, const code_t* db, std::size_t nb, std::size_t cs, const int* thr, HitSink& out) {
  if constexpr (K::kPacked)
    scan_packed<K, NQ>(k, db, nb, cs, k.words, thr, out);
  else
    scan_rows<K, NQ>(k, db, nb, cs, thr, out);
}

template <class K, int NQ>
void cdist_any(const K& k, int nq, const code_t* db, std::size_t nb, std::size_t cs, dist_t* out, std::size_t ld) {
  if constexpr (K::kPacked)
    cdist_packed<K, NQ>(k, nq, db, nb, cs, k.words, out, ld);
  else
    cdist_rows<K, NQ>(k, nq, db, nb, cs, out, ld);
}

// Sets up config K for the queries (idle slots repeat query 0 with threshold -1) and runs the threshold scan.
template <class K>
void run_scan(const code_t* q, int nq, const code_t* db, std::size_t nb, std::size_t cs, const int* thresh,
              HitSink& out) {
  K k(cs);
  const int slots = query_slots(nq);
  int thr[kQueryBlock];
  const int nbits = static_cast<int>(cs * 8);
  for (int i = 0; i < slots; ++i) {
    k.set_query(i, q + (i < nq ? i : 0) * cs, cs);
    const int t = i < nq ? thresh[i] : -1;
    thr[i] = t < 0 ? -1 : t > nbits ? nbits : t;
  }
  switch (slots) {
    case 1: scan_any<K, 1>(k, db, nb, cs, thr, out); break;
    case 2: scan_any<K, 2>(k, db, nb, cs, thr, out); break;
    case 4: scan_any<K, 4>(k, db, nb, cs, thr, out); break;
    default: scan_any<K, 8>(k, db, nb, cs, thr, out); break;
  }
}

template <class K>
void run_cdist(const code_t* q, int nq, const code_t* db, std::size_t nb, std::size_t cs, dist_t* out,
               std::size_t ld) {
  K k(cs);
  const int slots = query_slots(nq);
  for (int i = 0; i < slots; ++i) k.set_query(i, q + (i < nq ? i : 0) * cs, cs);
  switch (slots) {
    case 1: cdist_any<K, 1>(k, nq, db, nb, cs, out, ld); break;
    case 2: cdist_any<K, 2>(k, nq, db, nb, cs, out, ld); break;
    case 4: cdist_any<K, 4>(k, nq, db, nb, cs, out, ld); break;
    default: cdist_any<K, 8>(k, nq, db, nb, cs, out, ld); break;
  }
}

}  // namespace
}  // namespace xmhash::simd
