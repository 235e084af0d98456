#include "xmhash/mih.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <map>
#include <mutex>
#include <utility>

#include "xmhash/isa.hpp"
#include "xmhash/kernels.hpp"
#include "xmhash/parallel.hpp"
#include "xmhash/popcount.hpp"

namespace xmhash {

namespace {

// Inline copies of the codes in every table while they cost at most this many bytes per code (64-bit codes up
// to m = 16, 128-bit up to m = 8); longer codes keep ids only and gather the candidates from the database.
constexpr std::size_t kInlineBytesPerCode = 128;
// Codes verified per kernel call (bounds the per-worker buffers; larger buckets are cut into pieces).
constexpr std::uint32_t kVerifyChunk = 2048;
// Queries per parallel task.
constexpr std::size_t kQueriesPerTask = 8;
// Results are packed as (distance << kIdBits) | id so one integer sort gives (distance, index) order.
constexpr int kIdBits = 40;
constexpr std::uint64_t kIdMask = (std::uint64_t(1) << kIdBits) - 1;
// The largest index the tables hold (local ids and bucket offsets are uint32).
constexpr std::size_t kMaxCodes = std::numeric_limits<std::uint32_t>::max();

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
  std::vector<std::uint32_t> offsets;  // direct: bucket of value v is [offsets[v], offsets[v + 1])
  struct Slot {
    std::uint64_t key;
    std::uint32_t start, len;  // len == 0: empty slot
  };
  std::vector<Slot> slots;  // hashed: power-of-two capacity, linear probing
  int slot_shift = 63;
  std::size_t distinct = 0;
  std::vector<std::uint32_t> ids;  // local ids in bucket order
  std::vector<code_t> codes;       // inline copies in bucket order (empty when the segment keeps ids only)

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

  const code_t* directory_address(std::uint64_t key) const {
    return direct ? reinterpret_cast<const code_t*>(offsets.data() + key)
                  : reinterpret_cast<const code_t*>(slots.data() + hash(key));
  }

  std::size_t bytes() const {
    return offsets.capacity() * sizeof(std::uint32_t) + slots.capacity() * sizeof(Slot) +
           ids.capacity() * sizeof(std::uint32_t) + codes.capacity();
  }

