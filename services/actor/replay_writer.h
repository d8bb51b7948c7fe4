// Streams an actor's trajectories to the replay over one Insert stream and counts the acks.
//
// Push() numbers a trajectory (its key: the writer's actor_id and incarnation, and the next
// sequence number, 1, 2, ...), queues it
// and blocks while `max_in_flight` trajectories are queued or sent but not yet acknowledged: a
// slow or full replay pushes back on the environments. A trajectory counts as inserted only when
// its ack arrives. When the stream breaks, the writer reconnects and sends the unacknowledged
// trajectories again, in order; the same happens when the replay answers an item with
// UNAVAILABLE (it could not make it durable: a full disk), after a pause that doubles up to 5 s
// while that lasts. The replay recognises the ones it had already stored by their
// key and does not store them twice. Each writer draws a new incarnation: a restarted actor keeps
// its actor_id but is a new producer, so nothing it sends is taken for its earlier life's.
//
// Push() also encodes, on the pushing thread, so that several actor threads encode in parallel
// while the one sending thread only writes: it serialises the trajectory once, straight into a
// gRPC slice, and compresses it there when it is above 16 KiB and compresses well; a trajectory
// pushed as shared and unchanging keeps its large arrays where they are, referenced by slices
// (EncodeTrajectory). The sending thread frames those slices as an InsertRequest without
// copying them (the stream carries raw bytes), and they are kept until the ack, so a resend
// costs no second encoding. Items ready together go out in one message (InsertRequest.more, up
// to kMaxBatchBytes): a fast actor's small items do not cost a message each, and a slow one's
// are not held back. The writer's stream has a TCP connection of its own (not shared with the
// actor's other channels).
// Thread safety: Push() from any thread.
#pragma once

#include <grpcpp/support/slice.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/metrics/metrics.h"
#include "common/net/insert_wire.h"
#include "common/util/zstd.h"
#include "rally/v1/replay.grpc.pb.h"

namespace rally {

// ReplayService.Insert with requests written as bytes: each must be a serialised
// InsertRequest (the writer frames them from encoded trajectories without copying).
std::unique_ptr<grpc::ClientReaderWriter<grpc::ByteBuffer, v1::InsertResponse>> OpenRawInsertStream(
    const std::shared_ptr<grpc::Channel>& channel, grpc::ClientContext* ctx);

// Arrays of a turn (token ids, observations, log-probabilities) from this size on travel by
// reference (EncodeTrajectory).
inline constexpr size_t kReferenceArrayBytes = 4096;

// An item's idempotency key (trajectory.proto): its producer (actor_id, incarnation) and its
// sequence number.
struct ItemKey {
  std::string actor_id;
  uint64_t incarnation = 0;
  uint64_t sequence = 0;
};

// A random, non-zero incarnation for a producer starting now.
uint64_t DrawIncarnation();

// `trajectory` serialised, with `key` as its key, as slices that parse as one Trajectory: a turn's
// packed fixed-width arrays of kReferenceArrayBytes or more are referenced where they lie (each
// slice holds `trajectory`), everything else is encoded. A trajectory with fields this build does
// not know is encoded whole.
std::vector<grpc::Slice> EncodeTrajectory(std::shared_ptr<const v1::Trajectory> trajectory,
                                          const ItemKey& key);

class ReplayWriter {
 public:
  ReplayWriter(std::string address, std::vector<std::string> tables, std::string actor_id,
               int max_in_flight, prometheus::Registry* metrics);
  ~ReplayWriter();

  // Numbers, encodes and queues `trajectory` (its key is the writer's, whatever `trajectory`
  // holds); false if the writer was stopped.
  bool Push(const v1::Trajectory& trajectory);
  // The same for a trajectory that no one changes any more: its large arrays go out from where
  // they lie rather than copied (EncodeTrajectory), and it is held until acknowledged. For
  // language-model turns, whose token arrays are most of an item's bytes.
  bool Push(std::shared_ptr<const v1::Trajectory> trajectory);
  // Blocks until every pushed trajectory is acknowledged or `timeout` passes; true if all were.
  bool Flush(std::chrono::milliseconds timeout);
  // Stops sending; what is not acknowledged by then is dropped.
  void Stop();

  const std::string& actor_id() const { return actor_id_; }
  uint64_t incarnation() const { return incarnation_; }
  int64_t acked() const { return acked_; }
  int64_t duplicates() const { return duplicates_; }
  // Sequence numbers acknowledged as stored (including duplicates), for tests.
  std::vector<uint64_t> acked_sequences() const;
  int64_t rejected() const { return rejected_; }
  // Items the replay could not make durable (UNAVAILABLE acks), each sent again.
  int64_t retried() const { return retried_; }

  // The most bytes of encoded items sent in one message (one item may be larger).
  static constexpr size_t kMaxBatchBytes = 1 << 20;

 private:
  // A pushed trajectory in the form it travels in. Pushes reserve their place (and sequence
  // number) in order, then encode outside the lock; the sender waits for `ready`.
  struct Outgoing {
    uint64_t sequence = 0;
    InsertBody wire;  // the serialised Trajectory in pieces, or its zstd frame
    bool ready = false;
  };

  // One InsertRequest carrying `items` in order (EncodeInsertRequest): the first as the
  // request's own item, the rest in `more`; each is `prefix` (tables, priority) and its body.
  static grpc::ByteBuffer Frame(const std::string& prefix,
                                const std::vector<std::shared_ptr<const Outgoing>>& items);
  // Waits for room, then queues a new item and numbers it; nullptr if the writer was stopped.
  std::shared_ptr<Outgoing> Reserve();
  // Compresses `body` where that pays and hands it to the sender.
  void MarkReady(Outgoing& out, std::vector<grpc::Slice> body);
  void Loop();
  // Runs one stream until it breaks or the writer stops.
  void RunStream(const std::shared_ptr<grpc::Channel>& channel);

  const std::string address_;
  const std::vector<std::string> tables_;
  const std::string actor_id_;
  const uint64_t incarnation_;
  uint64_t next_sequence_ = 1;
  std::vector<uint64_t> acked_sequences_;
  const size_t max_in_flight_;
  mutable std::mutex mu_;
  std::condition_variable cv_;        // acks settled, stop: Push, Flush and the retry wait
  std::condition_variable ready_cv_;  // an item is ready to send, stop, stream ended: the sender
  // Trajectories not yet acknowledged, oldest first; the first `sent_` of them are on the wire.
  std::deque<std::shared_ptr<Outgoing>> unacked_;
  size_t sent_ = 0;
  bool stop_ = false;
  grpc::ClientContext* ctx_ = nullptr;
  std::atomic<int64_t> acked_{0};
  std::atomic<int64_t> rejected_{0};
  std::atomic<int64_t> duplicates_{0};
  std::atomic<int64_t> retried_{0};
  // The pause before a new stream: 200 ms, doubling up to 5 s while the replay cannot store.
  static constexpr std::chrono::milliseconds kRetryDelay{200};
  static constexpr std::chrono::milliseconds kMaxRetryDelay{5000};
  std::chrono::milliseconds retry_delay_ = kRetryDelay;  // guarded by mu_
  AdaptiveCompressor compressor_;
  std::thread thread_;

  prometheus::Counter* acked_counter_ = nullptr;
  prometheus::Counter* rejected_counter_ = nullptr;
  prometheus::Gauge* in_flight_ = nullptr;
};

}  // namespace rally
