// The fused distance + threshold scan shared by the SIMD translation units (kernels_avx2.cpp,
// kernels_avx512.cpp). Everything here is a template over a "lane config" K that the including file defines with
// its own intrinsics inside an anonymous namespace, so every instantiation is private to that translation unit and
// compiled with its flags (no inline function with wide instructions can leak into the portable path; for the same
// reason this file uses no standard-library templates).
//
// A lane config K describes one code layout on one ISA:
//   V, Mask, Elem          vector type, lane mask (one bit per code lane), integer type of one distance lane
//   kLanes                 codes per block (one vector of distances)
//   kQueries               queries per register block: each database load is reused for all of them
//   kGroup                 blocks between two threshold checks (hits are rare: check seldom)
//   kPacked                codes are re-laid word-major (pack_words) before the scan, else read row-major in place
//   kIdentity              lane l holds code l of the block, else kLaneOfCode[j] is the lane of code j
//   K(cs), set_query(i, q, cs)  the config for code width cs, holding query i
//   Block, load(p, blk)    one block of codes at byte p, as dist() reads it; block_bytes apart
//   dist(blk, i)           distances of the block's codes to query i
//   kWordOuter, dists<NQ>  if set: distances to all NQ queries at once, each database word loaded once
//   vmin, thr(t), le(d, t) lane-wise minimum, threshold vector, lanes with d <= t (t = -1 selects none)
//   code_mask(m)           a lane mask in code order; code_dist(p, j, i): scalar distance of code j of the group
//                          at p to query i (the hit path)
//   store(d, Elem*), store_i32(d, dist_t*)  the lanes of d (lane order), the distances as int32 (code order)
//   kCompressEmit, emit    if set: a branch-free writer of a block's hits
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "xmhash/types.hpp"

