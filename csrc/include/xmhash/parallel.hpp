// A small persistent thread pool (no OpenMP: its runtime clashes with PyTorch's). parallel_for hands out
// task indices through an atomic counter; the calling thread works too; the first exception is rethrown.
#pragma once
#include <cstddef>
#include <functional>

namespace xmhash {

// threads <= 0 means every hardware thread (or XMHASH_NUM_THREADS when set).
int resolve_threads(int threads);

// Runs fn(task, worker) for task in [0, n_tasks) on up to `threads` workers (worker < threads).
void parallel_for(std::size_t n_tasks, int threads, const std::function<void(std::size_t, int)>& fn);

}  // namespace xmhash
