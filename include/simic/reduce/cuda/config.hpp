// Whether simic's fused CUDA back end is compiled in (SIMIC_CUDA = 1) or
// compiled out (0). The run-time part needs LibTorch's CUDA headers
// (c10/cuda) and the CUDA runtime's header they include; Debian's LibTorch is
// CPU-only, so there it is compiled out and CUDA tensors go through
// torch_ops_backend. The headers alone decide nothing (Debian's CPU-only
// LibTorch ships c10/cuda headers without the library), so it is off unless
// the build says otherwise: Meson defines SIMIC_CUDA=1 when it finds the
// torch_cuda and c10_cuda libraries; other builds add -DSIMIC_CUDA=1 and the
// CUDA runtime's include directory. This is the one place the CUDA back
// end's availability is decided.
//
// What never needs CUDA: the per-element accumulation code
// (simic/reduce/cuda/accumulate.hpp), the launch planner (launch_plan.hpp) and the
// NVRTC compile step (nvrtc.hpp, loads libnvrtc at run time): CI compiles
// and tests those on machines without a GPU.
#pragma once

#ifndef SIMIC_CUDA
#define SIMIC_CUDA 0
#endif