namespace xmhash::simd {
namespace {

// Where scan_block writes its hits (see Kernels::scan_block): row i holds query i's hits, count[i] of them.
struct HitSink {
  std::uint32_t* idx;
  std::uint16_t* dist;
  std::uint32_t* count;
  std::size_t ld;
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
  const std::size_t tail = cs % 8;
  const std::uint64_t tail_mask = tail ? (std::uint64_t(1) << (8 * tail)) - 1 : ~std::uint64_t(0);
  const std::size_t nblocks = (n + lanes - 1) / lanes;
  for (std::size_t b = 0; b < nblocks; ++b) {
    std::uint64_t* blk = out + b * words * lanes;
    const std::size_t m = n - b * lanes < lanes ? n - b * lanes : lanes;
    for (std::size_t l = 0; l < m; ++l) {
      const std::size_t j = b * lanes + l;
      const code_t* code = db + j * cs;
      if ((n - j) * cs >= 8 * words) {  // the last word's 8-byte load stays inside the slice: load and mask
        for (std::size_t w = 0; w < words; ++w) blk[w * lanes + l] = load_word(code + 8 * w);
        blk[(words - 1) * lanes + l] &= tail_mask;
      } else {
        for (std::size_t w = 0; w < words; ++w) blk[w * lanes + l] = code_word(code, cs, w);
      }
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

// Writes the lanes of mask m (hits in the block whose first code is j0, distances d) at idx[n..], dist[n..] in
// increasing code order; returns the new count. A config may provide its own branch-free version (compress).
template <class K>
std::uint32_t emit(const typename K::V& d, typename K::Mask m, std::size_t j0, std::uint32_t* idx,
                   std::uint16_t* dist, std::uint32_t n) {
  if constexpr (K::kCompressEmit) {
    return K::emit(d, m, j0, idx, dist, n);
  } else {
    alignas(64) typename K::Elem lanes[K::kLanes];
    K::store(d, lanes);
    if constexpr (K::kIdentity) {
      std::uint64_t bits = static_cast<std::uint64_t>(m);
      while (bits) {
        const int l = __builtin_ctzll(bits);
        idx[n] = static_cast<std::uint32_t>(j0 + l);
        dist[n++] = static_cast<std::uint16_t>(lanes[l]);
        bits &= bits - 1;
      }
    } else {
      for (int j = 0; j < K::kLanes; ++j) {
        const int l = lane_of<K>(j);
        if ((static_cast<std::uint64_t>(m) >> l) & 1) {
          idx[n] = static_cast<std::uint32_t>(j0 + j);
          dist[n++] = static_cast<std::uint16_t>(lanes[l]);
        }
      }
    }
    return n;
  }
}

// Lanes holding codes 0..n-1 of a partial block.
template <class K>
typename K::Mask lane_prefix(int n) {
  typename K::Mask m = 0;
  for (int j = 0; j < n; ++j) m = static_cast<typename K::Mask>(m | (typename K::Mask(1) << lane_of<K>(j)));
  return m;
}

// The hits of query i in the kGroup blocks at p (first code j0). When a group fits a 64-bit mask: the blocks'
// masks only (no distances stored), then per hit its distance by a scalar popcount, so the cost follows the
// number of hits rather than the number of blocks.
template <class K>
__attribute__((always_inline)) inline std::uint32_t group_hits(const K& k, const code_t* p, int i,
                                                               const typename K::V& t, std::size_t j0,
                                                               const HitSink& out, int row) {
  std::uint32_t* idx = out.idx + row * out.ld;
  std::uint16_t* dist = out.dist + row * out.ld;
  std::uint32_t n = out.count[row];
  if constexpr (K::kLanes * K::kGroup <= 64) {
    std::uint64_t bits = 0;
    for (int g = 0; g < K::kGroup; ++g) {
      typename K::Block blk;
      k.load(p + g * k.block_bytes, blk);
      bits |= static_cast<std::uint64_t>(K::code_mask(K::le(k.dist(blk, i), t))) << (g * K::kLanes);
    }
    while (bits) {
      const int j = __builtin_ctzll(bits);
      bits &= bits - 1;
      idx[n] = static_cast<std::uint32_t>(j0 + j);
      dist[n++] = static_cast<std::uint16_t>(k.code_dist(p, j, i));
    }
  } else {
    for (int g = 0; g < K::kGroup; ++g) {
      typename K::Block blk;
      k.load(p + g * k.block_bytes, blk);
      const typename K::V d = k.dist(blk, i);
      const typename K::Mask m = K::le(d, t);
      if (m) n = emit<K>(d, m, j0 + g * K::kLanes, idx, dist, n);
    }
  }
  return n;
}

// Distances of one block to the NQ queries: per query (configs whose block is in registers), or all queries per
// database word (configs that stream a long block from memory: each word is loaded once for all queries).
template <class K, int NQ>
__attribute__((always_inline)) inline void all_dists(const K& k, const typename K::Block& blk, typename K::V* d) {
  if constexpr (K::kWordOuter)
    k.template dists<NQ>(blk, d);
  else
    for (int i = 0; i < NQ; ++i) d[i] = k.dist(blk, i);
}

// Groups with hits noted before they are scanned again (scan_blocks).
constexpr std::size_t kPending = 256;

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
  // Fast loop: per query, the lane-wise minimum over kGroup blocks, compared once with the threshold. A group
  // with a hit is only noted (branch-free, per query) and scanned again later, so a hit costs no mispredicted
  // branch beyond the group's.
  std::uint32_t pending[kPending];
  std::size_t np = 0;
  auto flush = [&] {
    for (std::size_t e = 0; e < np; ++e) {
      const std::size_t g0 = pending[e] / kQueryBlock;
      const int i = static_cast<int>(pending[e] % kQueryBlock);
      out.count[i] = group_hits<K>(k, db + g0 * bb, i, tv[i], j0 + g0 * K::kLanes, out, i);
    }
    np = 0;
  };
  for (; b + K::kGroup <= nfull; b += K::kGroup) {
    V acc[NQ];
    {
      typename K::Block blk;
      k.load(db + b * bb, blk);
      all_dists<K, NQ>(k, blk, acc);
    }
    for (int g = 1; g < K::kGroup; ++g) {
      typename K::Block blk;
      k.load(db + (b + g) * bb, blk);
      V d[NQ];
      all_dists<K, NQ>(k, blk, d);
      for (int i = 0; i < NQ; ++i) acc[i] = K::vmin(acc[i], d[i]);
    }
    Mask any = 0;
    for (int i = 0; i < NQ; ++i) any |= K::le(acc[i], tv[i]);
    if (__builtin_expect(any != 0, 0)) {
      for (int i = 0; i < NQ; ++i) {
        pending[np] = static_cast<std::uint32_t>(b * kQueryBlock + i);
        np += K::le(acc[i], tv[i]) != 0;
      }
      if (np + NQ > kPending) flush();
    }
  }
  flush();
  for (; b < nblocks; ++b) {
    typename K::Block blk;
    k.load(db + b * bb, blk);
    const Mask valid = b < nfull ? static_cast<Mask>(~Mask(0)) : lane_prefix<K>(last);
    V d[NQ];
    all_dists<K, NQ>(k, blk, d);
    for (int i = 0; i < NQ; ++i) {
      const Mask m = static_cast<Mask>(K::le(d[i], tv[i]) & valid);
      if (m)
        out.count[i] = emit<K>(d[i], m, j0 + b * K::kLanes, out.idx + i * out.ld, out.dist + i * out.ld, out.count[i]);
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
    typename K::V dd[NQ];
    all_dists<K, NQ>(k, blk, dd);
    for (int i = 0; i < NQ && i < nq; ++i) {
      const typename K::V d = dd[i];
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

// Smallest compiled query count >= nq: groups of 3, 5, 6 or 7 queries run with idle slots (threshold -1).
inline int query_slots(int nq) { return nq <= 1 ? 1 : nq <= 2 ? 2 : nq <= 4 ? 4 : 8; }

// One group of at most kQueryBlock queries set up in config K (idle slots repeat the first query, threshold -1).
template <class K>
struct QueryGroup {
  K k;
  int nq, slots;
  int thr[kQueryBlock];
  QueryGroup(const code_t* q, int nq_, std::size_t cs, const int* thresh)
      : k(cs), nq(nq_), slots(query_slots(nq_) < K::kQueries ? query_slots(nq_) : K::kQueries) {
    const int nbits = static_cast<int>(cs * 8);
    for (int i = 0; i < slots; ++i) {
      k.set_query(i, q + (i < nq ? i : 0) * cs, cs);
      const int t = i < nq && thresh ? thresh[i] : -1;
      thr[i] = t < 0 ? -1 : t > nbits ? nbits : t;
    }
  }
  void scan(const code_t* db, std::size_t nblocks, int last, std::size_t j0, HitSink& out) const {
    switch (slots) {
      case 1: return scan_blocks<K, 1>(k, db, nblocks, last, j0, thr, out);
      case 2: return scan_blocks<K, 2>(k, db, nblocks, last, j0, thr, out);
      case 4: return scan_blocks<K, 4>(k, db, nblocks, last, j0, thr, out);
      default: return scan_blocks<K, K::kQueries>(k, db, nblocks, last, j0, thr, out);
    }
  }
  void cdist(const code_t* db, std::size_t nblocks, int last, std::size_t j0, dist_t* out, std::size_t ld) const {
    switch (slots) {
      case 1: return cdist_blocks<K, 1>(k, nq, db, nblocks, last, j0, out, ld);
      case 2: return cdist_blocks<K, 2>(k, nq, db, nblocks, last, j0, out, ld);
      case 4: return cdist_blocks<K, 4>(k, nq, db, nblocks, last, j0, out, ld);
      default: return cdist_blocks<K, K::kQueries>(k, nq, db, nblocks, last, j0, out, ld);
    }
  }
};

// Calls f(db, nblocks, last, j0) over the database in the layout K reads. Row-major layouts: the full blocks in
// place, then the partial last block from a zero-padded copy. Other widths: re-laid word-major (pack_words) one
// slice at a time into a stack buffer, so that the caller's query groups share each packing.
constexpr std::size_t kMaxRowBlockBytes = 256;
constexpr std::size_t kPackWords = 4096;  // 32 KiB: at least one block of the widest code (512 words x 8 lanes)

template <class K, class F>
void for_each_slice(const code_t* db, std::size_t nb, std::size_t cs, F&& f) {
  if constexpr (K::kPacked) {
    const std::size_t words = (cs + 7) / 8;
    alignas(64) std::uint64_t buf[kPackWords];
    std::size_t per = kPackWords / (words * K::kLanes);
    per = (per ? per : 1) * K::kLanes;
    for (std::size_t j0 = 0; j0 < nb; j0 += per) {
      const std::size_t n = nb - j0 < per ? nb - j0 : per;
      pack_words(db + j0 * cs, n, cs, words, K::kLanes, buf);
      const std::size_t nblocks = (n + K::kLanes - 1) / K::kLanes;
      f(reinterpret_cast<const code_t*>(buf), nblocks, static_cast<int>(n - (nblocks - 1) * K::kLanes), j0);
    }
  } else {
    const std::size_t nfull = nb / K::kLanes;
    if (nfull) f(db, nfull, static_cast<int>(K::kLanes), std::size_t(0));
    const std::size_t rem = nb % K::kLanes;
    if (rem) {
      alignas(64) code_t buf[kMaxRowBlockBytes] = {};
      std::memcpy(buf, db + nfull * K::kLanes * cs, rem * cs);
      f(static_cast<const code_t*>(buf), std::size_t(1), static_cast<int>(rem), nfull * K::kLanes);
    }
  }
}

// Kernels::scan_block for config K: every group of kQueries queries sweeps each slice while it is in cache.
template <class K>
void run_scan(const code_t* q, int nq, const code_t* db, std::size_t nb, std::size_t cs, const int* thresh,
              HitSink out) {
  if constexpr (K::kPacked) {
    for_each_slice<K>(db, nb, cs, [&](const code_t* p, std::size_t nblocks, int last, std::size_t j0) {
      for (int g = 0; g < nq; g += K::kQueries) {
        const int n = nq - g < K::kQueries ? nq - g : K::kQueries;
        HitSink o{out.idx + g * out.ld, out.dist + g * out.ld, out.count + g, out.ld};
        QueryGroup<K>(q + g * cs, n, cs, thresh + g).scan(p, nblocks, last, j0, o);
      }
    });
  } else {  // row-major: the tile is read in place, so sweep it once per query group
    for (int g = 0; g < nq; g += K::kQueries) {
      const int n = nq - g < K::kQueries ? nq - g : K::kQueries;
      HitSink o{out.idx + g * out.ld, out.dist + g * out.ld, out.count + g, out.ld};
      const QueryGroup<K> group(q + g * cs, n, cs, thresh + g);
      for_each_slice<K>(db, nb, cs, [&](const code_t* p, std::size_t nblocks, int last, std::size_t j0) {
        group.scan(p, nblocks, last, j0, o);
      });
    }
  }
}

// Kernels::cdist_block for config K.
template <class K>
void run_cdist(const code_t* q, int nq, const code_t* db, std::size_t nb, std::size_t cs, dist_t* out,
               std::size_t ld) {
  if constexpr (K::kPacked) {
    for_each_slice<K>(db, nb, cs, [&](const code_t* p, std::size_t nblocks, int last, std::size_t j0) {
      for (int g = 0; g < nq; g += K::kQueries) {
        const int n = nq - g < K::kQueries ? nq - g : K::kQueries;
        QueryGroup<K>(q + g * cs, n, cs, nullptr).cdist(p, nblocks, last, j0, out + g * ld, ld);
      }
    });
  } else {
    for (int g = 0; g < nq; g += K::kQueries) {
      const int n = nq - g < K::kQueries ? nq - g : K::kQueries;
      const QueryGroup<K> group(q + g * cs, n, cs, nullptr);
      for_each_slice<K>(db, nb, cs, [&](const code_t* p, std::size_t nblocks, int last, std::size_t j0) {
        group.cdist(p, nblocks, last, j0, out + g * ld, ld);
      });
    }
  }
}

}  // namespace
}  // namespace xmhash::simd
