#include "xmhash/throughput.hpp"

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <vector>

#if defined(__unix__) || defined(__APPLE__)
#include <time.h>
#endif

#include "xmhash/isa.hpp"
#include "xmhash/parallel.hpp"
#include "xmhash/search.hpp"
#include "xmhash/types.hpp"

namespace xmhash {

namespace {

// Seconds on the wall clock, or of this thread's CPU time when `cpu` (one thread: then the figure does not depend
// on what else the machine runs).
double now(bool cpu) {
#if defined(CLOCK_THREAD_CPUTIME_ID)
  if (cpu) {
    timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
  }
#endif
  (void)cpu;
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

double measure_throughput(const std::string& kind, std::size_t cs, int threads, double seconds) {
  if (kind != "ceiling" && kind != "scan" && kind != "cdist")
    invalid("kind must be 'ceiling', 'scan' or 'cdist', got '" + kind + "'");
  check_code_size(cs);
  if (!(seconds > 0) || !std::isfinite(seconds)) invalid("seconds must be a positive finite number");
  const bool ceiling = kind == "ceiling", scan = kind == "scan";
#if defined(XMHASH_HAVE_AVX512)
  if (ceiling && (active_isa() != Isa::Avx512 || (cs != 8 && cs != 16))) return 0;
#else
  if (ceiling) return 0;
#endif
  threads = resolve_threads(threads);
  constexpr int nq = 64;
  const std::size_t nb = 8192;  // 64 / 128 KiB for 64 / 128-bit codes: L2-resident
  std::vector<code_t> q(nq * cs), db(nb * cs);
  std::uint64_t x = 0x9E3779B97F4A7C15ull;
  auto next = [&x] {  // xorshift64: deterministic random codes
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return static_cast<code_t>(x >> 56);
  };
  for (auto& c : q) c = next();
  for (auto& c : db) c = next();
  const Kernels& kern = active_kernels();
  const std::vector<int> thresh(nq, -1 + static_cast<int>(cs * 8) / 8);  // scan: far below any random distance
  std::atomic<std::uint64_t> sink{0};
  // One pass of every query over the tile, on one thread.
  auto pass = [&](std::vector<std::uint32_t>& idx, std::vector<std::uint16_t>& dist, std::vector<dist_t>& out) {
    if (ceiling) {
#if defined(XMHASH_HAVE_AVX512)
      std::uint64_t s = 0;
      for (int g = 0; g < nq; g += kQueryBlock) s += popcount_ceiling_avx512(q.data() + g * cs, db.data(), nb, cs);
      sink += s;
#endif
    } else if (scan) {
      std::uint32_t count[nq];
      kern.scan_block(q.data(), nq, db.data(), nb, cs, thresh.data(), idx.data(), dist.data(), count, nb);
      sink += count[0];
    } else {
      kern.cdist_block(q.data(), nq, db.data(), nb, cs, out.data(), nb);
      sink += static_cast<std::uint64_t>(out[0]);
    }
  };
  const bool cpu = threads == 1;  // parallel_for runs a single thread inline, in this thread
  auto run = [&](std::size_t reps) {
    const double t0 = now(cpu);
    parallel_for(static_cast<std::size_t>(threads), threads, [&](std::size_t, int) {
      std::vector<std::uint32_t> idx(scan ? nq * nb : 0);
      std::vector<std::uint16_t> dist(scan ? nq * nb : 0);
      std::vector<dist_t> out(kind == "cdist" ? nq * nb : 0);
      for (std::size_t r = 0; r < reps; ++r) pass(idx, dist, out);
    });
    return now(cpu) - t0;
  };
  std::size_t reps = 1;
  double t = run(reps);
  while (t < seconds / 4 && reps < (std::size_t(1) << 30)) {
    reps *= 2;
    t = run(reps);
  }
  const double per = t / static_cast<double>(reps);
  reps = static_cast<std::size_t>(seconds / per) + 1;
  t = run(reps);
  return static_cast<double>(threads) * static_cast<double>(reps) * nq * static_cast<double>(nb) / t;
}

}  // namespace xmhash
