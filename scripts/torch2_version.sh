#!/usr/bin/env bash
# The pip torch 2.x release the test command's 2.x stage uses, for LibTorch
# (scripts/libtorch2.sh) and for the Python module (scripts/python_tests.sh);
# SIMIC_LIBTORCH2_VERSION picks another.
echo "${SIMIC_LIBTORCH2_VERSION:-2.15.0}"
