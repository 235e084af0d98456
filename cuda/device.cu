// Device probing for build_info() and the device="cuda" error messages.
#include <cuda_runtime.h>

#include <cstring>

#include "hamming.cuh"
#include "launch_common.cuh"

extern "C" int xmhash_cuda_device_count() {
  int n = 0;
  const cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess) {
    cudaGetLastError();  // reset the last-error slot so a later launch check reports only its own error
    return -static_cast<int>(err);
  }
  return n;
}

extern "C" const char* xmhash_cuda_error_string(int code) { return cudaGetErrorString(static_cast<cudaError_t>(code)); }

extern "C" const char* xmhash_cuda_error_name(int code) { return cudaGetErrorName(static_cast<cudaError_t>(code)); }

extern "C" int xmhash_cuda_runtime_version() {
  int v = 0;
  return cudaRuntimeGetVersion(&v) == cudaSuccess ? v : 0;
}

extern "C" int xmhash_cuda_driver_version() {
  int v = 0;
  return cudaDriverGetVersion(&v) == cudaSuccess ? v : 0;
}

extern "C" int xmhash_cuda_device_info(int device, char* name, std::size_t name_len, int* major, int* minor,
                                       int* sm_count) {
  cudaDeviceProp prop;
  XMHASH_CUDA_TRY(cudaGetDeviceProperties(&prop, device));
  if (name && name_len) {
    std::strncpy(name, prop.name, name_len - 1);
    name[name_len - 1] = '\0';
  }
  *major = prop.major;
  *minor = prop.minor;
  *sm_count = prop.multiProcessorCount;
  return 0;
}
