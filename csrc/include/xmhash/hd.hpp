// Marks functions shared by the CPU build and the CUDA build: plain inline for g++, __host__ __device__
// under nvcc, so the CPU tests exercise exactly the per-element logic the GPU kernels run.
#pragma once

#if defined(__CUDACC__)
#define XMHASH_HD __host__ __device__ __forceinline__
#else
#define XMHASH_HD inline
#endif
