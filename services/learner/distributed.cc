#include "services/learner/distributed.h"

#include <torch/torch.h>

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef USE_C10D_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <gloo/common/error.h>

#include <cstdlib>
#include <cstring>

#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace rally {
namespace {

constexpr char kPeerLostPayload[] = "type.rally.dev/learner.PeerLost";

// What the failures of a lost peer say where their type does not: the TCPStore's timeouts and
// the socket errors of a closed connection (the store's, and NCCL's).
constexpr const char* kPeerLostMessages[] = {
    "Socket Timeout",
    "Wait timeout",
    "Connection reset by peer",
    "Connection closed by peer",
    "Broken pipe",
#ifdef USE_C10D_NCCL
    "NCCL communicator was aborted",
    "Watchdog caught collective operation timeout",
#endif
};

// Whether `e`, thrown by a collective or while a group forms, says that a peer rank is gone
// rather than that the call was wrong. Gloo throws gloo::IoException for every transport failure
// (a connection reset, closed or refused, a timeout waiting for a peer's data); its other
// gloo::Exception kinds are errors of their own. An exception of another type (LibTorch's checks
// of arguments and sizes, gloo::EnforceNotMet, the TCPStore's and NCCL's errors) is a lost peer
// only when its message names one of kPeerLostMessages.
bool IsPeerLossException(const std::exception& e) {
  if (dynamic_cast<const gloo::IoException*>(&e) != nullptr) return true;
  if (dynamic_cast<const gloo::Exception*>(&e) != nullptr) return false;
  const auto* c10 = dynamic_cast<const c10::Error*>(&e);
  const absl::string_view message = c10 != nullptr ? c10->what_without_backtrace() : e.what();
  for (const char* marker : kPeerLostMessages) {
    if (absl::StrContains(message, marker)) return true;
  }
  return false;
}

std::string Describe(const char* what, const std::exception& e) {
  const auto* c10 = dynamic_cast<const c10::Error*>(&e);
  return absl::StrCat(what, ": ", c10 != nullptr ? c10->what_without_backtrace() : e.what());
}

// The rendezvous: its failures are errors (the group never formed: a wrong master, a rank that
// never came), not the loss of a peer.
absl::Status FromTorch(const char* what, const std::exception& e) {
  return absl::UnavailableError(Describe(what, e));
}

absl::Status EnvInt(const char* name, int min, int max, int& out) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return absl::OkStatus();
  int parsed = 0;
  if (!absl::SimpleAtoi(v, &parsed) || parsed < min || parsed > max) {
    return absl::InvalidArgumentError(absl::StrCat("environment variable ", name, "=\"", v,
                                                   "\": expected an integer in [", min, ", ", max,
                                                   "]"));
  }
  out = parsed;
  return absl::OkStatus();
}

}  // namespace

absl::Status PeerLostError(absl::string_view message) {
  absl::Status status = absl::UnavailableError(absl::StrCat("lost a peer rank: ", message));
  status.SetPayload(kPeerLostPayload, absl::Cord("1"));
  return status;
}

bool IsPeerLost(const absl::Status& status) {
  return status.GetPayload(kPeerLostPayload).has_value();
}

absl::Status CollectiveError(const char* what, const std::exception& e) {
  if (IsPeerLossException(e)) return PeerLostError(Describe(what, e));
  return absl::UnavailableError(Describe(what, e));
}

absl::StatusOr<DistributedOptions> DistributedOptionsFromEnv(DistributedOptions o) {
  if (auto s = EnvInt("WORLD_SIZE", 1, 1 << 16, o.world_size); !s.ok()) return s;
  if (auto s = EnvInt("RANK", 0, 1 << 16, o.rank); !s.ok()) return s;
  if (auto s = EnvInt("MASTER_PORT", 1, 65535, o.master_port); !s.ok()) return s;
  if (const char* v = std::getenv("MASTER_ADDR"); v != nullptr && *v != '\0') o.master_addr = v;
  if (o.rank >= o.world_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("rank ", o.rank, " is outside WORLD_SIZE ", o.world_size));
  }
  return o;
}

