#include "services/replay/snapshot_pool.h"

#include <algorithm>
#include <utility>

#include "absl/time/time.h"
#include "common/net/server.h"
#include "common/util/log.h"
#include "common/util/snapshot_id.h"

namespace rally {

SnapshotPoolPoller::SnapshotPoolPoller(std::function<std::string()> address,
                                       std::shared_ptr<Curriculum> curriculum,
                                       std::chrono::milliseconds period)
    : address_(std::move(address)), curriculum_(std::move(curriculum)), period_(period) {}

SnapshotPoolPoller::~SnapshotPoolPoller() { Stop(); }

void SnapshotPoolPoller::Start() {
  thread_ = std::thread([this] {
    do {
      absl::Status s = PollOnce();
      if (!s.ok() && !failing_) {
        LogWarning("cannot read the learner's snapshot pool; retrying every period",
                   {{"error", s.ToString()}});
      } else if (s.ok() && failing_) {
        LogInfo("reading the learner's snapshot pool again");
      }
      failing_ = !s.ok();
    } while (!stop_.WaitForNotificationWithTimeout(absl::FromChrono(period_)));
  });
}

void SnapshotPoolPoller::Stop() {
  if (!stop_.HasBeenNotified()) stop_.Notify();
  if (thread_.joinable()) thread_.join();
}

absl::Status SnapshotPoolPoller::PollOnce() {
  const std::string address = address_();
  if (address.empty()) return absl::UnavailableError("the learner has not registered yet");
  if (address != channel_address_ || stub_ == nullptr) {
    stub_ = v1::WeightService::NewStub(MakeChannel(address));
    channel_address_ = address;
  }
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() +
                   std::max(period_, std::chrono::milliseconds(500)));
  v1::ListSnapshotsResponse resp;
  grpc::Status st = stub_->ListSnapshots(&ctx, v1::ListSnapshotsRequest(), &resp);
  if (!st.ok()) {
    return absl::UnavailableError("ListSnapshots at " + address + ": " + st.error_message());
  }
  std::vector<std::string> pool;
  for (const v1::SnapshotInfo& info : resp.snapshots()) {
    if (info.version() >= 1) pool.push_back(SnapshotOpponentId(info.version()));
  }
  if (pool == pool_) return absl::OkStatus();
  if (auto s = curriculum_->SetPool(pool); !s.ok()) return s;
  pool_ = std::move(pool);
  return absl::OkStatus();
}

}  // namespace rally
