// Faults injected into one `rally run` job: at random moments chosen from a printed seed
// (RALLY_FAULTS_SEED repeats a run), its actor, its replay and its learner are each killed with
// SIGKILL, in a random order, while Kuhn poker trains (configs/cluster_faults.yaml). The job must
// end SUCCEEDED, the cluster must have restarted each process once and said so, and nothing the
// replay acknowledged may be lost or stored twice.
//
// How loss is measured: the job's replay fsyncs every insert before acknowledging it and writes
// no snapshot, so its write-ahead log holds every insert and sample of the job; the test reads
// it after the run. An actor's writer gets its acks in order, so an incarnation that counted A
// acks (its metric rally_actor_trajectories_acked_total, polled until it is killed or the job
// ends) had sequences 1..A acknowledged: each must be in the log exactly once. A sequence missing
// below the highest one the log holds for that producer is lost too (it was acknowledged, or a
// later one could not have been). Every item is sampled at most once (max_times_sampled 1). The
// learner's policy version, as control reports it, never goes back, and a restarted learner
// resumes from the newest checkpoint written before it was killed.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_format.h"
#include "common/net/control_client.h"
#include "common/net/server.h"
#include "nlohmann/json.hpp"
#include "rally/v1/control.grpc.pb.h"
#include "services/replay/durable_store.h"
#include "tests/integration/process.h"

namespace rally {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// What one actor incarnation (a producer) had acknowledged when last seen.
struct Producer {
  std::string actor_id;
  int64_t acked = 0;
  int64_t rejected = 0;
};
using Producers = std::map<uint64_t, Producer>;  // by incarnation

// The job as the test sees it while it runs: the actor's producers and their acks (its log and
// metrics), the job's progress (control), the learner's newest checkpoint (its directory).
class JobWatch {
 public:
  explicit JobWatch(std::string workdir) : workdir_(std::move(workdir)) {}

  // Reads everything once; returns false until control answers for the job.
  bool Poll() {
    PollActor();
    return PollJob();
  }
  const Producers& producers() const { return producers_; }
  // The incarnation of the actor now running (0 before it inserts).
  uint64_t current_incarnation() const { return current_; }
  const v1::Job& job() const { return job_; }
  const std::string& job_id() const { return job_id_; }
  // Policy versions that control reported lower than one it reported before.
  const std::vector<std::string>& versions_gone_back() const { return versions_gone_back_; }
  std::string Log(const std::string& name) const { return workdir_ + "/logs/" + name + ".log"; }
  pid_t Pid(const std::string& name) const {
    const std::string text = testing::ReadFile(workdir_ + "/pids/" + name + ".pid");
    return text.empty() ? -1 : static_cast<pid_t>(std::stol(text));
  }
  // The step of the newest whole checkpoint, or -1.
  int64_t NewestCheckpointStep() const {
    int64_t newest = -1;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(workdir_ + "/checkpoints", ec)) {
      const std::string n = e.path().filename().string();
      if (n.rfind("step-", 0) == 0 && n.find('.') == std::string::npos) {
        newest = std::max<int64_t>(newest, std::stoll(n.substr(5)));
      }
    }
    return newest;
  }

 private:
  // The running actor's log says its metrics address ("started") and then its incarnation
  // ("inserting as producer"); the two belong together while each has been said as often.
  void PollActor() {
    const std::string log = Log("actor-0");
    auto started = testing::LogLines(log, "started");
    auto inserting = testing::LogLines(log, "inserting as producer");
    if (inserting.empty() || started.size() != inserting.size()) return;
    current_ = std::stoull(inserting.back()["incarnation"].get<std::string>());
    Producer& p = producers_[current_];
    p.actor_id = inserting.back()["actor_id"];
    const std::string metrics =
        testing::HttpGet(started.back()["metrics"].get<std::string>(), "/metrics");
    const double acked = testing::MetricValue(metrics, "rally_actor_trajectories_acked_total");
    const double rejected =
        testing::MetricValue(metrics, "rally_actor_trajectories_rejected_total");
    p.acked = std::max(p.acked, static_cast<int64_t>(acked));
    p.rejected = std::max(p.rejected, static_cast<int64_t>(rejected));
  }

