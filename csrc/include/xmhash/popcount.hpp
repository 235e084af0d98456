// Portable per-element Hamming logic, compiled by both g++ and nvcc (see hd.hpp).
#pragma once
#include <cstring>

#include "xmhash/hd.hpp"
#include "xmhash/types.hpp"

#if defined(__CUDA_ARCH__)  // device pass of nvcc; the host pass uses the compiler builtin
#define XMHASH_POPCNT64(x) __popcll(x)
#else
#define XMHASH_POPCNT64(x) __builtin_popcountll(x)
#endif

namespace xmhash {

XMHASH_HD int popcount64(std::uint64_t x) { return XMHASH_POPCNT64(x); }

// Loads 8 bytes without alignment or aliasing assumptions (codes are byte arrays).
XMHASH_HD std::uint64_t load_u64(const code_t* p) {
  std::uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

// Hamming distance between two codes of `code_size` bytes: 8-byte words, then the tail bytes.
XMHASH_HD int hamming(const code_t* a, const code_t* b, std::size_t code_size) {
  int d = 0;
  std::size_t i = 0;
  for (; i + 8 <= code_size; i += 8) d += popcount64(load_u64(a + i) ^ load_u64(b + i));
  for (; i < code_size; ++i) d += popcount64(static_cast<std::uint64_t>(a[i] ^ b[i]));
  return d;
}

// True when two packed label rows share at least one class: the relevance rule of cross-modal retrieval.
XMHASH_HD bool shares_label(const code_t* a, const code_t* b, std::size_t label_bytes) {
  std::size_t i = 0;
  for (; i + 8 <= label_bytes; i += 8)
    if (load_u64(a + i) & load_u64(b + i)) return true;
  for (; i < label_bytes; ++i)
    if (a[i] & b[i]) return true;
  return false;
}

}  // namespace xmhash