uint64_t TensorsDigest(const std::vector<at::Tensor>& tensors) {
  uint64_t h = 1469598103934665603ull;
  for (const at::Tensor& t : tensors) {
    at::Tensor c = t.detach().to(torch::kCPU, torch::kFloat32).contiguous();
    const auto* p = static_cast<const unsigned char*>(c.data_ptr());
    for (size_t i = 0, n = c.numel() * sizeof(float); i < n; ++i) {
      h ^= p[i];
      h *= 1099511628211ull;
    }
  }
  return h;
}

// ---------------------------------------------------------------------------------------------

struct Rendezvous::Impl {
  c10::intrusive_ptr<c10d::Store> store;
};

Rendezvous::Rendezvous(DistributedOptions options, std::unique_ptr<Impl> impl)
    : options_(std::move(options)), impl_(std::move(impl)) {}
Rendezvous::~Rendezvous() = default;

c10::intrusive_ptr<c10d::Store> Rendezvous::store() const { return impl_->store; }

absl::StatusOr<std::unique_ptr<Rendezvous>> Rendezvous::Connect(const DistributedOptions& o) {
  c10d::TCPStoreOptions opts;
  opts.port = static_cast<uint16_t>(o.master_port);
  opts.isServer = o.rank == 0;
  opts.numWorkers = o.world_size;
  opts.waitWorkers = true;
  opts.timeout = o.timeout;
  auto impl = std::make_unique<Impl>();
  try {
    impl->store = c10::make_intrusive<c10d::TCPStore>(o.master_addr, opts);
  } catch (const std::exception& e) {
    return FromTorch(absl::StrCat("rendezvous at ", o.master_addr, ":", o.master_port, " (rank ",
                                  o.rank, " of ", o.world_size, ")")
                         .c_str(),
                     e);
  }
  return std::unique_ptr<Rendezvous>(new Rendezvous(o, std::move(impl)));
}

// ---------------------------------------------------------------------------------------------

struct DataParallel::Impl {
  c10::intrusive_ptr<c10d::ProcessGroup> group;
  std::string backend;
  int rank = 0;
  int world_size = 1;
  size_t bucket_bytes = 0;
  // Where collectives' own small tensors live: NCCL reduces CUDA tensors only.
  torch::Device device = torch::kCPU;
};

DataParallel::DataParallel(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
DataParallel::~DataParallel() = default;
int DataParallel::rank() const { return impl_->rank; }
int DataParallel::world_size() const { return impl_->world_size; }
const std::string& DataParallel::backend() const { return impl_->backend; }

absl::StatusOr<std::unique_ptr<DataParallel>> DataParallel::Create(Rendezvous& rendezvous,
                                                                   const std::string& group,
                                                                   bool cuda) {
  const DistributedOptions& o = rendezvous.options();
  auto impl = std::make_unique<Impl>();
  impl->rank = o.rank;
  impl->world_size = o.world_size;
  impl->bucket_bytes = o.bucket_bytes;
  auto store = c10::make_intrusive<c10d::PrefixStore>(group + "/", rendezvous.store());
  try {
#ifdef USE_C10D_NCCL
    if (cuda) {
      auto options = c10d::ProcessGroupNCCL::Options::create();
      options->timeout = o.timeout;
      impl->group =
          c10::make_intrusive<c10d::ProcessGroupNCCL>(store, o.rank, o.world_size, options);
      impl->backend = "nccl";
      impl->device = torch::Device(torch::kCUDA);
    }
#else
    (void)cuda;
#endif
    if (!impl->group) {
      auto options = c10d::ProcessGroupGloo::Options::create(o.timeout);
      options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(o.local_host));
      options->threads = 2;
      impl->group =
          c10::make_intrusive<c10d::ProcessGroupGloo>(store, o.rank, o.world_size, options);
      impl->backend = "gloo";
    }
  } catch (const std::exception& e) {
    return CollectiveError(absl::StrCat("process group for ", group, " (rank ", o.rank, " of ",
                                        o.world_size, ", local address ", o.local_host, ")")
                               .c_str(),
                           e);
  }
  return std::unique_ptr<DataParallel>(new DataParallel(std::move(impl)));
}

