// Codes read as whole aligned words: the GPU's fast distance path (one 8- or 4-byte load per word instead of
// byte loads). Compiled by both g++ and nvcc (see hd.hpp); the CPU tests run it against hamming().
#pragma once
#include <cstddef>
#include <cstdint>

#include "xmhash/hd.hpp"
#include "xmhash/popcount.hpp"

namespace xmhash {

XMHASH_HD int popcount_word(std::uint64_t x) { return popcount64(x); }
XMHASH_HD int popcount_word(std::uint32_t x) {
#if defined(__CUDA_ARCH__)
  return __popc(x);
#else
  return __builtin_popcount(x);
#endif
}
XMHASH_HD int popcount_word(std::uint8_t x) { return popcount_word(static_cast<std::uint32_t>(x)); }

// Hamming distance of two codes of `nwords` words each. kWords > 0 fixes the count at compile time (the hot
// 64/128/256-bit cases unroll fully); kWords == 0 reads it from `nwords`.
template <int kWords, class Word>
XMHASH_HD int hamming_words(const Word* a, const Word* b, int nwords) {
  int d = 0;
  if (kWords > 0) {
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
    for (int w = 0; w < kWords; ++w) d += popcount_word(static_cast<Word>(a[w] ^ b[w]));
  } else {
    for (int w = 0; w < nwords; ++w) d += popcount_word(static_cast<Word>(a[w] ^ b[w]));
  }
  return d;
}

// Widest word (8, 4 or 1 bytes) that divides the code size and the alignment of both base addresses, so that
// every code row starts on a word boundary.
inline int code_word_bytes(std::size_t code_size, std::uintptr_t q_addr, std::uintptr_t db_addr) {
  const std::uintptr_t all = static_cast<std::uintptr_t>(code_size) | q_addr | db_addr;
  if (all % 8 == 0) return 8;
  if (all % 4 == 0) return 4;
  return 1;
}

// Calls f(WordTag<Word, kWords>{}) for the distance path a code size and word width select: 64/128/256-bit
// codes get fully unrolled 8-byte words, other sizes a loop over 8-, 4- or 1-byte words. The CUDA launchers
// and the CPU reference of the GPU selection dispatch through this same table.
template <class Word, int kWords>
struct WordTag {
  using word = Word;
  static constexpr int words = kWords;
};

template <class F>
decltype(auto) dispatch_code_words(std::size_t code_size, int word_bytes, F&& f) {
  if (word_bytes == 8) {
    switch (code_size / 8) {
      case 1: return f(WordTag<std::uint64_t, 1>{});
      case 2: return f(WordTag<std::uint64_t, 2>{});
      case 4: return f(WordTag<std::uint64_t, 4>{});
      default: return f(WordTag<std::uint64_t, 0>{});
    }
  }
  if (word_bytes == 4) return f(WordTag<std::uint32_t, 0>{});
  return f(WordTag<std::uint8_t, 0>{});
}

}  // namespace xmhash
