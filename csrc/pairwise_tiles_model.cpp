// CPU model of the CUDA pairwise loss: see pairwise_tiles_model.hpp.
#include "xmhash/pairwise_tiles_model.hpp"

#include <cstring>
#include <memory>
#include <vector>

#include "xmhash/pairwise_tiles.hpp"

namespace xmhash {
namespace {

namespace tiles = pairwise_tiles;

// The threads of one block, run in turn: returning from each() is the barrier.
template <class T>
struct SequentialThreads {
  std::vector<tiles::ThreadState<T>> state = std::vector<tiles::ThreadState<T>>(tiles::kThreads);
  template <class Fn>
  void each(Fn&& fn) {
    for (int t = 0; t < tiles::kThreads; ++t) fn(t, state[static_cast<std::size_t>(t)]);
  }
};

// Device memory is never cleared for the kernels: garbage (all-ones bytes: NaN) stands in for it, so a read of
// anything not written first poisons the result.
template <class T>
void poison(T* p, std::size_t count) {
  std::memset(static_cast<void*>(p), 0xff, count * sizeof(T));
}

}  // namespace

template <class T>
PairwiseTilesModelResult pairwise_tiles_model(const T* a, std::size_t n, const T* b, std::size_t N, std::size_t d,
                                              const code_t* labels_a, const code_t* labels_b,
                                              std::size_t label_bytes, const PairwiseOptions& opt, T* grad_a,
                                              T* grad_b, std::size_t target_blocks, std::size_t slot_budget_bytes) {
  if (!tiles::valid_request(d, label_bytes, opt)) invalid("invalid sizes or options for the pairwise loss");
  if (n == 0 || N == 0) invalid("the model needs n >= 1 and N >= 1");
  const tiles::Plan plan = tiles::make_plan<T>(n, N, d, grad_a != nullptr, grad_b != nullptr, target_blocks,
                                               slot_budget_bytes);
  std::vector<double> workspace(tiles::ceil_div(plan.bytes, sizeof(double)));
  poison(workspace.data(), workspace.size());
  if (grad_a) poison(grad_a, n * d);
  if (grad_b) poison(grad_b, N * d);
  const tiles::Job<T> job =
      tiles::make_job(a, n, b, N, d, labels_a, labels_b, label_bytes, opt, plan, grad_a, grad_b, workspace.data());

  auto shared = std::make_unique<tiles::Shared<T>>();
  SequentialThreads<T> threads;
  for (std::size_t k = plan.blocks(); k-- > 0;) {  // blocks write disjoint memory: any order gives the same bits
    poison(shared.get(), 1);
    tiles::run_block(job, k, *shared, threads);
  }
  if (grad_a)
    for (std::size_t x = 0; x < n * d; ++x) tiles::add_slots(grad_a, job.grad_a_extra, plan.j_groups - 1, n * d, x);
  if (grad_b)
    for (std::size_t x = 0; x < N * d; ++x) tiles::add_slots(grad_b, job.grad_b_extra, plan.i_groups - 1, N * d, x);
  return {static_cast<double>(tiles::total_loss(job)), plan.i_groups, plan.j_groups};
}

template PairwiseTilesModelResult pairwise_tiles_model<float>(const float*, std::size_t, const float*, std::size_t,
                                                              std::size_t, const code_t*, const code_t*,
                                                              std::size_t, const PairwiseOptions&, float*, float*,
                                                              std::size_t, std::size_t);
template PairwiseTilesModelResult pairwise_tiles_model<double>(const double*, std::size_t, const double*,
                                                               std::size_t, std::size_t, const code_t*,
                                                               const code_t*, std::size_t, const PairwiseOptions&,
                                                               double*, double*, std::size_t, std::size_t);

}  // namespace xmhash
