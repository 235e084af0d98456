// Kernel bodies written once over a distance functor, instantiated by each ISA translation unit with its own
// compiler flags. An ISA file may replace any of them with hand-written intrinsics for the hot code sizes.
#pragma once
#include "xmhash/kernels.hpp"
#include "xmhash/popcount.hpp"

namespace xmhash::generic {

template <class Dist>
void cdist_block(Dist dist, const code_t* q, int nq, const code_t* db, std::size_t nb, std::size_t cs, dist_t* out,
                 std::size_t ld) {
  for (std::size_t j = 0; j < nb; ++j) {
    const code_t* b = db + j * cs;
    for (int i = 0; i < nq; ++i) out[i * ld + j] = dist(q + i * cs, b, cs);
  }
}

template <class Dist>
void scan_block(Dist dist, const code_t* q, int nq, const code_t* db, std::size_t nb, std::size_t cs,
                const int* thresh, std::uint32_t* idx_out, std::uint16_t* dist_out, std::uint32_t* count,
                std::size_t ld) {
  for (int i = 0; i < nq; ++i) count[i] = 0;
  for (int g = 0; g < nq; g += kQueryBlock) {
    const int ge = nq - g < kQueryBlock ? nq : g + kQueryBlock;
    for (std::size_t j = 0; j < nb; ++j) {
      const code_t* b = db + j * cs;
      for (int i = g; i < ge; ++i) {
        int d = dist(q + i * cs, b, cs);
        if (d <= thresh[i]) {
          idx_out[i * ld + count[i]] = static_cast<std::uint32_t>(j);
          dist_out[i * ld + count[i]] = static_cast<std::uint16_t>(d);
          ++count[i];
        }
      }
    }
  }
}

}  // namespace xmhash::generic
