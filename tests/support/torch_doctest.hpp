// Include this instead of <doctest/doctest.h> in every test that uses
// LibTorch. Debian's LibTorch is built with glog, whose CHECK macros would
// replace doctest's and make assertions vanish from the counts: LibTorch is
// included first here, glog's macros are removed, then doctest comes.
#pragma once

#include <ATen/ATen.h>
#include <torch/torch.h>

#undef CHECK
#undef CHECK_EQ
#undef CHECK_NE
#undef CHECK_LT
#undef CHECK_LE
#undef CHECK_GT
#undef CHECK_GE
#undef CHECK_NOTNULL
#undef CHECK_OP
#undef CHECK_STREQ
#undef CHECK_STRNE

#include <doctest/doctest.h>
