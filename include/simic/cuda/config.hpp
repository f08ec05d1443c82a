// Whether simic's fused CUDA back end is compiled in (SIMIC_CUDA = 1) or
// compiled out (0). The run-time part needs LibTorch's CUDA headers
// (c10/cuda) and the CUDA runtime's header they include; Debian's LibTorch is
// CPU-only, so there it is compiled out and CUDA tensors go through
// torch_ops_backend. Meson defines SIMIC_CUDA=0 when it finds no torch_cuda
// library (headers alone do not mean the library is there to link); other
// builds may define it themselves. This is the one place the CUDA back end's
// availability is decided.
//
// What never needs CUDA: the per-element accumulation code
// (simic/cuda/accumulate.hpp), the launch planner (launch_plan.hpp) and the
// NVRTC compile step (nvrtc.hpp, loads libnvrtc at run time): CI compiles
// and tests those on machines without a GPU.
#pragma once

#ifndef SIMIC_CUDA
#if defined(__has_include)
#if __has_include(<c10/cuda/CUDAStream.h>) && __has_include(<cuda_runtime_api.h>)
#define SIMIC_CUDA 1
#endif
#endif
#endif
#ifndef SIMIC_CUDA
#define SIMIC_CUDA 0
#endif