  void build(Substring s, const code_t* src, std::size_t n, std::size_t cs, bool keep_codes) {
    sub = s;
    ids.assign(n, 0);
    direct = sub.len <= 16 || (sub.len <= 32 && (std::uint64_t(1) << sub.len) <= 2 * std::uint64_t(n));
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

std::vector<Substring> split_substrings(int nbits, int m) {
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
  const double target = std::max(4.0, std::log2(static_cast<double>(std::max<std::size_t>(n, 2))) - 4.0);
  int m = static_cast<int>(std::lround(nbits / target));
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

// Measured speed of the active kernel on cache-resident data: a blocked scan (kQueryBlock queries per database
// load) and a single-query scan as used for verification. Measured once per (ISA, code size) per process, so the
// model follows whichever kernels this build dispatches to.
struct KernelSpeed {
  double scan_ns_per_code = 0;    // per code per query, blocked
  double verify_ns_per_code = 0;  // per code, one query
};

KernelSpeed measure_kernel(const Kernels& kern, std::size_t cs) {
  const std::size_t n = std::max<std::size_t>(256, std::min<std::size_t>(4096, (std::size_t(128) << 10) / cs));
  std::vector<code_t> db(n * cs), q(kQueryBlock * cs);
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
  auto best_of = [&](int nq) {
    double best = std::numeric_limits<double>::infinity();
    for (int rep = 0; rep < 7; ++rep) {
      auto t0 = std::chrono::steady_clock::now();
      kern.scan_block(q.data(), nq, db.data(), n, cs, thresh, idx.data(), dist.data(), count, n);
      auto t1 = std::chrono::steady_clock::now();
      best = std::min(best, std::chrono::duration<double, std::nano>(t1 - t0).count());
    }
    return best / (double(nq) * double(n));
  };
  KernelSpeed s;
  best_of(kQueryBlock);  // warm up
  s.scan_ns_per_code = best_of(kQueryBlock);
  s.verify_ns_per_code = best_of(1);
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

// Costs in nanoseconds of the parts of a table search; the kernel speeds are measured, the memory terms are
// fixed estimates for a bucket lookup that misses the caches and for streaming a bucket from DRAM.
struct CostModel {
  double scan_per_query = 0;  // whole database, blocked scan
  double probe = 0;           // per bucket lookup
  double candidate = 0;       // per verified code
  double result = 15;         // per reported result (de-duplication check, final sort)
};

CostModel make_cost_model(std::size_t n, std::size_t cs, std::size_t table_bytes) {
  const KernelSpeed ks = kernel_speed(cs);
  CostModel c;
  c.scan_per_query = double(n) * ks.scan_ns_per_code;
  const bool in_cache = table_bytes <= (std::size_t(16) << 20);
  c.probe = in_cache ? 10.0 : 60.0;
  c.candidate = ks.verify_ns_per_code + (in_cache ? 0.0 : 0.1 * double(cs));
  return c;
}

// ------------------------------------------------------------------------------------------------ query

struct Scratch {
  std::vector<std::uint32_t> rel;
  std::vector<std::uint16_t> dist;
  std::vector<code_t> gather;
  std::vector<std::uint64_t> found;  // packed (distance, id)
  std::vector<std::uint32_t> hist;   // found entries per distance
  std::vector<std::uint64_t> qkeys;  // query substring values, per segment
  std::vector<std::size_t> qkey_at;  // segment -> first entry in qkeys
  std::vector<char> exhausted;       // segment fully enumerated
  std::size_t probes = 0, candidates = 0;
  double cost = 0;
};

using Segment = MultiIndexHashing::Segment;

// The constant context of one search call.
struct Searcher {
  const std::vector<const Segment*>& segs;
  const code_t* db;
  std::size_t cs;
  int nbits;
  std::size_t k;  // 0: all within radius
  int radius;
  const Kernels& kern;
  CostModel cost;

  void prepare(Scratch& s) const {
    s.rel.resize(kVerifyChunk);
    s.dist.resize(kVerifyChunk);
    s.hist.assign(static_cast<std::size_t>(nbits) + 2, 0);
    s.qkey_at.resize(segs.size() + 1);
    s.qkey_at[0] = 0;
    for (std::size_t g = 0; g < segs.size(); ++g) s.qkey_at[g + 1] = s.qkey_at[g] + segs[g]->subs.size();
    s.qkeys.resize(s.qkey_at.back());
    s.exhausted.resize(segs.size());
    bool gather = false;
    for (const Segment* g : segs) gather |= !g->inline_codes;
    if (gather) s.gather.resize(std::size_t(kVerifyChunk) * cs);
  }

  // k-th smallest distance among the found entries (k <= found.size()).
  int kth_distance(const Scratch& s) const {
    std::size_t cum = 0;
    for (std::size_t d = 0; d < s.hist.size(); ++d) {
      cum += s.hist[d];
      if (cum >= k) return static_cast<int>(d);
    }
    return nbits + 1;
  }

  // Keeps the k smallest (distance, id) entries.
  void compact(Scratch& s) const {
    std::nth_element(s.found.begin(), s.found.begin() + (k - 1), s.found.end());
    s.found.resize(k);
    std::fill(s.hist.begin(), s.hist.end(), 0);
    for (std::uint64_t e : s.found) ++s.hist[e >> kIdBits];
  }

  // Verifies bucket entries [b, e) of table i of segment g at substring distance sd; reports the new ones.
  void verify(const code_t* q, const Segment& g, std::size_t i, int sd, std::uint32_t b, std::uint32_t e,
              const std::uint64_t* qk, int& theta, Scratch& s) const {
    const Table& t = g.tables[i];
    while (b < e) {
      const std::uint32_t len = std::min(e - b, kVerifyChunk);
      const code_t* codes;
      if (g.inline_codes) {
        codes = t.codes.data() + std::size_t(b) * cs;
      } else {
        for (std::uint32_t j = 0; j < len; ++j)
          std::memcpy(s.gather.data() + std::size_t(j) * cs, db + (g.base + t.ids[b + j]) * cs, cs);
        codes = s.gather.data();
      }
      std::uint32_t count = 0;
      int thresh[1] = {theta};
      kern.scan_block(q, 1, codes, len, cs, thresh, s.rel.data(), s.dist.data(), &count, kVerifyChunk);
      for (std::uint32_t j = 0; j < count; ++j) {
        const code_t* c = codes + std::size_t(s.rel[j]) * cs;
        // Report a code only from the first step that reaches it: an earlier step reached it when some other
        // substring is within that substring's radius so far (sd for tables before i, sd - 1 after).
        bool seen = false;
        for (std::size_t o = 0; o < g.subs.size() && !seen; ++o) {
          if (o == i) continue;
          const int dj = popcount64(substring_key(c, cs, g.subs[o]) ^ qk[o]);
          seen = dj <= (o < i ? sd : sd - 1);
        }
        if (seen) continue;
        const std::uint16_t d = s.dist[j];
        s.found.push_back((std::uint64_t(d) << kIdBits) | (g.base + t.ids[b + s.rel[j]]));
        ++s.hist[d];
        s.cost += cost.result;
        if (k && s.found.size() >= 2 * k + 64) compact(s);
        if (k && s.found.size() >= k) theta = std::min(theta, kth_distance(s));
      }
      b += len;
    }
  }

  // Runs one query on the tables; leaves its sorted result in s.found. Returns false when the estimated cost
  // exceeded `budget` (s.found is then meaningless).
  bool run(const code_t* q, double budget, Scratch& s) const {
    s.found.clear();
    std::fill(s.hist.begin(), s.hist.end(), 0);
    s.cost = 0;
    for (std::size_t g = 0; g < segs.size(); ++g) {
      for (std::size_t i = 0; i < segs[g]->subs.size(); ++i)
        s.qkeys[s.qkey_at[g] + i] = substring_key(q, cs, segs[g]->subs[i]);
      s.exhausted[g] = 0;
    }
    int theta = radius;
    bool over = false;
    for (int t = 0; t <= radius && !over; ++t) {
      bool all_done = true;
      for (std::size_t gi = 0; gi < segs.size() && !over; ++gi) {
        if (s.exhausted[gi]) continue;
        const Segment& g = *segs[gi];
        const std::size_t i = static_cast<std::size_t>(t % g.m);
        const int sd = t / g.m;
        const Table& tab = g.tables[i];
        const std::uint64_t* qk = s.qkeys.data() + s.qkey_at[gi];
        auto visit = [&](std::uint32_t b, std::uint32_t e) {
          s.candidates += e - b;
          s.cost += cost.candidate * double(e - b);
          verify(q, g, i, sd, b, e, qk, theta, s);
        };
        auto probe = [&](std::uint64_t key) {
          ++s.probes;
          s.cost += cost.probe;
          std::uint32_t b, e;
          if (tab.bucket(key, b, e)) visit(b, e);
          return !(over = s.cost > budget);
        };
        if (!tab.direct && binomial(tab.sub.len, sd) > tab.slots.size()) {
          // Fewer occupied buckets than values at this distance: walk the buckets instead.
          for (const Table::Slot& sl : tab.slots) {
            if (sl.len == 0 || popcount64(sl.key ^ qk[i]) != sd) continue;
            ++s.probes;
            s.cost += cost.probe;
            visit(sl.start, sl.start + sl.len);
            if ((over = s.cost > budget)) break;
          }
          s.cost += cost.probe * 0.25 * double(tab.slots.size());
        } else {
          for_each_mask(tab.sub.len, sd, [&](std::uint64_t mask) { return probe(qk[i] ^ mask); });
        }
        if (sd >= tab.sub.len) s.exhausted[gi] = 1;  // every value of this substring visited: segment done
        all_done &= s.exhausted[gi] != 0;
      }
      if (over) break;
      if (k && s.found.size() >= k) {
        std::size_t within = 0;
        for (int d = 0; d <= t; ++d) within += s.hist[d];
        if (within >= k) break;  // k results with d <= t, and every code with d <= t has been seen
      }
      if (all_done) break;
    }
    if (over) return false;
    if (k && s.found.size() > k) {
      std::nth_element(s.found.begin(), s.found.begin() + (k - 1), s.found.end());
      s.found.resize(k);
    }
    std::sort(s.found.begin(), s.found.end());
    return true;
  }
};

// Per-task output: results of consecutive queries, concatenated.
struct TaskOut {
  std::vector<dist_t> dist;
  std::vector<idx_t> idx;
  std::vector<std::uint32_t> count;
};

void append(TaskOut& out, const std::vector<std::uint64_t>& found) {
  out.count.push_back(static_cast<std::uint32_t>(found.size()));
  for (std::uint64_t e : found) {
    out.dist.push_back(static_cast<dist_t>(e >> kIdBits));
    out.idx.push_back(static_cast<idx_t>(e & kIdMask));
  }
}

}  // namespace

// ------------------------------------------------------------------------------------------------ index

MultiIndexHashing::MultiIndexHashing(int nbits, int m) : nbits_(nbits), m_(m) {
  if (nbits <= 0 || nbits % 8 || static_cast<std::size_t>(nbits) > kMaxCodeSize * 8)
    invalid("nbits must be a positive multiple of 8 up to " + std::to_string(kMaxCodeSize * 8) + ", got " +
            std::to_string(nbits));
  if (m != 0) split_substrings(nbits, m);  // validates m
  code_size_ = static_cast<std::size_t>(nbits) / 8;
}

MultiIndexHashing::~MultiIndexHashing() = default;

std::size_t MultiIndexHashing::ntotal() const {
  std::shared_lock<std::shared_mutex> lock(mutex_);
  return segments_.empty() ? 0 : segments_.back()->base + segments_.back()->n;
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
  const std::size_t old = segments_.empty() ? 0 : segments_.back()->base + segments_.back()->n;
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
  const std::size_t indexed = segments_.empty() ? 0 : segments_.back()->base + segments_.back()->n;
  if (n != indexed)
    invalid("the database has " + std::to_string(n) + " codes but the multi-index tables hold " +
            std::to_string(indexed));
  if (radius < 0) invalid("radius must be >= 0, got " + std::to_string(radius));
  radius = std::min(radius, nbits_);
  threads = resolve_threads(threads);
  MihStats st;
  st.queries = nq;

  std::vector<const Segment*> segs;
  std::size_t table_bytes = 0;
  for (const auto& s : segments_) {
    segs.push_back(s.get());
    table_bytes += s->table_bytes;
  }
  const Searcher searcher{segs, db, cs, nbits_, k, radius, active_kernels(), make_cost_model(n, cs, table_bytes)};
  st.est_scan_ns = searcher.cost.scan_per_query;

  auto scan_all = [&] {
    st.used = SearchMethod::Flat;
    st.scan_queries = nq;
    return to_csr(scan_select(q, nq, db, n, cs, k, radius, threads));
  };
  if (method == SearchMethod::Flat || n == 0 || nq == 0) {
    if (method != SearchMethod::Flat && n == 0) st.used = SearchMethod::Mih;
    RangeResultData r = n == 0 || nq == 0 ? to_csr(QueryLists{std::vector<std::vector<std::uint16_t>>(nq),
                                                              std::vector<std::vector<idx_t>>(nq)})
                                          : scan_all();
    if (method == SearchMethod::Flat) st.used = SearchMethod::Flat, st.scan_queries = nq;
    if (stats) *stats = st;
    return r;
  }

  // Auto: queries whose table search would cost more than this are answered by the scan instead.
  const bool automatic = method == SearchMethod::Auto;
  const double budget = automatic ? 1.5 * searcher.cost.scan_per_query : std::numeric_limits<double>::infinity();

  std::vector<Scratch> scratch(threads);
  for (Scratch& s : scratch) searcher.prepare(s);
  std::vector<std::vector<std::uint64_t>> kept(nq);  // results of sampled queries
  std::vector<char> done(nq, 0), to_scan(nq, 0);
  double mih_cost = 0;
  std::size_t mih_done = 0;

  if (automatic) {
    // Run an evenly spaced sample on the tables and compare its cost with the scan's.
    const std::size_t ns = std::min<std::size_t>(nq, 16);
    std::vector<std::size_t> sample(ns);
    for (std::size_t j = 0; j < ns; ++j) sample[j] = j * nq / ns;
    std::vector<double> cost(ns);
    std::vector<char> ok(ns);
    parallel_for(ns, threads, [&](std::size_t j, int w) {
      Scratch& s = scratch[w];
      ok[j] = searcher.run(q + sample[j] * cs, budget, s);
      cost[j] = ok[j] ? s.cost : budget + searcher.cost.scan_per_query;
      if (ok[j]) kept[sample[j]] = s.found;
    });
    double mean = 0;
    for (double c : cost) mean += c / double(ns);
    st.sampled = ns;
    st.est_mih_ns = mean;
    if (mean > searcher.cost.scan_per_query) {
      for (const Scratch& s : scratch) st.probes += s.probes, st.candidates += s.candidates;
      RangeResultData r = scan_all();
      if (stats) *stats = st;
      return r;
    }
    for (std::size_t j = 0; j < ns; ++j) {
      done[sample[j]] = 1;
      to_scan[sample[j]] = !ok[j];
      if (ok[j]) mih_cost += cost[j], ++mih_done;
    }
  }

  const std::size_t ntasks = (nq + kQueriesPerTask - 1) / kQueriesPerTask;
  std::vector<TaskOut> outs(ntasks);
  std::vector<double> task_cost(ntasks, 0);
  std::vector<std::size_t> task_done(ntasks, 0);
  parallel_for(ntasks, threads, [&](std::size_t task, int w) {
    Scratch& s = scratch[w];
    TaskOut& out = outs[task];
    const std::size_t q0 = task * kQueriesPerTask, q1 = std::min(nq, q0 + kQueriesPerTask);
    for (std::size_t i = q0; i < q1; ++i) {
      if (done[i]) {
        append(out, kept[i]);
        continue;
      }
      if (searcher.run(q + i * cs, budget, s)) {
        append(out, s.found);
        task_cost[task] += s.cost;
        ++task_done[task];
      } else {
        to_scan[i] = 1;
        out.count.push_back(0);
      }
    }
  });
  for (std::size_t t = 0; t < ntasks; ++t) mih_cost += task_cost[t], mih_done += task_done[t];
  for (const Scratch& s : scratch) st.probes += s.probes, st.candidates += s.candidates;

  // Queries that overran the budget: one batched scan.
  std::vector<std::size_t> fallback;
  for (std::size_t i = 0; i < nq; ++i)
    if (to_scan[i]) fallback.push_back(i);
  QueryLists scanned;
  if (!fallback.empty()) {
    std::vector<code_t> fq(fallback.size() * cs);
    for (std::size_t j = 0; j < fallback.size(); ++j) std::memcpy(fq.data() + j * cs, q + fallback[j] * cs, cs);
    scanned = scan_select(fq.data(), fallback.size(), db, n, cs, k, radius, threads);
  }

  RangeResultData r;
  r.lims.assign(nq + 1, 0);
  std::size_t fb = 0;
  for (std::size_t i = 0; i < nq; ++i) {
    const std::size_t c = to_scan[i] ? scanned.dist[fb++].size() : outs[i / kQueriesPerTask].count[i % kQueriesPerTask];
    r.lims[i + 1] = r.lims[i] + static_cast<idx_t>(c);
  }
  r.distances.resize(static_cast<std::size_t>(r.lims[nq]));
  r.indices.resize(static_cast<std::size_t>(r.lims[nq]));
  fb = 0;
  for (std::size_t t = 0; t < ntasks; ++t) {
    const std::size_t q0 = t * kQueriesPerTask, q1 = std::min(nq, q0 + kQueriesPerTask);
    std::size_t off = 0;
    for (std::size_t i = q0; i < q1; ++i) {
      const std::size_t dst = static_cast<std::size_t>(r.lims[i]);
      if (to_scan[i]) {
        const auto& d = scanned.dist[fb];
        const auto& ix = scanned.idx[fb];
        std::copy(d.begin(), d.end(), r.distances.begin() + dst);
        std::copy(ix.begin(), ix.end(), r.indices.begin() + dst);
        ++fb;
        continue;
      }
      const std::size_t c = outs[t].count[i - q0];
      std::copy_n(outs[t].dist.begin() + off, c, r.distances.begin() + dst);
      std::copy_n(outs[t].idx.begin() + off, c, r.indices.begin() + dst);
      off += c;
    }
  }
  st.used = SearchMethod::Mih;
  st.scan_queries = fallback.size();
  st.mih_queries = nq - fallback.size();
  st.est_mih_ns = mih_done ? mih_cost / double(mih_done) : 0;
  if (stats) *stats = st;
  return r;
}

void MultiIndexHashing::knn(const code_t* q, std::size_t nq, const code_t* db, std::size_t n, std::size_t k,
                            dist_t* D, idx_t* I, int threads, SearchMethod method, MihStats* stats) const {
  if (k == 0) invalid("k must be >= 1, got 0");
  RangeResultData r = search(q, nq, db, n, k, nbits_, threads, method, stats);
  for (std::size_t i = 0; i < nq; ++i) {
    const std::size_t b = static_cast<std::size_t>(r.lims[i]), c = static_cast<std::size_t>(r.lims[i + 1]) - b;
    for (std::size_t j = 0; j < k; ++j) {
      D[i * k + j] = j < c ? r.distances[b + j] : nbits_ + 1;
      I[i * k + j] = j < c ? r.indices[b + j] : -1;
    }
  }
}

}  // namespace xmhash
