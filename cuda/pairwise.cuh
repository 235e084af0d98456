// Launchers of the fused pairwise similarity loss on the GPU (the CUDA twin of csrc/pairwise.cpp), over raw
// device pointers and a CUDA stream: no torch or pybind11 headers. Conventions as in hamming.cuh: 0 or a
// cudaError_t code is returned, launches are asynchronous on `stream`, `device` owns the pointers, and the
// caller owns every buffer, the workspace included.
//
// loss = sum_ij w_ij (softplus(theta_ij) - S_ij theta_ij)  (or its square per pair, PairwiseVariant::Squared)
// with theta = scale <a_i, b_j> and S from the packed label rows, exactly as xmhash::pairwise_loss (see
// csrc/include/xmhash/pairwise.hpp for the options; `threads` is ignored). The schedule is
// csrc/include/xmhash/pairwise_tiles.hpp: tiles in shared memory, no n x N matrix, no atomics, results
// bitwise reproducible run to run.
#pragma once
#include <cstddef>
#include <cstdint>

#include "xmhash/pairwise.hpp"

extern "C" {

// Bytes of device workspace the loss below needs (element_bytes: 4 for float32, 8 for float64).
int xmhash_cuda_pairwise_workspace(std::size_t n, std::size_t N, std::size_t d, std::size_t element_bytes,
                                   int want_grad_a, int want_grad_b, std::size_t* bytes);

// a: n x d, b: N x d, labels_a: n x label_bytes, labels_b: N x label_bytes, all C-contiguous on `device`.
// Writes the loss to *loss (one element on the device) and, when not null, d loss / d a to grad_a (n x d) and
// d loss / d b to grad_b (N x d). Invalid sizes or options: cudaErrorInvalidValue, nothing launched.
int xmhash_cuda_pairwise_loss_f32(const float* a, std::size_t n, const float* b, std::size_t N, std::size_t d,
                                  const std::uint8_t* labels_a, const std::uint8_t* labels_b,
                                  std::size_t label_bytes, const xmhash::PairwiseOptions* options, float* loss,
                                  float* grad_a, float* grad_b, void* workspace, std::size_t workspace_bytes,
                                  int device, void* stream);
int xmhash_cuda_pairwise_loss_f64(const double* a, std::size_t n, const double* b, std::size_t N, std::size_t d,
                                  const std::uint8_t* labels_a, const std::uint8_t* labels_b,
                                  std::size_t label_bytes, const xmhash::PairwiseOptions* options, double* loss,
                                  double* grad_a, double* grad_b, void* workspace, std::size_t workspace_bytes,
                                  int device, void* stream);
}
