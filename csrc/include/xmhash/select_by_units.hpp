// A sequential CPU model of the GPU's exact selection (topk_select.hpp): the same plan, distance path
// (code_words.hpp) and count / scan / fill steps, one unit after another. It exists so that the CPU tests
// check, against the engine, the logic the CUDA kernels run; it is not a fast path.
#pragma once
#include <cstddef>

#include "xmhash/search.hpp"
#include "xmhash/types.hpp"

namespace xmhash {

// Every database code with distance <= limit, at most k per query (k == 0: all), each query's slice in
// (distance, index) order; each query's database is cut into about `units_per_query` units of at least
// `min_chunk` codes (0: the GPU's minimum, min_select_chunk).
RangeResultData select_by_units(const code_t* q, std::size_t nq, const code_t* db, std::size_t nb,
                                std::size_t code_size, int limit, std::size_t k, std::size_t units_per_query,
                                std::size_t min_chunk = 0);

}  // namespace xmhash
