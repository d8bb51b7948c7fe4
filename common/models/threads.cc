#include "common/models/threads.h"

#include <dlfcn.h>
#include <torch/torch.h>

#include <filesystem>

namespace rally {

void SetComputeThreads(int n) {
  torch::set_num_threads(n);
  using SetThreads = void (*)(int);
  if (auto set = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) {
    set(n);
  }
  using SetBlisThreads = void (*)(long);  // BLIS's dim_t
  if (auto set =
          reinterpret_cast<SetBlisThreads>(dlsym(RTLD_DEFAULT, "bli_thread_set_num_threads"))) {
    set(n);
  }
}

std::string BlasLibrary() {
  void* sgemm = dlsym(RTLD_DEFAULT, "sgemm_");
  Dl_info info{};
  if (sgemm == nullptr || dladdr(sgemm, &info) == 0 || info.dli_fname == nullptr) return "";
  // Debian installs libblas.so.3 as a link chosen by update-alternatives: name its target.
  std::error_code error;
  std::filesystem::path real = std::filesystem::canonical(info.dli_fname, error);
  return error ? info.dli_fname : real.string();
}

}  // namespace rally
