// AVX2 path: this translation unit alone is compiled with the AVX2 flags (see CMakeLists.txt) and is only
// called after run-time CPU detection selected it (isa.cpp).
#include "xmhash/scan_generic.hpp"

namespace xmhash {
namespace {

struct Dist {
  int operator()(const code_t* a, const code_t* b, std::size_t cs) const { return hamming(a, b, cs); }
};

void cdist_block(const code_t* q, int nq, const code_t* db, std::size_t nb, std::size_t cs, dist_t* out,
                 std::size_t ld) {
  generic::cdist_block(Dist{}, q, nq, db, nb, cs, out, ld);
}

void scan_block(const code_t* q, int nq, const code_t* db, std::size_t nb, std::size_t cs, const int* thresh,
                std::uint32_t* idx_out, std::uint16_t* dist_out, std::uint32_t* count, std::size_t ld) {
  generic::scan_block(Dist{}, q, nq, db, nb, cs, thresh, idx_out, dist_out, count, ld);
}

}  // namespace

const Kernels& kernels_avx2() {
  static const Kernels k{cdist_block, scan_block};
  return k;
}

}  // namespace xmhash
