// How many threads the numerical libraries of a process may use.
#pragma once

#include <string>

namespace rally {

// Sets LibTorch's intra-op threads to `n`, and those of the BLAS that LibTorch calls when it is
// BLIS or OpenBLAS (Debian's libtorch links the system's libblas.so.3, which either provides once
// installed): their threads are their own, whatever LibTorch was told.
void SetComputeThreads(int n);

// The shared library that provides sgemm_ in this process (e.g. ".../blis-pthread/libblas.so.3",
// or ".../blas/libblas.so.3", the slow reference BLAS), or "" when it cannot be told.
std::string BlasLibrary();

}  // namespace rally
