#include "tests/integration/control_and_replay.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <thread>

#include "common/net/free_port.h"
#include "common/net/server.h"
#include "rally/v1/control.grpc.pb.h"
#include "rally/v1/replay.grpc.pb.h"

namespace rally::testing {

using namespace std::chrono_literals;

ControlAndReplay::ControlAndReplay(const std::string& dir, const std::string& data_dir)
    : dir_(dir), replay_log_(dir + "/replay.log") {
  control_ = std::make_unique<Process>(
      "rally-control",
      std::vector<std::string>{"--port=0", "--port_file=" + dir + "/control.port",
                               "--db=" + dir + "/control.sqlite"},
      dir + "/control.log");
  control_address_ = "127.0.0.1:" + WaitForPortFile(dir + "/control.port", 30s);
  const int port = FreePort();
  address_ = "127.0.0.1:" + std::to_string(port);
  args_ = {"--control=" + control_address_, "--port=" + std::to_string(port), "--name=replay-0"};
  if (!data_dir.empty()) args_.push_back("--data_dir=" + data_dir);
  StartReplay();
}

void ControlAndReplay::StartReplay() {
  replay_ = std::make_unique<Process>("rally-replay", args_, replay_log_);
  ++starts_;
  if (!WaitForServing(address_, 30s).ok()) ADD_FAILURE() << ReadFile(replay_log_);
}

void ControlAndReplay::KillReplay() {
  kill(replay_->pid(), SIGKILL);
  replay_->Wait(10s);
}

void ControlAndReplay::StopReplay() {
  kill(replay_->pid(), SIGTERM);
  replay_->Wait(10s);
}

std::string ControlAndReplay::SubmitJob(const std::string& spec_yaml) {
  auto jobs = v1::JobService::NewStub(MakeChannel(control_address_));
  grpc::ClientContext ctx;
  ctx.set_deadline(DeadlineIn(10s));
  v1::SubmitJobRequest req;
  req.set_spec_yaml(spec_yaml);
  v1::Job job;
  if (!jobs->SubmitJob(&ctx, req, &job).ok()) ADD_FAILURE() << "SubmitJob failed";
  return job.id();
}

int64_t ControlAndReplay::TableSize(const std::string& job_id) {
  auto stub = v1::ReplayService::NewStub(MakeChannel(address_));
  for (int i = 0; i < 600; ++i) {
    grpc::ClientContext c;
    c.set_deadline(DeadlineIn(2s));
    v1::InfoResponse info;
    if (stub->Info(&c, v1::InfoRequest(), &info).ok() && info.job_id() == job_id &&
        info.tables_size() == 1) {
      return info.tables(0).size();
    }
    std::this_thread::sleep_for(50ms);
  }
  return -1;
}

std::string ControlAndReplay::Metrics() {
  // Each start appends its "serving" line, with its metrics address, to the same log.
  for (int i = 0; i < 300; ++i) {
    auto lines = LogLines(replay_log_, "serving");
    if (lines.size() >= starts_) {
      return HttpGet(lines[starts_ - 1]["metrics"].get<std::string>(), "/metrics");
    }
    std::this_thread::sleep_for(50ms);
  }
  return "";
}

}  // namespace rally::testing
