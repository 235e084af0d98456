// Marks functions shared by the CPU build and the CUDA build: __host__ __device__ under nvcc, so the CPU tests
// exercise exactly the per-element logic the GPU kernels run. Always inlined on both sides: these headers are
// compiled into translation units with different ISA and floating-point flags, and an out-of-line copy would be
// a weak symbol the linker could share between them (see csrc/check_isa_symbols.cmake).
#pragma once

#if defined(__CUDACC__)
#define XMHASH_HD __host__ __device__ __forceinline__
#else
#define XMHASH_HD inline __attribute__((always_inline))
#endif
