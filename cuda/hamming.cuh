// C-linkage launchers of the CUDA kernels, over raw device pointers and a CUDA stream: no torch or pybind11
// headers here. Callers (the bindings) own every buffer, workspaces included, so a framework's caching
// allocator serves all device memory.
//
// Conventions:
// * Every launcher returns 0 (cudaSuccess) or a cudaError_t code (text: xmhash_cuda_error_string). Launches
//   are asynchronous on `stream` (a cudaStream_t; 0 is the legacy default stream); no launcher synchronises.
// * `device` is the CUDA device that owns the pointers; the launcher makes it current and restores the
//   caller's device.
// * Codes are packed uint8 rows of `code_size` bytes (1..4096), C-contiguous; nb < 2^31.
// * Ordering contract of the CPU engine: each query's results sorted by (distance, database index).
#pragma once
#include <cstddef>
#include <cstdint>

extern "C" {

// ---- devices
// Number of visible CUDA devices, or a negative cudaError_t code when the driver/runtime is unusable.
int xmhash_cuda_device_count();
const char* xmhash_cuda_error_string(int code);
const char* xmhash_cuda_error_name(int code);
// CUDA runtime version this module was built with (e.g. 13000), and the driver's (0 when there is none).
int xmhash_cuda_runtime_version();
int xmhash_cuda_driver_version();
// Name (NUL-terminated, truncated to name_len), compute capability and multiprocessor count of a device.
int xmhash_cuda_device_info(int device, char* name, std::size_t name_len, int* major, int* minor, int* sm_count);

// ---- Hamming distances
// out[i * nb + j] = Hamming distance of query i and database code j (int32).
int xmhash_cuda_cdist(const std::uint8_t* q, std::size_t nq, const std::uint8_t* db, std::size_t nb,
                      std::size_t code_size, std::int32_t* out, int device, void* stream);

// ---- exact selection (k-NN and radius lookup), see csrc/include/xmhash/topk_select.hpp
// Bytes of device workspace the selection below needs for these arguments (limit: the radius, clamped to
// nbits; k: most results per query, 0 = all within limit).
int xmhash_cuda_select_workspace(std::size_t nq, std::size_t nb, std::size_t code_size, int limit, std::size_t k,
                                 int device, std::size_t* bytes);

// k nearest per query: D (nq, k) int32, I (nq, k) int64, rows in (distance, index) order; rows shorter than
// k (k > nb) are padded with distance nbits + 1 and index -1.
int xmhash_cuda_knn(const std::uint8_t* q, std::size_t nq, const std::uint8_t* db, std::size_t nb,
                    std::size_t code_size, std::size_t k, std::int32_t* D, std::int64_t* I, void* workspace,
                    std::size_t workspace_bytes, int device, void* stream);

// Radius lookup in two calls, the CPU's CSR result: range_count writes lims (nq + 1, int64); the caller reads
// lims[nq] (the total), allocates distances (int32) and indices (int64) of that size and calls range_fill with
// the same arguments and the same, unmodified workspace. Keeps every code with distance <= limit, at most
// the k nearest per query when k > 0.
int xmhash_cuda_range_count(const std::uint8_t* q, std::size_t nq, const std::uint8_t* db, std::size_t nb,
                            std::size_t code_size, int limit, std::size_t k, std::int64_t* lims, void* workspace,
                            std::size_t workspace_bytes, int device, void* stream);
int xmhash_cuda_range_fill(const std::uint8_t* q, std::size_t nq, const std::uint8_t* db, std::size_t nb,
                           std::size_t code_size, int limit, std::size_t k, const std::int64_t* lims,
                           std::int32_t* distances, std::int64_t* indices, void* workspace,
                           std::size_t workspace_bytes, int device, void* stream);

// ---- retrieval-metric histograms
// n_at[i * (nbits + 1) + d]: database items at distance d from query i; r_at: the relevant ones among them.
// Relevance: with packed label bits (q_labels/db_labels, label_bytes per row) the rows share a class
// (shares_label); otherwise, with class ids (q_class/db_class, int64), the ids are equal. Pass null for the
// unused form. Outputs are int32 and overwritten.
int xmhash_cuda_metric_histograms(const std::uint8_t* q, std::size_t nq, const std::uint8_t* db, std::size_t nb,
                                  std::size_t code_size, const std::uint8_t* q_labels,
                                  const std::uint8_t* db_labels, std::size_t label_bytes,
                                  const std::int64_t* q_class, const std::int64_t* db_class, std::int32_t* n_at,
                                  std::int32_t* r_at, int device, void* stream);
}
