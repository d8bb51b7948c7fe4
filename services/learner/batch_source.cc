#include "services/learner/batch_source.h"

#include <prometheus/histogram.h>

#include <deque>

#include "absl/strings/str_cat.h"
#include "common/net/server.h"
#include "common/util/zstd.h"

namespace rally {

BatchSource::BatchSource(BatchSourceOptions options, RoleBaselines baselines,
                         const std::atomic<int64_t>& version, prometheus::Histogram* policy_lag)
    : options_(std::move(options)),
      version_(version),
      policy_lag_(policy_lag),
      baselines_(std::move(baselines)),
      ready_(static_cast<size_t>(std::max(1, options_.decoded_ahead))) {
  for (const std::string& address : options_.replay_addresses) {
    auto shard = std::make_unique<Shard>();
    shard->stub = v1::ReplayService::NewStub(MakeChannel(address));
    shard->stream = shard->stub->Sample(&shard->ctx);
    v1::SampleRequest req;
    req.set_table(options_.table);
    req.set_batch_size(options_.batch_episodes);
    req.set_credits(options_.credits_per_shard);
    req.set_policy_version(version_);
    req.set_accept_zstd(true);
    shard->stream->Write(req);
    shards_.push_back(std::move(shard));
  }
  reader_ = std::thread([this] { ReadLoop(); });
}

BatchSource::~BatchSource() {
  Cancel();
  Finish();
}

void BatchSource::ReadLoop() {
  v1::SampleResponse response;
  size_t next = 0;
  while (!shards_.empty()) {
    Shard& shard = *shards_[next];
    next = (next + 1) % shards_.size();
    if (!shard.stream->Read(&response)) break;
    {
      v1::SampleRequest more;
      more.set_credits(1);
      more.set_policy_version(version_);
      shard.stream->Write(more);
    }
    std::vector<const v1::Trajectory*> episodes;
    const int64_t version = version_;
    // Items that came compressed are decoded here, off the training thread.
    std::deque<v1::Trajectory> decompressed;
    absl::Status bad_item;
    for (v1::SampledItem& item : *response.mutable_items()) {
      if (!item.trajectory_zstd().empty()) {
        auto raw = ZstdDecompress(item.trajectory_zstd(), kMaxMessageBytes);
        if (!raw.ok() || !decompressed.emplace_back().ParseFromString(*raw)) {
          bad_item = absl::DataLossError(
              absl::StrCat("sampled item ", item.key(), ": trajectory_zstd does not decode: ",
                           raw.ok() ? "not a Trajectory" : raw.status().message()));
          break;
        }
        episodes.push_back(&decompressed.back());
      } else {
        episodes.push_back(&item.trajectory());
      }
    }
    for (const v1::Trajectory* episode : episodes) {
      if (policy_lag_ == nullptr) continue;
      for (const v1::Turn& t : episode->turns()) {
        policy_lag_->Observe(static_cast<double>(version - t.policy_version()));
      }
    }
    if (!ready_.Push(bad_item.ok() ? Decode(episodes) : absl::StatusOr<TurnBatch>(bad_item))) {
      break;  // cancelled
    }
  }
  ready_.Close();
}

absl::StatusOr<TurnBatch> BatchSource::Decode(const std::vector<const v1::Trajectory*>& episodes) {
  // Advantages read and update the baselines in batch order: only this thread decodes, and
  // checkpoints read them meanwhile.
  std::lock_guard<std::mutex> lock(baselines_mu_);
  return BuildTurnBatch(episodes, options_.observation_size, options_.num_actions, baselines_,
                        options_.objective);
}

absl::StatusOr<std::optional<TurnBatch>> BatchSource::Next() {
  std::optional<absl::StatusOr<TurnBatch>> batch = ready_.Pop();
  if (!batch.has_value()) return std::optional<TurnBatch>();
  if (!batch->ok()) return batch->status();
  return std::optional<TurnBatch>(*std::move(*batch));
}

void BatchSource::Cancel() {
  ready_.Close();
  for (auto& shard : shards_) shard->ctx.TryCancel();
}

grpc::Status BatchSource::Finish() {
  if (finished_) return finish_status_;
  for (auto& shard : shards_) shard->ctx.TryCancel();
  if (reader_.joinable()) reader_.join();
  for (auto& shard : shards_) {
    grpc::Status s = shard->stream->Finish();
    if (finish_status_.ok() && !s.ok() && s.error_code() != grpc::StatusCode::CANCELLED) {
      finish_status_ = s;
    }
  }
  finished_ = true;
  return finish_status_;
}

std::map<RoleBaselines::Key, double> BatchSource::baselines() {
  std::lock_guard<std::mutex> lock(baselines_mu_);
  return baselines_.values();
}

}  // namespace rally
