// C-linkage launchers over raw device pointers and a CUDA stream: no torch or pybind11 headers here.
#pragma once
#include <cstddef>
#include <cstdint>

extern "C" {

// Number of visible CUDA devices, or a negative cudaError_t code when the driver/runtime is unusable.
int xmhash_cuda_device_count();

// Human-readable text for a cudaError_t code.
const char* xmhash_cuda_error_string(int code);

// out[i * nb + j] = Hamming distance of query i and database code j; all pointers on the device.
int xmhash_cuda_cdist(const std::uint8_t* q, std::size_t nq, const std::uint8_t* db, std::size_t nb,
                      std::size_t code_size, std::int32_t* out, void* stream);
}
