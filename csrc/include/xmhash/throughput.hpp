// Throughput probes for the benchmark (bench/bench_search.py), not part of the search API: comparisons per
// second of the popcount ceiling loop and of the active scan kernel, on the same L2-resident tile of random
// codes, 64 queries, one tile per thread.
#pragma once
#include <cstddef>
#include <string>

namespace xmhash {

// kind "ceiling": XOR + VPOPCNTQ + add, each database load reused for 8 queries, nothing else (AVX-512 builds
// on AVX-512 CPUs only; code_size 8 or 16). kind "scan": Kernels::scan_block of the active ISA with a threshold
// that selects nothing (the fused distance + threshold test of k-NN and radius search). kind "cdist":
// Kernels::cdist_block (distances written out). Runs for about `seconds`; returns comparisons per second.
double measure_throughput(const std::string& kind, std::size_t code_size, int threads, double seconds);

}  // namespace xmhash