  bool PollJob() {
    if (stub_ == nullptr) {
      const std::string port = testing::ReadFile(workdir_ + "/control.port");
      if (port.empty()) return false;
      stub_ = v1::JobService::NewStub(MakeChannel("127.0.0.1:" + port));
    }
    grpc::ClientContext ctx;
    ctx.set_deadline(DeadlineIn(5s));
    v1::ListJobsRequest req;
    v1::ListJobsResponse resp;
    if (!stub_->ListJobs(&ctx, req, &resp).ok() || resp.jobs_size() == 0) return false;
    job_ = resp.jobs(0);
    job_id_ = job_.id();
    const int64_t version = job_.progress().policy_version();
    if (version < last_version_) {
      versions_gone_back_.push_back(absl::StrFormat("%d after %d", version, last_version_));
    }
    last_version_ = std::max(last_version_, version);
    return true;
  }

  const std::string workdir_;
  std::unique_ptr<v1::JobService::Stub> stub_;
  Producers producers_;
  uint64_t current_ = 0;
  v1::Job job_;
  std::string job_id_;
  int64_t last_version_ = 0;
  std::vector<std::string> versions_gone_back_;
};

// One row of the printed table.
struct FaultRow {
  std::string fault;
  int injected = 0;
  Producers acked_before;  // what the producers had acknowledged when it was injected
  int64_t acked = 0;
  int64_t lost = 0;
  int64_t duplicates = 0;
  double recovery_seconds = -1;
};

// The replay's log of the job, read after the run: every insert's key, and every sample.
struct LogContents {
  // (incarnation, sequence) -> times inserted
  std::map<std::pair<uint64_t, uint64_t>, int> inserts;
  std::map<uint64_t, std::set<uint64_t>> sequences;  // incarnation -> sequences inserted
  std::map<uint64_t, int> samples;                   // table key -> times sampled
  std::vector<std::string> problems;
  bool data_lost = false;
};

LogContents ReadReplayLog(const std::string& job_dir, const std::string& scratch) {
  LogContents out;
  // Recovery may cut a torn tail: it reads a copy.
  fs::copy(job_dir, scratch, fs::copy_options::recursive);
  auto store = DurableStore::Open(DurabilityOptions{.dir = scratch});
  EXPECT_TRUE(store.ok()) << store.status();
  if (!store.ok()) return out;
  const RecoveredState& rec = (*store)->recovered();
  out.problems = rec.problems;
  out.data_lost = rec.data_lost;
  EXPECT_EQ(rec.snapshot.tables_size(), 0) << "the job writes no snapshot";
  for (const v1::WalRecord& r : rec.records) {
    if (r.has_insert()) {
      auto t = DurableStore::DecodeTrajectory(r.insert());
      EXPECT_TRUE(t.ok()) << t.status();
      if (!t.ok()) continue;
      ++out.inserts[{(*t)->incarnation(), (*t)->sequence()}];
      out.sequences[(*t)->incarnation()].insert((*t)->sequence());
    } else if (r.has_sample()) {
      for (uint64_t key : r.sample().keys()) ++out.samples[key];
    }
  }
  store->reset();
  fs::remove_all(scratch);
  return out;
}

// Fills the row's items from `acked` (what each producer had acknowledged): how many the log
// lacks and how many it holds more than once. With `whole_log`, also the items each producer had
// stored beyond its acks: a gap below the highest sequence stored is a loss too.
void Tally(const Producers& acked, const LogContents& log, bool whole_log, FaultRow* row) {
  for (const auto& [incarnation, p] : acked) {
    auto stored = log.sequences.find(incarnation);
    const uint64_t highest =
        !whole_log || stored == log.sequences.end() ? 0 : *stored->second.rbegin();
    row->acked += p.acked;
    for (uint64_t s = 1; s <= std::max<uint64_t>(p.acked, highest); ++s) {
      auto it = log.inserts.find({incarnation, s});
      if (it == log.inserts.end()) {
        ++row->lost;
      } else {
        row->duplicates += it->second - 1;
      }
    }
  }
}

