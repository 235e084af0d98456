#include "xmhash/mih.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <mutex>
#include <new>
#include <utility>

#include "xmhash/isa.hpp"
#include "xmhash/kernels.hpp"
#include "xmhash/parallel.hpp"

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace xmhash {

namespace {

// Inline copies of the codes in every table while they cost at most this many bytes per code (64-bit codes up
// to m = 32, 128-bit up to m = 16); longer codes keep ids only and gather the candidates from the database.
constexpr std::size_t kInlineBytesPerCode = 256;
// Codes verified per kernel call (bounds the per-worker buffers; larger buckets are cut into pieces).
constexpr std::uint32_t kVerifyChunk = 2048;
// Buckets prefetched ahead of their verification, and how many bytes of each (the hardware prefetcher follows
// longer runs).
constexpr std::size_t kPrefetchRuns = 4;
constexpr std::size_t kPrefetchBytes = 4096;
// Codes shorter than this many bits use the histogram selection of a k-NN query's first step.
constexpr int kMaxHist = 1024;
// Sorted probes whose directory entry is prefetched ahead of its lookup.
constexpr std::size_t kPrefetchPairs = 16;
// (query, probe) pairs sorted at once; a step with more is processed in pieces.
constexpr std::size_t kMaxPairs = std::size_t(1) << 22;
// Queries searched together (bounds the per-query state and lets every step share bucket reads).
constexpr std::size_t kBatchQueries = 4096;
// Estimated duration (ns) under which a radius search does not use the thread pool.
constexpr double kSmallSearchNs = 300e3;
// Queries method="auto" runs on the tables first to estimate the cost of the rest.
constexpr std::size_t kSampleQueries = 32;
// Results are packed as (distance << kIdBits) | id so one integer sort gives (distance, index) order.
constexpr int kIdBits = 40;
constexpr std::uint64_t kIdMask = (std::uint64_t(1) << kIdBits) - 1;
// The largest index the tables hold (local ids and bucket offsets are uint32).
constexpr std::size_t kMaxCodes = std::numeric_limits<std::uint32_t>::max();

// Large tables are probed at random, one bucket per probe: with 4 KiB pages nearly every probe also misses the
// TLB. Allocations of 2 MiB and more are therefore 2 MiB-aligned and marked for transparent huge pages.
template <class T>
struct HugePageAllocator {
  using value_type = T;
  static constexpr std::size_t kHuge = std::size_t(2) << 20;
  HugePageAllocator() = default;
  template <class U>
  HugePageAllocator(const HugePageAllocator<U>&) {}
  T* allocate(std::size_t n) {
    const std::size_t bytes = n * sizeof(T);
    if (bytes < kHuge) return static_cast<T*>(::operator new(bytes));
    const std::size_t rounded = (bytes + kHuge - 1) / kHuge * kHuge;
    void* p = std::aligned_alloc(kHuge, rounded);
    if (!p) throw std::bad_alloc();
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    madvise(p, rounded, MADV_HUGEPAGE);
#endif
    return static_cast<T*>(p);
  }
  void deallocate(T* p, std::size_t n) {
    if (n * sizeof(T) < kHuge)
      ::operator delete(p);
    else
      std::free(p);
  }
  template <class U>
  bool operator==(const HugePageAllocator<U>&) const { return true; }
  template <class U>
  bool operator!=(const HugePageAllocator<U>&) const { return false; }
};
template <class T>
using HugeVector = std::vector<T, HugePageAllocator<T>>;

std::uint64_t binomial(int n, int k) {  // saturates at UINT64_MAX
  if (k < 0 || k > n) return 0;
  k = std::min(k, n - k);
  unsigned __int128 r = 1;
  for (int j = 1; j <= k; ++j) {
    r = r * static_cast<unsigned>(n - k + j) / static_cast<unsigned>(j);
    if (r > std::numeric_limits<std::uint64_t>::max()) return std::numeric_limits<std::uint64_t>::max();
  }
  return static_cast<std::uint64_t>(r);
}

// Calls f(mask) for every len-bit mask with exactly s bits set (lexicographic in bit positions); stops when f
// returns false and then returns false.
template <class F>
bool for_each_mask(int len, int s, F&& f) {
  if (s > len || s < 0) return true;
  if (s == 0) return f(std::uint64_t(0));
  int pos[64];
  std::uint64_t mask = 0;
  for (int j = 0; j < s; ++j) {
    pos[j] = j;
    mask |= std::uint64_t(1) << j;
  }
  for (;;) {
    if (!f(mask)) return false;
    int j = s - 1;
    while (j >= 0 && pos[j] == len - s + j) --j;
    if (j < 0) return true;
    for (int l = j; l < s; ++l) mask &= ~(std::uint64_t(1) << pos[l]);
    ++pos[j];
    for (int l = j + 1; l < s; ++l) pos[l] = pos[l - 1] + 1;
    for (int l = j; l < s; ++l) mask |= std::uint64_t(1) << pos[l];
  }
}

// One substring table: the codes of a segment grouped by substring value (CSR: a bucket is a contiguous run of
// ids, increasing inside the bucket), with a direct directory for short substrings and open addressing otherwise.
struct Table {
  Substring sub;
  bool direct = true;
  HugeVector<std::uint32_t> offsets;  // direct: bucket of value v is [offsets[v], offsets[v + 1])
  struct Slot {
    std::uint64_t key;
    std::uint32_t start, len;  // len == 0: empty slot
  };
  HugeVector<Slot> slots;             // hashed: power-of-two capacity, linear probing
  int slot_shift = 63;
  std::size_t distinct = 0;
  HugeVector<std::uint32_t> ids;      // local ids in bucket order
  HugeVector<code_t> codes;           // inline copies in bucket order (empty when the segment keeps ids only)

  std::size_t hash(std::uint64_t key) const { return (key * 0x9E3779B97F4A7C15ull) >> slot_shift; }

  bool bucket(std::uint64_t key, std::uint32_t& b, std::uint32_t& e) const {
    if (direct) {
      b = offsets[key];
      e = offsets[key + 1];
      return b != e;
    }
    const std::size_t mask = slots.size() - 1;
    for (std::size_t h = hash(key);; h = (h + 1) & mask) {
      const Slot& s = slots[h];
      if (s.len == 0) return false;
      if (s.key == key) {
        b = s.start;
        e = s.start + s.len;
        return true;
      }
    }
  }

  std::size_t bytes() const {
    return offsets.capacity() * sizeof(std::uint32_t) + slots.capacity() * sizeof(Slot) +
           ids.capacity() * sizeof(std::uint32_t) + codes.capacity();
  }

  void build(Substring s, const code_t* src, std::size_t n, std::size_t cs, bool keep_codes) {
    sub = s;
    ids.assign(n, 0);
    direct = sub.len <= 16 || (sub.len <= 32 && (std::uint64_t(1) << sub.len) <= 4 * std::uint64_t(n));
    if (direct) {
      // Counting sort by value: stable, so ids stay increasing inside a bucket.
      const std::size_t nv = std::size_t(1) << sub.len;
      offsets.assign(nv + 1, 0);
      std::vector<std::uint32_t> keys(n);
      for (std::size_t i = 0; i < n; ++i) {
        keys[i] = static_cast<std::uint32_t>(substring_key(src + i * cs, cs, sub));
        ++offsets[keys[i] + 1];
      }
      for (std::size_t v = 0; v < nv; ++v) {
        distinct += offsets[v + 1] != 0;
        offsets[v + 1] += offsets[v];
      }
      for (std::size_t i = 0; i < n; ++i) ids[offsets[keys[i]]++] = static_cast<std::uint32_t>(i);
      std::memmove(offsets.data() + 1, offsets.data(), nv * sizeof(std::uint32_t));  // ends -> starts
      offsets[0] = 0;
    } else {
      std::vector<std::pair<std::uint64_t, std::uint32_t>> kv(n);
      for (std::size_t i = 0; i < n; ++i) kv[i] = {substring_key(src + i * cs, cs, sub), static_cast<std::uint32_t>(i)};
      std::sort(kv.begin(), kv.end());
      for (std::size_t i = 0; i < n; ++i) {
        ids[i] = kv[i].second;
        distinct += i == 0 || kv[i].first != kv[i - 1].first;
      }
      int bits = 4;
      while ((std::size_t(1) << bits) < 2 * distinct) ++bits;
      slots.assign(std::size_t(1) << bits, Slot{0, 0, 0});
      slot_shift = 64 - bits;
      const std::size_t mask = slots.size() - 1;
      for (std::size_t i = 0; i < n;) {
        std::size_t j = i;
        while (j < n && kv[j].first == kv[i].first) ++j;
        std::size_t h = hash(kv[i].first);
        while (slots[h].len) h = (h + 1) & mask;
        slots[h] = Slot{kv[i].first, static_cast<std::uint32_t>(i), static_cast<std::uint32_t>(j - i)};
        i = j;
      }
    }
    if (keep_codes) {
      codes.resize(n * cs);
      for (std::size_t p = 0; p < n; ++p) std::memcpy(codes.data() + p * cs, src + std::size_t(ids[p]) * cs, cs);
    }
  }
};

}  // namespace

struct MultiIndexHashing::Segment {
  std::size_t base = 0, n = 0;
  int m = 0;
  bool inline_codes = false;
  std::vector<Substring> subs;
  std::vector<Table> tables;
  std::size_t table_bytes = 0;

  void build(const code_t* db, std::size_t base_, std::size_t n_, std::size_t cs, int m_, int threads) {
    base = base_;
    n = n_;
    m = m_;
    subs = split_substrings(static_cast<int>(cs * 8), m);
    inline_codes = std::size_t(m) * cs <= kInlineBytesPerCode;
    tables.assign(m, Table{});
    parallel_for(m, threads, [&](std::size_t i, int) {
      tables[i].build(subs[i], db + base * cs, n, cs, inline_codes);
    });
    table_bytes = 0;
    for (const Table& t : tables) table_bytes += t.bytes();
  }
};

// ------------------------------------------------------------------------------------------------ substrings

void check_nbits(int nbits) {
  if (nbits <= 0 || nbits % 8 || static_cast<std::size_t>(nbits) > kMaxCodeSize * 8)
    invalid("nbits must be a positive multiple of 8 up to " + std::to_string(kMaxCodeSize * 8) + ", got " +
            std::to_string(nbits));
}

std::vector<Substring> split_substrings(int nbits, int m) {
  check_nbits(nbits);
  if (m < min_substrings(nbits) || m > max_substrings(nbits))
    invalid("m (number of substrings) must be in " + std::to_string(min_substrings(nbits)) + ".." +
            std::to_string(max_substrings(nbits)) + " for " + std::to_string(nbits) + "-bit codes, got " +
            std::to_string(m));
  std::vector<Substring> subs(m);
  int start = 0;
  for (int i = 0; i < m; ++i) {
    subs[i].start = start;
    subs[i].len = nbits / m + (i < nbits % m ? 1 : 0);
    start += subs[i].len;
  }
  return subs;
}

int min_substrings(int nbits) { return (nbits + 63) / 64; }
int max_substrings(int nbits) { return nbits; }

int auto_substrings(int nbits, std::size_t n) {
  check_nbits(nbits);
  const double logn = std::log2(static_cast<double>(std::max<std::size_t>(n, 2)));
  // Radius of the 10th nearest neighbour of a uniform random query (n * P(Binomial(nbits, 1/2) <= R) >= 10).
  int r10 = nbits;
  double log_cdf_terms = -std::numeric_limits<double>::infinity(), log_c = 0;  // log2 of C(nbits, R) / 2^nbits
  for (int r = 0; r <= nbits; ++r) {
    log_c = r == 0 ? -double(nbits) : log_c + std::log2(double(nbits - r + 1) / double(r));
    const double hi = std::max(log_cdf_terms, log_c), lo = std::min(log_cdf_terms, log_c);
    log_cdf_terms = hi + std::log2(1.0 + std::exp2(lo - hi));
    if (logn + log_cdf_terms >= std::log2(10.0)) {
      r10 = r;
      break;
    }
  }
  // Substring length. k-NN radius small against the code: tables that also serve k-NN, whose steps are shared by
  // the queries of a batch, so large buckets pay (log2(n) - 10 bits, at least 13 and at most log2(n) - 5: 64-bit
  // codes get m = 5 from 0.1M to 19M codes). Otherwise the scan answers k-NN and the tables serve radius searches:
  // log2(n) - 2 bits, about 4 codes per bucket.
  double len = logn - 2.0;
  if (r10 <= 0.28 * nbits) len = std::min(std::max(13.0, logn - 10.0), logn - 5.0);
  const int m = static_cast<int>(std::lround(nbits / std::max(4.0, len)));
  return std::clamp(m, min_substrings(nbits), max_substrings(nbits));
}

const char* method_name(SearchMethod m) {
  switch (m) {
    case SearchMethod::Flat: return "flat";
    case SearchMethod::Mih: return "mih";
    case SearchMethod::Auto: return "auto";
  }
  return "unknown";
}

SearchMethod parse_method(const std::string& name) {
  if (name == "flat") return SearchMethod::Flat;
  if (name == "mih") return SearchMethod::Mih;
  if (name == "auto") return SearchMethod::Auto;
  invalid("method must be one of 'flat', 'mih', 'auto', got '" + name + "'");
}

// ------------------------------------------------------------------------------------------------ cost model

namespace {

// Measured speeds on cache-resident random data, once per (ISA, code size) per process, so the model follows
// whichever kernels this build dispatches to: the whole scan (scan_select, what method="flat" runs, per code and
// query) and the kernel that verifies buckets, blocked (kQueryBlock queries per load) and for a single query.
struct KernelSpeed {
  double scan_ns_per_code = 0;    // scan_select as a radius search, per code per query
  double knn_ns_per_query = 0;    // scan_select as a 10-NN search: extra cost per query (filling the first tile)
  double block_ns_per_code = 0;   // scan_block with kQueryBlock queries, per code per query
  double verify_ns_per_code = 0;  // scan_block with one query, per code
};

KernelSpeed measure_kernel(const Kernels& kern, std::size_t cs) {
  const std::size_t n = std::max<std::size_t>(256, std::min<std::size_t>(32768, (std::size_t(512) << 10) / cs));
  constexpr std::size_t kScanQueries = 8 * kQueryBlock;
  std::vector<code_t> db(n * cs), q(kScanQueries * cs);
  std::uint64_t x = 0x9E3779B97F4A7C15ull;
  auto next = [&] {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return static_cast<code_t>(x);
  };
  for (auto& b : db) b = next();
  for (auto& b : q) b = next();
  std::vector<std::uint32_t> idx(kQueryBlock * n);
  std::vector<std::uint16_t> dist(kQueryBlock * n);
  std::uint32_t count[kQueryBlock];
  int thresh[kQueryBlock];
  for (int& t : thresh) t = 0;
  auto best_of = [&](auto&& fn, double work) {
    double best = std::numeric_limits<double>::infinity();
    fn();  // warm-up: first-touch page faults of the buffers
    for (int rep = 0; rep < 4; ++rep) {
      auto t0 = std::chrono::steady_clock::now();
      fn();
      auto t1 = std::chrono::steady_clock::now();
      best = std::min(best, std::chrono::duration<double, std::nano>(t1 - t0).count());
    }
    return best / work;
  };
  auto block = [&](int nq) {
    return [&, nq] { kern.scan_block(q.data(), nq, db.data(), n, cs, thresh, idx.data(), dist.data(), count, n); };
  };
  KernelSpeed s;
  s.block_ns_per_code = best_of(block(kQueryBlock), double(kQueryBlock) * double(n));
  s.verify_ns_per_code = best_of(block(1), double(n));
  const int nbits = static_cast<int>(cs * 8);
  s.scan_ns_per_code =
      best_of([&] { scan_select(q.data(), kScanQueries, db.data(), n, cs, 0, 0, 1); },
              double(kScanQueries) * double(n));
  const double knn = best_of([&] { scan_select(q.data(), kScanQueries, db.data(), n, cs, 10, nbits, 1); },
                             double(kScanQueries) * double(n));
  s.knn_ns_per_query = std::max(0.0, knn - s.scan_ns_per_code) * double(n);
  return s;
}

KernelSpeed kernel_speed(std::size_t cs) {
  static std::mutex mu;
  static std::map<std::pair<int, std::size_t>, KernelSpeed> cache;
  const Isa isa = active_isa();
  std::lock_guard<std::mutex> lock(mu);
  auto key = std::make_pair(static_cast<int>(isa), cs);
  auto it = cache.find(key);
  if (it == cache.end()) it = cache.emplace(key, measure_kernel(kernels_for(isa), cs)).first;
  return it->second;
}

// Cost estimates in nanoseconds. The kernel speeds are measured; the memory terms are fixed estimates for this
// class of machine (a bucket fetch that misses the last-level cache, streaming bandwidth from DRAM).
struct CostModel {
  double scan_code = 0;    // the scan (method "flat") as a radius search, per (code, query)
  double knn_query = 0;    // the scan as a k-NN search: extra cost per query
  double block_code = 0;   // kernel call with kQueryBlock queries, per (code, query)
  double verify_code = 0;  // kernel call with one query, per code
  double pair = 8;         // per (query, probe): generation, radix sort, directory lookup
  double bucket = 0;       // per distinct bucket fetched
  double byte = 0;         // per byte of bucket data fetched
  double db_byte = 0;      // per byte streamed by the scan (when the database does not fit in cache)
  double result = 30;       // per reported result (merge, k-NN selection, final sort, layout)
  double scan_result = 30;  // per result of the scan (selection, layout)

  // De-duplication check of a candidate within the threshold: one substring distance per other table.
  double check(int m) const { return 4.0 + 3.0 * (m - 1); }

  // Per-code cost of verifying a bucket against `sharing` queries (blocks of kQueryBlock share each load).
  double compare(double sharing) const {
    const double b = std::clamp(sharing, 1.0, double(kQueryBlock));
    return (verify_code + (b - 1) * block_code) / b;
  }

  // The scan of the whole database for nq queries (k > 0: k-NN) reporting `results` in all: compute, or DRAM
  // bandwidth when the database does not fit in cache (each block of kQueryBlock queries streams it once).
  double scan(std::size_t n, std::size_t cs, double nq, std::size_t k, double results) const {
    const double compute = nq * (double(n) * scan_code + (k ? knn_query : 0.0));
    const double memory = std::ceil(nq / kQueryBlock) * double(n) * double(cs) * db_byte;
    return std::max(compute, memory) + results * scan_result;
  }
};

constexpr std::size_t kCacheBytes = std::size_t(16) << 20;

CostModel make_cost_model(std::size_t n, std::size_t cs, std::size_t table_bytes) {
  const KernelSpeed ks = kernel_speed(cs);
  CostModel c;
  c.scan_code = ks.scan_ns_per_code;
  c.knn_query = ks.knn_ns_per_query;
  c.block_code = ks.block_ns_per_code;
  c.verify_code = ks.verify_ns_per_code;
  const bool tables_cached = table_bytes <= kCacheBytes;
  c.bucket = tables_cached ? 5.0 : 60.0;
  c.byte = tables_cached ? 0.01 : 0.12;
  c.db_byte = n * cs <= kCacheBytes ? 0.0 : 0.08;
  return c;
}

// ------------------------------------------------------------------------------------------------ query

using Segment = MultiIndexHashing::Segment;

// The state of one query during a batched table search.
struct QueryState {
  std::vector<std::uint64_t> found;  // packed (distance, id)
  std::vector<std::uint32_t> hist;   // found entries per distance
  int theta = 0;                     // accept candidates with d <= theta
  double cost = 0;                   // estimated ns spent on this query
  enum : std::uint8_t { kActive, kDone, kOver } status = kActive;
};

// Totals of one step over the queries of a batch (for the cost projection of method="auto").
struct StepStats {
  double active = 0, pairs = 0, candidates = 0, buckets = 0, bucket_bytes = 0, table_buckets = 0, hits = 0;
  double passed = 0, m = 0;

  StepStats& operator+=(const StepStats& o) {  // the same step of another group of queries
    active += o.active, pairs += o.pairs, candidates += o.candidates, buckets += o.buckets;
    bucket_bytes += o.bucket_bytes, hits += o.hits, passed += o.passed;
    table_buckets = std::max(table_buckets, o.table_buckets), m = std::max(m, o.m);
    return *this;
  }
};

// A run of sorted (key, query) pairs with the same key: bucket [b, e) of the table, pairs [p0, p1).
struct Run {
  std::uint32_t b, e, p0, p1;
};

struct Hit {
  std::uint32_t query;  // batch-local
  std::uint64_t packed;
};

// Buffers of the verification kernel calls, kept per thread from call to call (allocating them per search would
// cost more than a small search).
struct KernelBuffers {
  std::vector<code_t> qblock, gather;
  std::vector<std::uint32_t> rel;
  std::vector<std::uint16_t> dist;
};

KernelBuffers& kernel_buffers(std::size_t cs, bool gather) {
  static thread_local KernelBuffers b;
  if (b.qblock.size() < std::size_t(kQueryBlock) * cs) b.qblock.resize(std::size_t(kQueryBlock) * cs);
  if (b.rel.empty()) {
    b.rel.resize(std::size_t(kQueryBlock) * kVerifyChunk);
    b.dist.resize(std::size_t(kQueryBlock) * kVerifyChunk);
  }
  if (gather && b.gather.size() < std::size_t(kVerifyChunk) * cs) b.gather.resize(std::size_t(kVerifyChunk) * cs);
  return b;
}

// What one worker found during a step.
struct WorkerScratch {
  std::vector<Hit> hits;
  std::size_t passed = 0;  // candidates within the threshold (before de-duplication)
};

// Bit count without the POPCNT instruction (this file is built for the baseline ISA, where __builtin_popcountll
// becomes a library call): used by the de-duplication check on the few candidates within the threshold.
inline int bit_count(std::uint64_t x) {
  x = x - ((x >> 1) & 0x5555555555555555ull);
  x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
  x = (x + (x >> 4)) & 0x0F0F0F0F0F0F0F0Full;
  return static_cast<int>((x * 0x0101010101010101ull) >> 56);
}

// Stable LSD radix sort of packed (key << 32 | query) by the key bits; equal keys keep query order.
void sort_pairs(std::vector<std::uint64_t>& v, std::vector<std::uint64_t>& tmp, int key_bits) {
  if (v.size() < 512 || key_bits > 32) {
    std::sort(v.begin(), v.end());
    return;
  }
  const int passes = (key_bits + 10) / 11;
  const int digit = (key_bits + passes - 1) / passes;
  const std::size_t nd = std::size_t(1) << digit;
  std::vector<std::uint32_t> count(nd);
  tmp.resize(v.size());
  for (int p = 0; p < passes; ++p) {
    const int shift = 32 + p * digit;
    std::fill(count.begin(), count.end(), 0);
    for (std::uint64_t x : v) ++count[(x >> shift) & (nd - 1)];
    std::uint32_t sum = 0;
    for (auto& c : count) {
      const std::uint32_t c0 = c;
      c = sum;
      sum += c0;
    }
    for (std::uint64_t x : v) tmp[count[(x >> shift) & (nd - 1)]++] = x;
    v.swap(tmp);
  }
}

// Batched, step-synchronous table search. Every active query of the batch runs step t before any runs t + 1;
// within a step the probes of all queries are sorted by bucket, so each bucket is read once and verified against
// up to kQueryBlock queries per kernel call. A single query is the special case of a batch of one.
class Engine {
 public:
  Engine(const std::vector<const Segment*>& segs, const code_t* db, std::size_t cs, int nbits, std::size_t k,
         int radius, const Kernels& kern, const CostModel& cost, int threads)
      : segs_(segs), db_(db), cs_(cs), nbits_(nbits), k_(k), radius_(radius), kern_(kern), cost_(cost),
        threads_(threads), scratch_(threads) {
    sub_at_.push_back(0);
    for (const Segment* g : segs_) sub_at_.push_back(sub_at_.back() + g->subs.size());
    for (const Segment* g : segs_) any_gather_ |= !g->inline_codes;
  }

  // Runs queries q + idx[j] * cs (j < na) on the tables. A query whose estimated cost passes `budget` stops with
  // status kOver (its result is then meaningless). Per-step totals go to `steps` when given.
  void run(const code_t* q, const std::size_t* idx, std::size_t na, double budget, QueryState* st,
           std::vector<StepStats>* steps) {
    st_ = st;
    budget_ = budget;
    qc_.resize(na * cs_);
    for (std::size_t a = 0; a < na; ++a) std::memcpy(qc_.data() + a * cs_, q + idx[a] * cs_, cs_);
    qkeys_.resize(na * sub_at_.back());
    for (std::size_t a = 0; a < na; ++a)
      for (std::size_t g = 0; g < segs_.size(); ++g)
        for (std::size_t i = 0; i < segs_[g]->subs.size(); ++i)
          qkeys_[a * sub_at_.back() + sub_at_[g] + i] = substring_key(qc_.data() + a * cs_, cs_, segs_[g]->subs[i]);
    std::vector<std::uint32_t> active;
    for (std::size_t a = 0; a < na; ++a) {
      QueryState& s = st[a];
      s.found.clear();
      if (k_) s.hist.assign(static_cast<std::size_t>(nbits_) + 2, 0);
      s.theta = radius_;
      s.cost = 0;
      s.status = QueryState::kActive;
      active.push_back(static_cast<std::uint32_t>(a));
    }
    std::vector<char> exhausted(segs_.size(), 0);
    for (int t = 0; t <= radius_ && !active.empty(); ++t) {
      StepStats ss;
      ss.active = double(active.size());
      bool all_done = true;
      for (std::size_t g = 0; g < segs_.size(); ++g) {
        if (exhausted[g]) continue;
        step(g, t, active, ss);
        const Segment& seg = *segs_[g];
        // Every value of one substring visited: every code of the segment has been seen.
        if (t / seg.m >= seg.subs[static_cast<std::size_t>(t % seg.m)].len) exhausted[g] = 1;
        all_done &= exhausted[g] != 0;
      }
      if (steps) steps->push_back(ss);
      std::size_t w = 0;
      for (std::uint32_t a : active) {
        QueryState& s = st[a];
        if (s.status == QueryState::kOver) continue;
        bool complete = all_done || t == radius_;
        if (k_ && s.found.size() >= k_) {
          s.theta = std::min(s.theta, kth_distance(s));
          std::size_t within = 0;
          for (int d = 0; d <= t; ++d) within += s.hist[d];
          complete |= within >= k_;  // k results with d <= t, and every code with d <= t has been seen
        }
        if (complete) {
          finish(s);
        } else {
          active[w++] = a;
        }
      }
      active.resize(w);
    }
  }

  std::size_t total_pairs() const { return total_pairs_; }
  std::size_t total_candidates() const { return total_candidates_; }
  double total_cost() const { return total_cost_; }  // model estimate of everything run so far

 private:
  int kth_distance(const QueryState& s) const {
    std::size_t cum = 0;
    for (std::size_t d = 0; d < s.hist.size(); ++d) {
      cum += s.hist[d];
      if (cum >= k_) return static_cast<int>(d);
    }
    return nbits_ + 1;
  }

  void keep_k(QueryState& s) const {  // keeps the k smallest (distance, id) entries
    std::nth_element(s.found.begin(), s.found.begin() + (k_ - 1), s.found.end());
    s.found.resize(k_);
    std::fill(s.hist.begin(), s.hist.end(), 0);
    for (std::uint64_t e : s.found) ++s.hist[e >> kIdBits];
  }

  void finish(QueryState& s) const {
    if (k_ && s.found.size() > k_) keep_k(s);
    std::sort(s.found.begin(), s.found.end());
    s.status = QueryState::kDone;
  }

  // Step t on segment g for the active queries: table i = t mod m at substring distance t div m.
  void step(std::size_t g, int t, const std::vector<std::uint32_t>& active, StepStats& ss) {
    const Segment& seg = *segs_[g];
    const std::size_t i = static_cast<std::size_t>(t % seg.m);
    const int sd = t / seg.m;
    const Table& tab = seg.tables[i];
    const int len = tab.sub.len;
    ss.table_buckets += double(tab.distinct);
    ss.m = seg.m;
    pairs_.clear();
    auto flush_if_full = [&] {
      if (pairs_.size() >= kMaxPairs) {
        process(g, i, sd, ss);
        pairs_.clear();
      }
    };
    if (!tab.direct && binomial(len, sd) > tab.slots.size()) {
      // More values at this distance than occupied buckets: test the buckets instead of enumerating values.
      for (std::uint32_t a : active) {
        if (st_[a].status == QueryState::kOver) continue;
        const std::uint64_t qk = qkey(a, g, i);
        for (std::size_t h = 0; h < tab.slots.size(); ++h) {
          const Table::Slot& sl = tab.slots[h];
          if (sl.len == 0 || bit_count(sl.key ^ qk) != sd) continue;
          wide_.push_back({sl.key, a});
        }
        st_[a].cost += cost_.pair * 0.25 * double(tab.slots.size());
        if (wide_.size() >= kMaxPairs) process_wide(g, i, sd, ss);
      }
      process_wide(g, i, sd, ss);
      return;
    }
    if (!tab.direct) {
      for (std::uint32_t a : active) {
        if (st_[a].status == QueryState::kOver) continue;
        const std::uint64_t qk = qkey(a, g, i);
        for_each_mask(len, sd, [&](std::uint64_t mask) {
          wide_.push_back({qk ^ mask, a});
          if (wide_.size() >= kMaxPairs) process_wide(g, i, sd, ss);
          return true;
        });
      }
      process_wide(g, i, sd, ss);
      return;
    }
    // Direct table: the probe masks are the same for every query.
    masks_.clear();
    for_each_mask(len, sd, [&](std::uint64_t mask) {
      masks_.push_back(static_cast<std::uint32_t>(mask));
      return true;
    });
    const std::size_t nkeys = std::size_t(1) << len;
    const std::size_t per_query = masks_.size();
    std::size_t live = 0;
    for (std::uint32_t a : active) live += st_[a].status != QueryState::kOver;
    if (live * per_query * 8 >= nkeys) {
      // Dense step (most buckets probed): counting sort of the query ids by key, in groups of queries that
      // keep the pairs within kMaxPairs.
      const std::size_t group = std::max<std::size_t>(1, kMaxPairs / per_query);
      for (std::size_t a0 = 0; a0 < active.size(); a0 += group) {
        const std::size_t a1 = std::min(active.size(), a0 + group);
        count_sort(g, i, active.data() + a0, a1 - a0, nkeys, ss, sd);
      }
      return;
    }
    for (std::uint32_t a : active) {
      if (st_[a].status == QueryState::kOver) continue;
      const std::uint64_t qk = qkey(a, g, i);
      for (std::uint32_t mask : masks_) pairs_.push_back(((qk ^ mask) << 32) | a);
      flush_if_full();
    }
    if (!pairs_.empty()) process(g, i, sd, ss);
  }

  // Groups the probes of queries act[0..na) by key with one counting pass and one scatter, then verifies.
  void count_sort(std::size_t g, std::size_t i, const std::uint32_t* act, std::size_t na, std::size_t nkeys,
                  StepStats& ss, int sd) {
    const Table& tab = segs_[g]->tables[i];
    cursor_.assign(nkeys, 0);
    std::size_t np = 0;
    for (std::size_t j = 0; j < na; ++j) {
      if (st_[act[j]].status == QueryState::kOver) continue;
      const std::uint32_t qk = static_cast<std::uint32_t>(qkey(act[j], g, i));
      for (std::uint32_t mask : masks_) ++cursor_[qk ^ mask];
      np += masks_.size();
    }
    std::uint32_t sum = 0;
    for (std::size_t key = 0; key < nkeys; ++key) {
      const std::uint32_t c = cursor_[key];
      cursor_[key] = sum;
      sum += c;
    }
    queries_.resize(np);
    for (std::size_t j = 0; j < na; ++j) {
      if (st_[act[j]].status == QueryState::kOver) continue;
      const std::uint32_t qk = static_cast<std::uint32_t>(qkey(act[j], g, i));
      for (std::uint32_t mask : masks_) queries_[cursor_[qk ^ mask]++] = act[j];
    }
    // cursor_[key] is now the end of the key's pairs, i.e. the start of the next key's.
    runs_.clear();
    std::uint32_t p0 = 0;
    for (std::size_t key = 0; key < nkeys; ++key) {
      const std::uint32_t p1 = cursor_[key];
      if (p1 != p0) {
        const std::uint32_t b = tab.offsets[key], e = tab.offsets[key + 1];
        if (b != e) runs_.push_back({b, e, p0, p1});
      }
      p0 = p1;
    }
    verify_runs(g, i, sd, np, ss);
  }

  std::uint64_t qkey(std::uint32_t a, std::size_t g, std::size_t i) const {
    return qkeys_[a * sub_at_.back() + sub_at_[g] + i];
  }

  // Hashed tables: pairs of 64-bit keys, sorted with std::sort, then looked up like the packed ones.
  void process_wide(std::size_t g, std::size_t i, int sd, StepStats& ss) {
    if (wide_.empty()) return;
    std::sort(wide_.begin(), wide_.end(), [](const WidePair& x, const WidePair& y) {
      return x.key != y.key ? x.key < y.key : x.query < y.query;
    });
    const Table& tab = segs_[g]->tables[i];
    runs_.clear();
    queries_.resize(wide_.size());
    for (std::size_t p = 0; p < wide_.size();) {
      std::size_t r = p;
      while (r < wide_.size() && wide_[r].key == wide_[p].key) {
        queries_[r] = wide_[r].query;
        ++r;
      }
      std::uint32_t b, e;
      if (tab.bucket(wide_[p].key, b, e))
        runs_.push_back({b, e, static_cast<std::uint32_t>(p), static_cast<std::uint32_t>(r)});
      p = r;
    }
    const std::size_t np = wide_.size();
    wide_.clear();
    verify_runs(g, i, sd, np, ss);
  }

  // Direct tables: radix-sort the packed pairs, cut them into runs per bucket, verify.
  void process(std::size_t g, std::size_t i, int sd, StepStats& ss) {
    const Table& tab = segs_[g]->tables[i];
    sort_pairs(pairs_, tmp_, tab.sub.len);
    runs_.clear();
    queries_.resize(pairs_.size());
    for (std::size_t p = 0; p < pairs_.size();) {
      const std::uint64_t key = pairs_[p] >> 32;
      if (p + kPrefetchPairs < pairs_.size())
        __builtin_prefetch(tab.offsets.data() + (pairs_[p + kPrefetchPairs] >> 32));
      std::size_t r = p;
      while (r < pairs_.size() && (pairs_[r] >> 32) == key) {
        queries_[r] = static_cast<std::uint32_t>(pairs_[r]);
        ++r;
      }
      const std::uint32_t b = tab.offsets[key], e = tab.offsets[key + 1];
      if (b != e) runs_.push_back({b, e, static_cast<std::uint32_t>(p), static_cast<std::uint32_t>(r)});
      p = r;
    }
    verify_runs(g, i, sd, pairs_.size(), ss);
  }

  // Charges each query its share of the step, drops the queries over budget, verifies the runs in parallel and
  // merges the hits.
  void verify_runs(std::size_t g, std::size_t i, int sd, std::size_t npairs, StepStats& ss) {
    const Segment& seg = *segs_[g];
    ss.pairs += double(npairs);
    ss.buckets += double(runs_.size());
    total_pairs_ += npairs;
    const bool charge = budget_ < std::numeric_limits<double>::infinity();  // per-query costs only with a budget
    double work = 0;
    work_at_.resize(runs_.size() + 1);
    work_at_[0] = 0;
    for (std::size_t r = 0; r < runs_.size(); ++r) {
      const Run& run = runs_[r];
      const double len = run.e - run.b, nq = run.p1 - run.p0;
      const double bytes = len * double(cs_);
      ss.candidates += len * nq;
      total_candidates_ += static_cast<std::size_t>(len * nq);
      ss.bucket_bytes += bytes;
      const double run_cost = cost_.bucket + bytes * cost_.byte + len * nq * cost_.compare(nq);
      total_cost_ += run_cost;
      if (charge) {
        const double share = run_cost / nq;
        for (std::uint32_t p = run.p0; p < run.p1; ++p) st_[queries_[p]].cost += share;
      }
      work += len * std::ceil(nq / kQueryBlock) + 16;
      work_at_[r + 1] = work;
    }
    total_cost_ += double(npairs) * cost_.pair;
    if (charge) {
      for (std::size_t p = 0; p < npairs; ++p) {
        QueryState& s = st_[queries_[p]];
        s.cost += cost_.pair;
        if (s.status == QueryState::kActive && s.cost > budget_) s.status = QueryState::kOver;
      }
    }
    // Contiguous run ranges of similar work per task; small steps stay on the calling thread.
    const int threads = work < 50000 ? 1 : threads_;
    const std::size_t ntasks = threads == 1 ? 1 : std::size_t(threads) * 4;
    std::vector<std::size_t> cut(ntasks + 1, runs_.size());
    cut[0] = 0;
    for (std::size_t c = 1; c < ntasks; ++c)
      cut[c] = static_cast<std::size_t>(
          std::lower_bound(work_at_.begin(), work_at_.end(), work * double(c) / double(ntasks)) - work_at_.begin());
    for (WorkerScratch& w : scratch_) w.hits.clear(), w.passed = 0;
    parallel_for(ntasks, threads, [&](std::size_t c, int w) {
      WorkerScratch& ws = scratch_[w];
      KernelBuffers& kb = kernel_buffers(cs_, any_gather_);
      const std::size_t first = ws.hits.size();
      for (std::size_t r = cut[c]; r < cut[c + 1]; ++r) {
        if (r + kPrefetchRuns < cut[c + 1]) prefetch_run(seg, i, runs_[r + kPrefetchRuns]);
        verify_run(seg, g, i, sd, runs_[r], ws, kb);
      }
      const std::uint32_t* ids = seg.tables[i].ids.data();
      for (std::size_t h = first; h < ws.hits.size(); ++h) {
        std::uint64_t& e = ws.hits[h].packed;
        e = (e & ~kIdMask) | (seg.base + ids[e & kIdMask]);
      }
    });
    for (WorkerScratch& ws : scratch_) {
      ss.hits += double(ws.hits.size());
      ss.passed += double(ws.passed);
      total_cost_ += double(ws.hits.size()) * cost_.result + double(ws.passed) * cost_.check(seg.m);
      for (const Hit& h : ws.hits) {
        QueryState& s = st_[h.query];
        s.found.push_back(h.packed);
        s.cost += cost_.result;
        if (k_) {
          ++s.hist[h.packed >> kIdBits];
          if (s.found.size() >= 2 * k_ + 64) keep_k(s);
        }
      }
    }
  }

  void prefetch_run(const Segment& seg, std::size_t i, const Run& run) const {
    const Table& t = seg.tables[i];
    if (seg.inline_codes) {
      const code_t* p = t.codes.data() + std::size_t(run.b) * cs_;
      const std::size_t bytes = std::min<std::size_t>(std::size_t(run.e - run.b) * cs_, kPrefetchBytes);
      for (std::size_t off = 0; off < bytes; off += 64) __builtin_prefetch(p + off);
    } else {
      __builtin_prefetch(t.ids.data() + run.b);
    }
  }

  // Verifies bucket [b, e) against the run's queries, kQueryBlock at a time, and records the new hits.
  void verify_run(const Segment& seg, std::size_t g, std::size_t i, int sd, const Run& run, WorkerScratch& ws,
                  KernelBuffers& kb) {
    const Table& t = seg.tables[i];
    std::uint32_t block[kQueryBlock];
    int thresh[kQueryBlock];
    std::uint32_t count[kQueryBlock];
    for (std::uint32_t b = run.b; b < run.e; b += kVerifyChunk) {
      const std::uint32_t len = std::min(run.e - b, kVerifyChunk);
      const code_t* codes;
      if (seg.inline_codes) {
        codes = t.codes.data() + std::size_t(b) * cs_;
      } else {
        for (std::uint32_t j = 0; j < len; ++j)
          std::memcpy(kb.gather.data() + std::size_t(j) * cs_, db_ + (seg.base + t.ids[b + j]) * cs_, cs_);
        codes = kb.gather.data();
      }
      for (std::uint32_t p = run.p0; p < run.p1;) {
        int nb = 0;
        for (; p < run.p1 && nb < kQueryBlock; ++p) {
          const std::uint32_t a = queries_[p];
          if (st_[a].status != QueryState::kActive) continue;
          block[nb] = a;
          thresh[nb] = st_[a].theta;
          std::memcpy(kb.qblock.data() + std::size_t(nb) * cs_, qc_.data() + std::size_t(a) * cs_, cs_);
          ++nb;
        }
        if (nb == 0) break;
        kern_.scan_block(kb.qblock.data(), nb, codes, len, cs_, thresh, kb.rel.data(), kb.dist.data(), count,
                         kVerifyChunk);
        // Hits carry their table position; ids are resolved after the task (prefetched now, loaded later).
        // Inside a bucket ids increase with the position, so (distance, position) order is (distance, id) order
        // and a k-NN query keeps at most its k best hits of the bucket.
        for (int j = 0; j < nb; ++j) {
          ws.passed += count[j];
          const std::size_t first = ws.hits.size();
          const std::uint32_t a = block[j];
          const std::uint64_t* qk = qkeys_.data() + a * sub_at_.back() + sub_at_[g];
          const std::uint32_t* rels = kb.rel.data() + std::size_t(j) * kVerifyChunk;
          const std::uint16_t* dists = kb.dist.data() + std::size_t(j) * kVerifyChunk;
          if (i == 0 && sd == 0 && k_ && count[j] > k_ && nbits_ < kMaxHist) {
            // First step of a k-NN query: nothing was seen before and every code passes the open threshold, so
            // keep the k best by a histogram of the distances (ties: the first positions, i.e. the smaller ids).
            std::uint32_t hist[kMaxHist] = {0};
            for (std::uint32_t h = 0; h < count[j]; ++h) ++hist[dists[h]];
            int dk = 0;
            for (std::size_t cum = 0; (cum += hist[dk]) < k_; ++dk) {
            }
            std::size_t at_dk = k_;
            for (int d = 0; d < dk; ++d) at_dk -= hist[d];
            for (std::uint32_t h = 0; h < count[j]; ++h) {
              const int d = dists[h];
              if (d > dk || (d == dk && at_dk == 0)) continue;
              if (d == dk) --at_dk;
              ws.hits.push_back({a, (std::uint64_t(d) << kIdBits) | (b + rels[h])});
            }
            for (std::size_t h = first; h < ws.hits.size(); ++h)
              __builtin_prefetch(t.ids.data() + (ws.hits[h].packed & kIdMask));
            continue;
          }
          for (std::uint32_t h = 0; h < count[j]; ++h) {
            const std::uint32_t rel = rels[h];
            const code_t* c = codes + std::size_t(rel) * cs_;
            // Report a code only from the first step that reaches it: an earlier step reached it when some
            // other substring is within that substring's radius so far (sd before table i, sd - 1 after it).
            bool seen = false;
            for (std::size_t o = 0; o < seg.subs.size() && !seen; ++o) {
              if (o == i) continue;
              seen = bit_count(substring_key(c, cs_, seg.subs[o]) ^ qk[o]) <= (o < i ? sd : sd - 1);
            }
            if (seen) continue;
            const std::uint64_t d = dists[h];
            ws.hits.push_back({a, (d << kIdBits) | (b + rel)});
          }
          if (k_ && ws.hits.size() - first > k_) {
            auto by_key = [](const Hit& x, const Hit& y) { return x.packed < y.packed; };
            std::nth_element(ws.hits.begin() + first, ws.hits.begin() + first + (k_ - 1), ws.hits.end(), by_key);
            ws.hits.resize(first + k_);
          }
          for (std::size_t h = first; h < ws.hits.size(); ++h)
            __builtin_prefetch(t.ids.data() + (ws.hits[h].packed & kIdMask));
        }
      }
    }
  }

  struct WidePair {
    std::uint64_t key;
    std::uint32_t query;
  };

  const std::vector<const Segment*>& segs_;
  const code_t* db_;
  std::size_t cs_;
  int nbits_;
  std::size_t k_;
  int radius_;
  const Kernels& kern_;
  const CostModel& cost_;
  int threads_;
  std::vector<WorkerScratch> scratch_;
  std::vector<std::size_t> sub_at_;  // segment -> first substring slot in qkeys_
  bool any_gather_ = false;

  QueryState* st_ = nullptr;
  double budget_ = 0;
  std::vector<code_t> qc_;            // batch query codes, contiguous
  std::vector<std::uint64_t> qkeys_;  // batch query substring values
  std::vector<std::uint64_t> pairs_, tmp_;
  std::vector<WidePair> wide_;
  std::vector<std::uint32_t> queries_;  // query of each sorted pair
  std::vector<std::uint32_t> masks_;    // probe masks of the current step (direct tables)
  HugeVector<std::uint32_t> cursor_;    // counting-sort cursors per key
  std::vector<Run> runs_;
  std::vector<double> work_at_;
  std::size_t total_pairs_ = 0, total_candidates_ = 0;
  double total_cost_ = 0;
};

// Projected cost per query of running nq queries on the tables, from the per-step totals of a sample of
// `sampled` queries: probes, candidates and hits scale with the batch; distinct buckets grow like random draws
// from the buckets the sample's queries draw from (sharing observed in the sample: clustered queries keep probing
// the same dense buckets), capped by the table; buckets shared by several queries are fetched once and verified
// by the blocked kernel.
double project_mih_cost(const std::vector<StepStats>& steps, double sampled, double nq, const CostModel& c) {
  double total = 0;
  for (const StepStats& s : steps) {
    if (s.pairs == 0) continue;
    const double scale = nq / sampled;
    const double pairs = s.pairs * scale, cand = s.candidates * scale;
    // Buckets the probes are drawn from: the T with T (1 - exp(-pairs / T)) = distinct buckets seen.
    double lo = std::max(1.0, s.buckets), hi = std::max(lo, s.table_buckets);
    if (s.buckets < s.pairs) {
      for (int it = 0; it < 60; ++it) {
        const double mid = 0.5 * (lo + hi);
        (mid * (1.0 - std::exp(-s.pairs / mid)) < s.buckets ? lo : hi) = mid;
      }
    } else {
      lo = hi;
    }
    const double distinct = std::min(pairs, lo * (1.0 - std::exp(-pairs / lo)));
    const double bucket_bytes = s.bucket_bytes / std::max(1.0, s.buckets);
    const double sharing = pairs / std::max(1.0, distinct);
    total += pairs * c.pair + distinct * (c.bucket + bucket_bytes * c.byte) + cand * c.compare(sharing) +
             s.hits * scale * c.result + s.passed * scale * c.check(static_cast<int>(s.m));
  }
  return total / nq;
}

}  // namespace

// ------------------------------------------------------------------------------------------------ index

MultiIndexHashing::MultiIndexHashing(int nbits, int m) : nbits_(nbits), m_(m) {
  check_nbits(nbits);
  if (m != 0) split_substrings(nbits, m);  // validates m
  code_size_ = static_cast<std::size_t>(nbits) / 8;
}

MultiIndexHashing::~MultiIndexHashing() = default;

std::size_t MultiIndexHashing::indexed_locked() const {
  return segments_.empty() ? 0 : segments_.back()->base + segments_.back()->n;
}

std::size_t MultiIndexHashing::ntotal() const {
  std::shared_lock<std::shared_mutex> lock(mutex_);
  return indexed_locked();
}

std::vector<std::size_t> MultiIndexHashing::segment_sizes() const {
  std::shared_lock<std::shared_mutex> lock(mutex_);
  std::vector<std::size_t> out;
  for (const auto& s : segments_) out.push_back(s->n);
  return out;
}

std::vector<int> MultiIndexHashing::segment_substrings() const {
  std::shared_lock<std::shared_mutex> lock(mutex_);
  std::vector<int> out;
  for (const auto& s : segments_) out.push_back(s->m);
  return out;
}

std::size_t MultiIndexHashing::memory_bytes() const {
  std::shared_lock<std::shared_mutex> lock(mutex_);
  std::size_t b = 0;
  for (const auto& s : segments_) b += s->table_bytes;
  return b;
}

void MultiIndexHashing::reset() {
  std::unique_lock<std::shared_mutex> lock(mutex_);
  segments_.clear();
}

void MultiIndexHashing::add(const code_t* db, std::size_t n, int threads) {
  std::unique_lock<std::shared_mutex> lock(mutex_);
  const std::size_t old = indexed_locked();
  if (n < old) invalid("add: the database has " + std::to_string(n) + " codes, fewer than the " + std::to_string(old) +
                       " already indexed");
  if (n == old) return;
  if (n > kMaxCodes)
    invalid("multi-index hashing holds at most " + std::to_string(kMaxCodes) + " codes, got " + std::to_string(n));
  threads = resolve_threads(threads);
  // The new codes and every trailing segment at most twice their size become one segment (geometric merging).
  std::size_t base = old, count = n - old;
  while (!segments_.empty() && segments_.back()->n <= 2 * count) {
    base = segments_.back()->base;
    count += segments_.back()->n;
    segments_.pop_back();
  }
  auto seg = std::make_unique<Segment>();
  const int m = m_ ? m_ : auto_substrings(nbits_, count);
  seg->build(db, base, count, code_size_, m, threads);
  segments_.push_back(std::move(seg));
}

RangeResultData MultiIndexHashing::search(const code_t* q, std::size_t nq, const code_t* db, std::size_t n,
                                          std::size_t k, int radius, int threads, SearchMethod method,
                                          MihStats* stats) const {
  std::shared_lock<std::shared_mutex> lock(mutex_);
  const std::size_t cs = code_size_;
  const std::size_t indexed = indexed_locked();
  if (n != indexed)
    invalid("the database has " + std::to_string(n) + " codes but the multi-index tables hold " +
            std::to_string(indexed));
  if (radius < 0) invalid("radius must be >= 0, got " + std::to_string(radius));
  radius = std::min(radius, nbits_);
  threads = resolve_threads(threads);
  MihStats st;
  st.queries = nq;
  auto finish = [&](RangeResultData&& r) {
    if (stats) *stats = st;
    return std::move(r);
  };
  auto scan = [&](const code_t* qs, std::size_t m) { return scan_select(qs, m, db, n, cs, k, radius, threads); };

  if (nq == 0 || n == 0) {
    st.used = method == SearchMethod::Mih ? SearchMethod::Mih : SearchMethod::Flat;
    return finish(to_csr(QueryLists{std::vector<std::vector<std::uint16_t>>(nq), std::vector<std::vector<idx_t>>(nq)}));
  }
  std::vector<const Segment*> segs;
  std::size_t table_bytes = 0;
  for (const auto& s : segments_) {
    segs.push_back(s.get());
    table_bytes += s->table_bytes;
  }
  const CostModel cost = make_cost_model(n, cs, table_bytes);
  const double scan_per_query = cost.scan(n, cs, double(nq), k, 0) / double(nq);
  st.est_scan_ns = scan_per_query;
  auto scan_everything = [&] {
    st.used = SearchMethod::Flat;
    st.scan_queries = nq;
    return finish(to_csr(scan(q, nq)));
  };
  if (method == SearchMethod::Flat) return scan_everything();

  const bool automatic = method == SearchMethod::Auto;
  // Radius search: the probes per query are known in advance.
  double probes = 0;
  if (k == 0)
    for (const Segment* g : segs)
      for (int t = 0; t <= radius; ++t) {
        const Table& tab = g->tables[static_cast<std::size_t>(t % g->m)];
        const int sd = t / g->m;
        probes += double(std::min<std::uint64_t>(binomial(tab.sub.len, sd), tab.direct ? ~0ull : tab.slots.size()));
        if (sd >= tab.sub.len) break;
      }
  if (automatic && probes * cost.pair > scan_per_query) {  // the probes alone cost more than the scan
    st.est_mih_ns = probes * cost.pair;
    return scan_everything();
  }
  // A small search runs on the calling thread: waking the pool costs more than it saves, and much more when
  // the other cores are busy.
  if (k == 0 && double(nq) * probes * (cost.pair + cost.bucket) < kSmallSearchNs) threads = 1;

  // A query whose table search costs more than this (automatic mode) is answered by the scan instead.
  const double budget = automatic ? 2.0 * scan_per_query : std::numeric_limits<double>::infinity();
  // Results of the queries answered by the tables: flat per-group buffers, located by `where`.
  struct Span {
    std::uint32_t group;
    std::size_t offset, count;
  };
  std::vector<Span> where(nq, Span{0, 0, 0});
  std::vector<std::vector<std::uint64_t>> group_out;
  std::vector<char> to_scan(nq, 0);
  std::size_t total_pairs = 0, total_candidates = 0;
  double total_cost = 0;
  // Runs queries idx[0..m) on one engine, in batches of kBatchQueries; the query states are kept per thread so
  // their buffers are reused from call to call.
  auto run_group = [&](Engine& engine, std::uint32_t group, const std::size_t* idx, std::size_t m,
                       std::vector<StepStats>* steps) {
    static thread_local std::vector<QueryState> qs;
    std::vector<std::uint64_t>& dst = group_out[group];
    for (std::size_t b0 = 0; b0 < m; b0 += kBatchQueries) {
      const std::size_t na = std::min(kBatchQueries, m - b0);
      if (qs.size() < na) qs.resize(na);
      engine.run(q, idx + b0, na, budget, qs.data(), steps);
      for (std::size_t a = 0; a < na; ++a) {
        std::vector<std::uint64_t>& f = qs[a].found;
        if (qs[a].status == QueryState::kDone) {
          where[idx[b0 + a]] = Span{group, dst.size(), f.size()};
          dst.insert(dst.end(), f.begin(), f.end());
        } else {
          to_scan[idx[b0 + a]] = 1;
        }
        if (f.capacity() > 4096) std::vector<std::uint64_t>().swap(f);  // keep only small buffers
      }
    }
  };
  // Sparse searches (few probes per bucket: small radii) share no bucket reads, so each thread takes a slice of
  // the queries; dense ones (k-NN, larger radii) keep every query in one engine and split each step by buckets.
  auto sparse = [&](std::size_t m) {
    if (k != 0) return false;
    const Segment& g = *segs.front();  // the oldest, largest segment
    double widest = 0;
    for (int t = 0; t <= radius; ++t) {
      const Table& tab = g.tables[static_cast<std::size_t>(t % g.m)];
      widest = std::max(widest, double(binomial(tab.sub.len, t / g.m)));
    }
    return double(m) * widest * 4 <= double(std::max<std::size_t>(g.tables[0].distinct, 1));
  };
  auto run_tables = [&](const std::vector<std::size_t>& idx, std::vector<StepStats>* steps) {
    const std::size_t groups = threads > 1 && idx.size() >= 64 && sparse(idx.size()) ? std::size_t(threads) : 1;
    std::vector<std::unique_ptr<Engine>> engines(groups);
    for (auto& e : engines)
      e = std::make_unique<Engine>(segs, db, cs, nbits_, k, radius, active_kernels(), cost, groups == 1 ? threads : 1);
    std::vector<std::vector<StepStats>> group_steps(groups);
    const std::size_t first = group_out.size();
    group_out.resize(first + groups);
    parallel_for(groups, groups == 1 ? 1 : threads, [&](std::size_t gi, int) {
      const std::size_t a0 = gi * idx.size() / groups, a1 = (gi + 1) * idx.size() / groups;
      run_group(*engines[gi], static_cast<std::uint32_t>(first + gi), idx.data() + a0, a1 - a0,
                steps ? &group_steps[gi] : nullptr);
    });
    for (std::size_t gi = 0; gi < groups; ++gi) {
      total_pairs += engines[gi]->total_pairs();
      total_candidates += engines[gi]->total_candidates();
      total_cost += engines[gi]->total_cost();
      if (!steps) continue;
      if (steps->size() < group_steps[gi].size()) steps->resize(group_steps[gi].size());
      for (std::size_t t = 0; t < group_steps[gi].size(); ++t) (*steps)[t] += group_steps[gi][t];
    }
  };

  std::vector<std::size_t> rest;
  if (automatic && nq > kSampleQueries) {
    // Run an evenly spaced sample on the tables, project its per-step probes and candidates to the whole batch
    // (observed bucket occupancy, radius actually needed by k-NN), and compare with the scan.
    std::vector<std::size_t> sample(kSampleQueries);
    std::vector<char> in_sample(nq, 0);
    for (std::size_t j = 0; j < kSampleQueries; ++j) in_sample[sample[j] = j * nq / kSampleQueries] = 1;
    std::vector<StepStats> steps;
    run_tables(sample, &steps);
    for (std::size_t i = 0; i < nq; ++i)
      if (!in_sample[i]) rest.push_back(i);
    std::size_t over = 0;
    for (std::size_t i : sample) over += to_scan[i];
    const double left = double(rest.size());
    double results = 0;  // per sampled query answered by the tables
    const double answered = double(std::max<std::size_t>(1, kSampleQueries - over));
    for (std::size_t i : sample) results += double(where[i].count) / answered;
    const double projected = project_mih_cost(steps, double(kSampleQueries), left, cost);
    const double scan_left = cost.scan(n, cs, left, k, results * left) / left;
    st.sampled = kSampleQueries;
    st.est_mih_ns = projected;
    st.est_scan_ns = scan_left;
    if (4 * over > kSampleQueries || projected > scan_left) {
      for (std::size_t i : rest) to_scan[i] = 1;
      rest.clear();
    }
  } else {
    for (std::size_t i = 0; i < nq; ++i) rest.push_back(i);
  }
  if (!rest.empty()) run_tables(rest, nullptr);
  st.probes = total_pairs;
  st.candidates = total_candidates;

  // Queries over budget (or all but the sample when the scan was chosen): one batched scan.
  std::vector<std::size_t> fallback;
  for (std::size_t i = 0; i < nq; ++i)
    if (to_scan[i]) fallback.push_back(i);
  QueryLists scanned;
  if (!fallback.empty()) {
    std::vector<code_t> fq(fallback.size() * cs);
    for (std::size_t j = 0; j < fallback.size(); ++j) std::memcpy(fq.data() + j * cs, q + fallback[j] * cs, cs);
    scanned = scan(fq.data(), fallback.size());
  }
  RangeResultData r;
  r.lims.assign(nq + 1, 0);
  std::size_t fb = 0;
  for (std::size_t i = 0; i < nq; ++i) {
    const std::size_t c = to_scan[i] ? scanned.dist[fb++].size() : where[i].count;
    r.lims[i + 1] = r.lims[i] + static_cast<idx_t>(c);
  }
  r.distances.resize(static_cast<std::size_t>(r.lims[nq]));
  r.indices.resize(static_cast<std::size_t>(r.lims[nq]));
  fb = 0;
  for (std::size_t i = 0; i < nq; ++i) {
    std::size_t dst = static_cast<std::size_t>(r.lims[i]);
    if (to_scan[i]) {
      std::copy(scanned.dist[fb].begin(), scanned.dist[fb].end(), r.distances.begin() + dst);
      std::copy(scanned.idx[fb].begin(), scanned.idx[fb].end(), r.indices.begin() + dst);
      ++fb;
      continue;
    }
    const std::uint64_t* e = group_out[where[i].group].data() + where[i].offset;
    for (std::size_t j = 0; j < where[i].count; ++j) {
      r.distances[dst] = static_cast<dist_t>(e[j] >> kIdBits);
      r.indices[dst++] = static_cast<idx_t>(e[j] & kIdMask);
    }
  }
  st.scan_queries = fallback.size();
  st.mih_queries = nq - fallback.size();
  st.used = st.mih_queries * 2 >= nq ? SearchMethod::Mih : SearchMethod::Flat;
  if (!st.sampled) st.est_mih_ns = total_cost / double(nq);
  return finish(std::move(r));
}

void MultiIndexHashing::knn(const code_t* q, std::size_t nq, const code_t* db, std::size_t n, std::size_t k,
                            dist_t* D, idx_t* I, int threads, SearchMethod method, MihStats* stats) const {
  check_k(k);
  RangeResultData r = search(q, nq, db, n, k, nbits_, threads, method, stats);
  for (std::size_t i = 0; i < nq; ++i) {
    const std::size_t b = static_cast<std::size_t>(r.lims[i]), c = static_cast<std::size_t>(r.lims[i + 1]) - b;
    write_knn_row(k, nbits_, c, r.distances.data() + b, r.indices.data() + b, D + i * k, I + i * k);
  }
}

}  // namespace xmhash
