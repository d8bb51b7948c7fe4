// Streams an actor's trajectories to the replay over one Insert stream and counts the acks.
//
// Push() queues a trajectory and blocks while `max_in_flight` trajectories are queued or sent
// but not yet acknowledged: a slow or full replay pushes back on the environments. A trajectory
// counts as inserted only when its ack arrives. When the stream breaks, the writer reconnects and
// sends the unacknowledged trajectories again, in order.
// Thread safety: Push() from any thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "common/metrics/metrics.h"
#include "rally/v1/replay.grpc.pb.h"

namespace rally {

class ReplayWriter {
 public:
  ReplayWriter(std::string address, std::string table, int max_in_flight,
               prometheus::Registry& metrics);
  ~ReplayWriter();

  // Queues `trajectory`; false if the writer was stopped.
  bool Push(v1::Trajectory trajectory);
  // Stops sending; what is not acknowledged by then is dropped.
  void Stop();

  int64_t acked() const { return acked_; }
  int64_t rejected() const { return rejected_; }

 private:
  void Loop();
  // Runs one stream until it breaks or the writer stops.
  void RunStream(v1::ReplayService::Stub& stub);

  const std::string address_;
  const std::string table_;
  const size_t max_in_flight_;
  std::mutex mu_;
  std::condition_variable cv_;
  // Trajectories not yet acknowledged, oldest first; the first `sent_` of them are on the wire.
  std::deque<v1::Trajectory> unacked_;
  size_t sent_ = 0;
  bool stop_ = false;
  grpc::ClientContext* ctx_ = nullptr;
  std::atomic<int64_t> acked_{0};
  std::atomic<int64_t> rejected_{0};
  std::thread thread_;

  prometheus::Counter& acked_counter_;
  prometheus::Counter& rejected_counter_;
  prometheus::Gauge& in_flight_;
};

}  // namespace rally
