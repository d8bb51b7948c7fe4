#include "services/actor/replay_writer.h"

#include "common/net/server.h"
#include "common/util/log.h"
#include "common/util/zstd.h"

namespace rally {

ReplayWriter::ReplayWriter(std::string address, std::vector<std::string> tables,
                           std::string actor_id, int max_in_flight, prometheus::Registry* metrics)
    : address_(std::move(address)),
      tables_(std::move(tables)),
      actor_id_(std::move(actor_id)),
      max_in_flight_(static_cast<size_t>(max_in_flight)) {
  if (metrics != nullptr) {
    acked_counter_ = &AddCounter(*metrics, "rally_actor_trajectories_acked_total",
                                 "Trajectories the replay acknowledged.");
    rejected_counter_ = &AddCounter(*metrics, "rally_actor_trajectories_rejected_total",
                                    "Trajectories the replay refused.");
    in_flight_ = &AddGauge(*metrics, "rally_actor_trajectories_in_flight",
                           "Trajectories queued or sent but not yet acknowledged.");
  }
  thread_ = std::thread([this] { Loop(); });
}

std::vector<uint64_t> ReplayWriter::acked_sequences() const {
  std::lock_guard<std::mutex> lock(mu_);
  return acked_sequences_;
}

bool ReplayWriter::Flush(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return unacked_.empty(); });
}

ReplayWriter::~ReplayWriter() { Stop(); }

bool ReplayWriter::Push(v1::Trajectory trajectory) {
  auto out = std::make_shared<Outgoing>();
  {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return stop_ || unacked_.size() < max_in_flight_; });
    if (stop_) return false;
    trajectory.set_actor_id(actor_id_);
    trajectory.set_sequence(next_sequence_++);
    unacked_.push_back(out);
    if (in_flight_) in_flight_->Set(static_cast<double>(unacked_.size()));
  }
  // Large items travel compressed; the replay decompresses them before validating.
  if (trajectory.ByteSizeLong() > kWireCompressAboveBytes) {
    out->zstd = ZstdCompressIfWorthIt(trajectory.SerializeAsString());
  }
  if (out->zstd.empty()) out->trajectory = std::move(trajectory);
  {
    std::lock_guard<std::mutex> lock(mu_);
    out->ready = true;
  }
  cv_.notify_all();
  return true;
}

void ReplayWriter::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    if (ctx_) ctx_->TryCancel();
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void ReplayWriter::Loop() {
  auto stub = v1::ReplayService::NewStub(MakeChannel(address_, /*own_connection=*/true));
  while (true) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_) return;
      sent_ = 0;  // everything unacknowledged goes out again on the new stream
    }
    RunStream(*stub);
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, std::chrono::milliseconds(200), [&] { return stop_; });
  }
}

void ReplayWriter::RunStream(v1::ReplayService::Stub& stub) {
  grpc::ClientContext ctx;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_) return;
    ctx_ = &ctx;
  }
  auto stream = stub.Insert(&ctx);
  // Acks arrive in order: each one settles the oldest sent trajectory.
  std::thread reader([&] {
    v1::InsertResponse ack;
    while (stream->Read(&ack)) {
      std::lock_guard<std::mutex> lock(mu_);
      if (unacked_.empty() || sent_ == 0) break;
      if (ack.code() == 0) {
        ++acked_;
        if (ack.duplicate()) ++duplicates_;
        acked_sequences_.push_back(ack.sequence());
        if (acked_counter_) acked_counter_->Increment();
      } else {
        ++rejected_;
        if (rejected_counter_) rejected_counter_->Increment();
        LogWarning("trajectory rejected", {{"sequence", ack.sequence()}, {"error", ack.error()}});
      }
      unacked_.pop_front();
      --sent_;
      if (in_flight_) in_flight_->Set(static_cast<double>(unacked_.size()));
      cv_.notify_all();
    }
    std::lock_guard<std::mutex> lock(mu_);
    ctx_ = nullptr;
    ctx.TryCancel();
    cv_.notify_all();
  });
  v1::InsertRequest req;
  for (const std::string& t : tables_) req.add_tables(t);
  req.set_priority(1.0);
  while (true) {
    std::shared_ptr<Outgoing> out;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] {
        return stop_ || ctx_ == nullptr || (sent_ < unacked_.size() && unacked_[sent_]->ready);
      });
      if (stop_ || ctx_ == nullptr) break;
      out = unacked_[sent_++];
    }
    // Only this thread touches a ready item's payload: lend it to the request (no copy) and
    // take it back once Write has serialised it, for a resend.
    const bool compressed = !out->zstd.empty();
    if (compressed) {
      req.set_trajectory_zstd(std::move(out->zstd));
    } else {
      req.mutable_trajectory()->Swap(&out->trajectory);
    }
    bool ok = stream->Write(req);
    if (compressed) {
      out->zstd = std::move(*req.mutable_trajectory_zstd());
      req.clear_trajectory_zstd();
    } else {
      req.mutable_trajectory()->Swap(&out->trajectory);
      req.clear_trajectory();
    }
    if (!ok) break;
  }
  stream->WritesDone();
  ctx.TryCancel();
  reader.join();
  grpc::Status s = stream->Finish();
  std::lock_guard<std::mutex> lock(mu_);
  ctx_ = nullptr;
  if (!stop_ && !s.ok()) {
    LogWarning("insert stream broke; resending unacknowledged",
               {{"error", s.error_message()}, {"unacked", unacked_.size()}});
  }
}

}  // namespace rally
