// A sequential CPU model of the CUDA pairwise loss (cuda/pairwise.cu): the same plan, block schedule and
// per-thread phases (pairwise_tiles.hpp), with the threads of a block run one after another between barriers,
// then the same slot and loss sums. It exists so that the CPU tests check, against the CPU kernel and the torch
// reference, the code the GPU runs; it is not a fast path.
#pragma once
#include <cstddef>

#include "xmhash/pairwise.hpp"
#include "xmhash/pairwise_tiles.hpp"
#include "xmhash/types.hpp"

namespace xmhash {

struct PairwiseTilesModelResult {
  double loss;                        // rounded to T, as the GPU returns it
  std::size_t i_groups, j_groups;     // the plan's cut (blocks = i_groups x j_groups)
};

// As pairwise_loss() (options.threads is ignored), with the plan's limits as parameters so that tests can force
// many slots on small inputs. grad_a / grad_b are written when not null.
template <class T>
PairwiseTilesModelResult pairwise_tiles_model(const T* a, std::size_t n, const T* b, std::size_t N, std::size_t d,
                                              const code_t* labels_a, const code_t* labels_b,
                                              std::size_t label_bytes, const PairwiseOptions& options, T* grad_a,
                                              T* grad_b,
                                              std::size_t target_blocks = pairwise_tiles::kTargetBlocks,
                                              std::size_t slot_budget_bytes = pairwise_tiles::kSlotBudgetBytes);

}  // namespace xmhash
