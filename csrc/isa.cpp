#include "xmhash/isa.hpp"

#include <atomic>
#include <cstdlib>
#include <stdexcept>

namespace xmhash {

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Scalar: return "scalar";
    case Isa::Avx2: return "avx2";
    case Isa::Avx512: return "avx512";
  }
  return "unknown";
}

Isa parse_isa(const std::string& name) {
  if (name == "scalar") return Isa::Scalar;
  if (name == "avx2") return Isa::Avx2;
  if (name == "avx512") return Isa::Avx512;
  invalid("isa must be one of 'scalar', 'avx2', 'avx512', got '" + name + "'");
}

bool isa_compiled(Isa isa) {
  switch (isa) {
    case Isa::Scalar: return true;
#if defined(XMHASH_HAVE_AVX2)
    case Isa::Avx2: return true;
#endif
#if defined(XMHASH_HAVE_AVX512)
    case Isa::Avx512: return true;
#endif
    default: return false;
  }
}

bool isa_supported(Isa isa) {
  if (!isa_compiled(isa)) return false;
#if defined(__x86_64__) || defined(_M_X64)
  __builtin_cpu_init();
  switch (isa) {
    case Isa::Scalar: return true;
    case Isa::Avx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("popcnt") && __builtin_cpu_supports("bmi2");
    case Isa::Avx512:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vpopcntdq") &&
             __builtin_cpu_supports("avx512bitalg") && __builtin_cpu_supports("bmi2") &&
             __builtin_cpu_supports("popcnt");
  }
  return false;
#else
  return isa == Isa::Scalar;
#endif
}

std::vector<Isa> available_isas() {
  std::vector<Isa> out;
  for (Isa isa : {Isa::Scalar, Isa::Avx2, Isa::Avx512})
    if (isa_supported(isa)) out.push_back(isa);
  return out;
}

Isa best_isa() { return available_isas().back(); }

namespace {
std::atomic<int>& active_slot() {
  static std::atomic<int> slot{static_cast<int>(best_isa())};
  return slot;
}
}  // namespace

Isa active_isa() { return static_cast<Isa>(active_slot().load(std::memory_order_relaxed)); }

void set_isa(Isa isa) {
  if (!isa_supported(isa)) {
    std::string avail;
    for (Isa a : available_isas()) avail += std::string(avail.empty() ? "" : ", ") + isa_name(a);
    invalid(std::string("isa '") + isa_name(isa) + "' is not available on this CPU/build (available: " + avail + ")");
  }
  active_slot().store(static_cast<int>(isa), std::memory_order_relaxed);
}

void init_isa_from_env() {
  const char* env = std::getenv("XMHASH_ISA");
  if (env && *env) set_isa(parse_isa(env));
}

const Kernels& kernels_for(Isa isa) {
  switch (isa) {
#if defined(XMHASH_HAVE_AVX2)
    case Isa::Avx2: return kernels_avx2();
#endif
#if defined(XMHASH_HAVE_AVX512)
    case Isa::Avx512: return kernels_avx512();
#endif
    default: return kernels_scalar();
  }
}

const Kernels& active_kernels() { return kernels_for(active_isa()); }

}  // namespace xmhash
