// Portable path: built with the baseline flags only, so it runs on any x86-64 (or other) CPU.
#include "xmhash/scan_generic.hpp"

namespace xmhash {
namespace {

struct ScalarDist {
  int operator()(const code_t* a, const code_t* b, std::size_t cs) const { return hamming(a, b, cs); }
};

void cdist_block(const code_t* q, int nq, const code_t* db, std::size_t nb, std::size_t cs, dist_t* out,
                 std::size_t ld) {
  generic::cdist_block(ScalarDist{}, q, nq, db, nb, cs, out, ld);
}

void scan_block(const code_t* q, int nq, const code_t* db, std::size_t nb, std::size_t cs, const int* thresh,
                std::uint32_t* idx_out, std::uint16_t* dist_out, std::uint32_t* count, std::size_t ld) {
  generic::scan_block(ScalarDist{}, q, nq, db, nb, cs, thresh, idx_out, dist_out, count, ld);
}

}  // namespace

const Kernels& kernels_scalar() {
  static const Kernels k{cdist_block, scan_block};
  return k;
}

}  // namespace xmhash
