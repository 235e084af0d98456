// Run-time choice of the CPU code path. Each path lives in its own translation unit compiled with its own
// flags (kernels_scalar.cpp, kernels_avx2.cpp, kernels_avx512.cpp); nothing is built with -march=native.
#pragma once
#include <string>
#include <vector>

#include "xmhash/kernels.hpp"

namespace xmhash {

enum class Isa { Scalar = 0, Avx2 = 1, Avx512 = 2 };

const char* isa_name(Isa isa);
Isa parse_isa(const std::string& name);  // throws std::invalid_argument on an unknown name

bool isa_compiled(Isa isa);    // the translation unit exists in this build
bool isa_supported(Isa isa);   // compiled and the running CPU has the instructions
std::vector<Isa> available_isas();
Isa best_isa();

Isa active_isa();
void set_isa(Isa isa);  // throws std::invalid_argument when the CPU or the build lacks it
// Applies XMHASH_ISA from the environment (called once at module import); throws on a bad value.
void init_isa_from_env();

const Kernels& active_kernels();
const Kernels& kernels_for(Isa isa);

}  // namespace xmhash
