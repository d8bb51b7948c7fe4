// Data parallelism across learner ranks with LibTorch's c10d, following PyTorch's conventions:
// rank 0 hosts a TCPStore at MASTER_ADDR:MASTER_PORT, the WORLD_SIZE ranks rendezvous through
// it, and each job gets its own process group (Gloo on CPU; NCCL when the build has CUDA and
// the training device is a GPU). Every rank samples and trains on its own batches; gradients are
// averaged across ranks in flat buckets, so the ranks take identical optimiser steps from
// identical weights (checked with an all-gathered digest).
//
// Every collective is matched across ranks: the trainer calls them in the same order on every
// rank. A rank that has to stop (no more batches, job ended) still takes part in the step's
// all-reduce with its stop flag set, and every rank then stops after the same step.
//
// Losing a rank: a collective whose peer is gone fails on every surviving rank, at once when the
// peer's process exited (its connections are reset or closed) or after the group's timeout when
// it hangs. Such a failure is returned as a peer-lost status (IsPeerLost): not an error of the
// job, but the end of this group, which the ranks cannot mend in place; the learner exits and is
// restarted with its whole group (main.cc). Every other failure is an error of its own.
#pragma once

#include <ATen/core/Tensor.h>

#include <chrono>
#include <cstdint>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace c10d {
class Store;
}

namespace rally {

struct DistributedOptions {
  int rank = 0;
  int world_size = 1;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  // Address of this rank's network interface for Gloo's connections (its --host).
  std::string local_host = "127.0.0.1";
  std::chrono::milliseconds timeout{std::chrono::seconds(60)};
  // Gradients are all-reduced in flat buckets of at most this many bytes.
  size_t bucket_bytes = 16 << 20;
};

// The status of a collective, or of creating a process group, that failed because a peer rank
// was lost: its process exited (Gloo's connection reset or closed by the peer) or did not answer
// within DistributedOptions::timeout. Code UNAVAILABLE with a payload that IsPeerLost reads.
absl::Status PeerLostError(absl::string_view message);
bool IsPeerLost(const absl::Status& status);
// The status of `e`, thrown by the collective or group creation `what`: PeerLostError for
// Gloo's transport failures (gloo::IoException: a connection reset, closed or refused, a peer's
// data not come within the timeout) and the TCPStore's timeouts and closed sockets; UNAVAILABLE
// for anything else (a bad argument, mismatched sizes: errors of their own).
absl::Status CollectiveError(const char* what, const std::exception& e);

// Fills rank, world size and the master from RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT
// where set; `defaults` gives the rest. Errors name the variable and its value.
absl::StatusOr<DistributedOptions> DistributedOptionsFromEnv(DistributedOptions defaults);

// The rendezvous store of a learner process, created once (rank 0 serves it) and shared by
// the process groups of successive jobs.
class Rendezvous {
 public:
  static absl::StatusOr<std::unique_ptr<Rendezvous>> Connect(const DistributedOptions& options);
  ~Rendezvous();
  const DistributedOptions& options() const { return options_; }
  c10::intrusive_ptr<c10d::Store> store() const;

 private:
  struct Impl;
  Rendezvous(DistributedOptions options, std::unique_ptr<Impl> impl);
  DistributedOptions options_;
  std::unique_ptr<Impl> impl_;
};

// What a rank says about an optimiser step, sent along with its gradients: the all-reduce ORs
// each flag over the ranks, so that every rank takes the same decision.
struct StepFlags {
  bool stop = false;  // this rank has no batch (the job ended): every rank stops after the step
  bool skip = false;  // this rank's loss is not finite: no rank applies the step
};

// One job's process group.
class DataParallel {
 public:
  // `group` names the process group in the store (the job id): ranks must agree on it.
  // `cuda`: NCCL for CUDA tensors when built with it, else Gloo. PeerLostError when a peer's
  // connection fails while the group forms.
  static absl::StatusOr<std::unique_ptr<DataParallel>> Create(Rendezvous& rendezvous,
                                                              const std::string& group, bool cuda);
  ~DataParallel();

  int rank() const;
  int world_size() const;
  const std::string& backend() const;

  // Every collective below fails with PeerLostError when a peer rank is lost (see above), and with
  // another status for any other failure.

  // Copies rank 0's tensors into every rank's (parameters at the start of a job).
  absl::Status Broadcast(const std::vector<at::Tensor>& tensors);
  // Replaces every parameter's gradient with its mean over the ranks (missing gradients count
  // as zeros) and returns the flags ORed over the ranks. `flags` are this rank's.
  absl::StatusOr<StepFlags> AverageGradients(const std::vector<at::Tensor>& parameters,
                                             StepFlags flags);
  // The same with the stop flag alone: returns whether any rank asked to stop.
  absl::StatusOr<bool> AverageGradients(const std::vector<at::Tensor>& parameters, bool stop);
  // Sum over ranks of small CPU values (counters, statistics).
  absl::StatusOr<std::vector<double>> SumAcrossRanks(const std::vector<double>& values);
  // The digest of every rank's tensors, in rank order.
  absl::StatusOr<std::vector<uint64_t>> GatherDigests(const std::vector<at::Tensor>& tensors);

 private:
  struct Impl;
  explicit DataParallel(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// FNV-1a over the tensors' bytes (as contiguous CPU float data), in order.
uint64_t TensorsDigest(const std::vector<at::Tensor>& tensors);

}  // namespace rally
