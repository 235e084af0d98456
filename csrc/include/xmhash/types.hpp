// Scalar types and limits shared by every part of the core.
#pragma once
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace xmhash {

using code_t = std::uint8_t;  // packed bits, LSB first inside each byte (faiss layout)
using dist_t = std::int32_t;  // Hamming distance as returned to users
using idx_t = std::int64_t;   // database index as returned to users

// Distances are stored as uint16 internally (candidate buffers, histograms), so code_size is bounded.
constexpr std::size_t kMaxCodeSize = 4096;  // bytes = 32768 bits

// Query block of the fused kernels: each database load is reused for this many queries.
constexpr int kQueryBlock = 8;

// Input errors surface in Python as ValueError (pybind11 maps std::invalid_argument).
[[noreturn]] inline void invalid(const std::string& msg) { throw std::invalid_argument(msg); }

}  // namespace xmhash