void PrintTable(uint64_t seed, const std::vector<FaultRow>& rows) {
  std::printf("\ncluster faults (seed %llu)\n", static_cast<unsigned long long>(seed));
  auto line = [](const std::string& a, const std::string& b, const std::string& c,
                 const std::string& d, const std::string& e, const std::string& f) {
    std::printf("| %-22s | %8s | %11s | %10s | %10s | %12s |\n", a.c_str(), b.c_str(), c.c_str(),
                d.c_str(), e.c_str(), f.c_str());
  };
  line("fault", "injected", "items acked", "items lost", "duplicates", "recovery (s)");
  for (const FaultRow& r : rows) {
    line(r.fault, std::to_string(r.injected), std::to_string(r.acked), std::to_string(r.lost),
         std::to_string(r.duplicates),
         r.recovery_seconds < 0 ? "" : absl::StrFormat("%.2f", r.recovery_seconds));
  }
  std::fflush(stdout);
}

// Polls `watch` until `done` holds or `timeout` passes; true if it held.
bool PollUntil(JobWatch& watch, const std::function<bool()>& done,
               std::chrono::milliseconds timeout) {
  for (const auto end = Clock::now() + timeout; Clock::now() < end;) {
    watch.Poll();
    if (done()) return true;
    std::this_thread::sleep_for(100ms);
  }
  return false;
}

// Whether the learner, restarted, resumed from a checkpoint and trained a step past it.
bool LearnerTrainsAgain(JobWatch& watch) {
  auto resumed = testing::LogLines(watch.Log("learner"), "resumed from checkpoint");
  return !resumed.empty() &&
         watch.job().progress().learner_steps() > resumed.back()["step"].get<int64_t>();
}

// Kills the process `name` of the cluster and waits until a new one does its work: a new actor
// incarnation has an item acknowledged; after the replay came back, the actor's items are
// acknowledged again and the learner trains again; the learner trained a step past the checkpoint
// it resumed from.
void InjectAndRecover(JobWatch& watch, const std::string& name, FaultRow* row) {
  watch.Poll();
  row->acked_before = watch.producers();
  const uint64_t incarnation = watch.current_incarnation();
  const int64_t checkpoint = watch.NewestCheckpointStep();
  const pid_t pid = watch.Pid(name);
  ASSERT_GT(pid, 0) << name;
  ASSERT_EQ(kill(pid, SIGKILL), 0) << name;
  ++row->injected;
  const auto killed = Clock::now();
  // What was on its way when it died has arrived: the baseline of "going on again".
  std::this_thread::sleep_for(300ms);
  watch.Poll();
  const int64_t acked = watch.producers().at(incarnation).acked;
  const int64_t steps = watch.job().progress().learner_steps();
  std::function<bool()> recovered;
  if (name == "actor-0") {
    recovered = [&] {
      const uint64_t now = watch.current_incarnation();
      return now != incarnation && watch.producers().at(now).acked > 0;
    };
  } else if (name == "replay") {
    // Both of its clients: the actor inserts, the learner samples.
    recovered = [&] {
      return watch.producers().at(incarnation).acked > acked &&
             watch.job().progress().learner_steps() > steps;
    };
  } else {
    recovered = [&] { return LearnerTrainsAgain(watch); };
  }
  ASSERT_TRUE(PollUntil(watch, recovered, 45s)) << name << " did not recover";
  row->recovery_seconds = SecondsSince(killed);
  EXPECT_NE(watch.Pid(name), pid) << name << "'s pid file names the restarted process";
  if (name == "learner") {
    auto resumed = testing::LogLines(watch.Log("learner"), "resumed from checkpoint");
    ASSERT_EQ(resumed.size(), 1u) << testing::ReadFile(watch.Log("learner"));
    EXPECT_GE(resumed.front()["step"].get<int64_t>(), checkpoint)
        << "the learner resumed from a checkpoint older than the newest";
  }
}

uint64_t SeedFromEnvironment() {
  const char* s = std::getenv("RALLY_FAULTS_SEED");
  return s != nullptr ? std::strtoull(s, nullptr, 10) : std::random_device{}();
}

