// Stand-in for the header a CUDA build of LibTorch generates, so that CI can
// compile simic's SIMIC_CUDA=1 code against the c10/cuda headers Debian's
// CPU-only LibTorch ships (compile only: there is no c10_cuda to link).
#pragma once
#define C10_CUDA_BUILD_SHARED_LIBS