absl::Status DataParallel::Broadcast(const std::vector<at::Tensor>& tensors) {
  try {
    torch::NoGradGuard no_grad;
    for (const at::Tensor& t : tensors) {
      std::vector<at::Tensor> one{t.is_contiguous() ? t : t.contiguous()};
      impl_->group->broadcast(one, c10d::BroadcastOptions{})->wait();
      if (!t.is_contiguous()) t.copy_(one[0]);
    }
  } catch (const std::exception& e) {
    return CollectiveError("broadcast", e);
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> DataParallel::AverageGradients(const std::vector<at::Tensor>& parameters,
                                                    bool stop) {
  absl::StatusOr<StepFlags> flags = AverageGradients(parameters, StepFlags{.stop = stop});
  if (!flags.ok()) return flags.status();
  return flags->stop;
}

absl::StatusOr<StepFlags> DataParallel::AverageGradients(const std::vector<at::Tensor>& parameters,
                                                         StepFlags flags) {
  torch::NoGradGuard no_grad;
  try {
    // Buckets of consecutive parameters; the first bucket also carries the flags.
    size_t begin = 0;
    StepFlags any;
    bool first = true;
    while (begin < parameters.size() || first) {
      size_t end = begin;
      size_t bytes = 0;
      while (end < parameters.size() &&
             (end == begin || bytes + parameters[end].numel() * 4 <= impl_->bucket_bytes)) {
        bytes += parameters[end].numel() * 4;
        ++end;
      }
      std::vector<at::Tensor> flat_parts;
      for (size_t i = begin; i < end; ++i) {
        const at::Tensor& p = parameters[i];
        flat_parts.push_back(p.grad().defined() ? p.grad().reshape({-1}).to(torch::kFloat32)
                                                : torch::zeros({p.numel()}, p.options()));
      }
      if (first) {
        auto device = parameters.empty() ? torch::Device(torch::kCPU) : parameters[0].device();
        flat_parts.push_back(torch::tensor({flags.stop ? 1.0f : 0.0f, flags.skip ? 1.0f : 0.0f},
                                           torch::TensorOptions().device(device)));
      }
      std::vector<at::Tensor> flat{torch::cat(flat_parts)};
      impl_->group->allreduce(flat)->wait();
      flat[0].div_(static_cast<double>(impl_->world_size));
      int64_t offset = 0;
      for (size_t i = begin; i < end; ++i) {
        const at::Tensor& p = parameters[i];
        at::Tensor mean = flat[0].narrow(0, offset, p.numel()).view(p.sizes());
        if (p.grad().defined()) {
          p.mutable_grad().copy_(mean);
        } else {
          p.mutable_grad() = mean.clone();
        }
        offset += p.numel();
      }
      if (first) {
        at::Tensor summed = flat[0].narrow(0, offset, 2).cpu();
        any.stop = summed[0].item<float>() > 0;
        any.skip = summed[1].item<float>() > 0;
      }
      first = false;
      begin = end;
    }
    return any;
  } catch (const std::exception& e) {
    return CollectiveError("gradient all-reduce", e);
  }
}

absl::StatusOr<std::vector<double>> DataParallel::SumAcrossRanks(
    const std::vector<double>& values) {
  try {
    std::vector<at::Tensor> t{torch::tensor(values, torch::kFloat64).to(impl_->device)};
    impl_->group->allreduce(t)->wait();
    at::Tensor sum = t[0].cpu();
    std::vector<double> out(values.size());
    std::memcpy(out.data(), sum.data_ptr<double>(), out.size() * sizeof(double));
    return out;
  } catch (const std::exception& e) {
    return CollectiveError("all-reduce of statistics", e);
  }
}

absl::StatusOr<std::vector<uint64_t>> DataParallel::GatherDigests(
    const std::vector<at::Tensor>& tensors) {
  try {
    int64_t digest = static_cast<int64_t>(TensorsDigest(tensors));
    auto int64 = torch::TensorOptions().dtype(torch::kInt64).device(impl_->device);
    std::vector<at::Tensor> in{torch::full({1}, digest, int64)};
    std::vector<std::vector<at::Tensor>> out(1);
    for (int r = 0; r < impl_->world_size; ++r) out[0].push_back(torch::zeros({1}, int64));
    impl_->group->allgather(out, in)->wait();
    std::vector<uint64_t> digests;
    for (const at::Tensor& t : out[0])
      digests.push_back(static_cast<uint64_t>(t.cpu().item<int64_t>()));
    return digests;
  } catch (const std::exception& e) {
    return CollectiveError("all-gather of weight digests", e);
  }
}

}  // namespace rally