TEST(ClusterFaults, KilledActorReplayAndLearnerRestartAndTheJobLosesNothing) {
  const uint64_t seed = SeedFromEnvironment();
  std::printf("cluster faults seed %llu (RALLY_FAULTS_SEED=%llu repeats it)\n",
              static_cast<unsigned long long>(seed), static_cast<unsigned long long>(seed));
  std::mt19937 rng(static_cast<uint32_t>(seed));
  const auto start = Clock::now();
  const std::string dir = testing::TempDir("cluster_faults");
  const std::string workdir = dir + "/run";
  testing::Process rally(
      "rally",
      {"run", testing::SourcePath("tests/integration/configs/cluster_faults.yaml"),
       "--workdir=" + workdir, "--summary-json=" + dir + "/summary.json"},
      dir + "/rally.out");
  JobWatch watch(workdir);
  // Training, and a first checkpoint for a killed learner to resume from.
  ASSERT_TRUE(PollUntil(
      watch, [&] { return watch.NewestCheckpointStep() > 0; }, 60s))
      << testing::ReadFile(dir + "/rally.out");

  // Each process once, in a random order; the first 2-5 s after that, each next 1-4 s after
  // the one before recovered.
  std::vector<FaultRow> rows = {{"actor SIGKILL"}, {"replay SIGKILL"}, {"learner SIGKILL"}};
  const std::vector<std::string> names = {"actor-0", "replay", "learner"};
  std::vector<size_t> order = {0, 1, 2};
  std::shuffle(order.begin(), order.end(), rng);
  std::this_thread::sleep_for(
      std::chrono::milliseconds(std::uniform_int_distribution<int>(2000, 5000)(rng)));
  for (size_t i : order) {
    ASSERT_NO_FATAL_FAILURE(InjectAndRecover(watch, names[i], &rows[i]));
    std::this_thread::sleep_for(
        std::chrono::milliseconds(std::uniform_int_distribution<int>(1000, 4000)(rng)));
  }
  // Until the job ends (control's max_wall_seconds), the actor's acks are counted, and the
  // learner trains on.
  const int64_t steps_after_faults = watch.job().progress().learner_steps();
  PollUntil(
      watch, [&] { return IsTerminal(watch.job().state()); }, 90s);
  const int status = rally.Wait(60s);
  const std::string out = testing::ReadFile(dir + "/rally.out");
  ASSERT_NE(status, -1) << "rally run did not finish\n" << out;
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << out;
  const auto summary = nlohmann::json::parse(testing::ReadFile(dir + "/summary.json"));
  EXPECT_EQ(summary["state"], "SUCCEEDED") << summary.dump(2);
  EXPECT_EQ(summary["restarts"], nlohmann::json({{"actor-0", 1}, {"learner", 1}, {"replay", 1}}))
      << summary.dump(2);
  for (const char* name : {"actor-0", "replay", "learner"}) {
    const std::string line = absl::StrFormat(
        "%s exited (killed by signal 9 (Killed)); restarting it in 1 s (restart 1 of 5)", name);
    EXPECT_NE(out.find(line), std::string::npos) << line << "\n" << out;
  }
  EXPECT_NE(out.find("  | restarts: actor-0 ×1, learner ×1, replay ×1\n"), std::string::npos)
      << out;
  EXPECT_GT(summary["learner_steps"].get<int64_t>(), steps_after_faults + 10)
      << "the learner stopped training after the faults";
  EXPECT_TRUE(watch.versions_gone_back().empty())
      << "policy versions went back: " << watch.versions_gone_back().front();

  const LogContents log =
      ReadReplayLog(workdir + "/replay/jobs/" + watch.job_id(), dir + "/replay-log-copy");
  EXPECT_FALSE(log.data_lost);
  FaultRow totals{"all (totals)", 3};
  for (FaultRow& row : rows) Tally(row.acked_before, log, /*whole_log=*/false, &row);
  Tally(watch.producers(), log, /*whole_log=*/true, &totals);
  for (const auto& [key, times] : log.samples) totals.duplicates += times - 1;
  rows.push_back(totals);
  PrintTable(seed, rows);
  for (const FaultRow& row : rows) {
    EXPECT_EQ(row.lost, 0) << row.fault;
    EXPECT_EQ(row.duplicates, 0) << row.fault;
  }
  EXPECT_EQ(watch.producers().size(), 2u) << "the actor's two incarnations";
  for (const auto& [incarnation, p] : watch.producers()) {
    EXPECT_EQ(p.rejected, 0) << p.actor_id << " incarnation " << incarnation;
  }
  EXPECT_GT(totals.acked, 1000);
  EXPECT_LT(SecondsSince(start), 90) << out;
  // The job's log is some 100 MB: kept only when the test failed.
  if (!::testing::Test::HasFailure()) fs::remove_all(dir);
}

}  // namespace
}  // namespace rally
