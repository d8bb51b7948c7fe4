#include "services/replay/replay_job.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

namespace rally {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

JobConfig Config(const std::string& tables_yaml) {
  auto c = ParseJobConfig("game: tictactoe\nstop: {max_learner_steps: 1}\nreplay:\n" + tables_yaml,
                          "test.yaml");
  EXPECT_TRUE(c.ok()) << c.status();
  return *c;
}

std::shared_ptr<v1::Trajectory> Item(const std::string& actor, uint64_t seq, int64_t version,
                                     uint64_t incarnation = 1) {
  auto t = std::make_shared<v1::Trajectory>();
  t->set_actor_id(actor);
  t->set_incarnation(incarnation);
  t->set_sequence(seq);
  t->add_turns()->set_policy_version(version);
  return t;
}

// Stores like the insert path does: claim the key, insert unless a duplicate, mark stored.
void Store(ReplayJob& job, const std::string& table, std::shared_ptr<v1::Trajectory> t,
           double priority = 1) {
  auto claim = job.producers().Claim(*t);
  ASSERT_TRUE(claim.ok()) << claim.status();
  if (claim->duplicate()) return;
  ASSERT_TRUE(job.table(table)->Insert(t, priority, Clock::now()).ok());
  claim->MarkStored();
}

bool Stored(const ReplayJob& job, const std::string& actor, uint64_t seq,
            uint64_t incarnation = 1) {
  return job.producers().IsStored(*Item(actor, seq, 0, incarnation));
}

std::unique_ptr<DurableStore> OpenStore(const std::string& dir) {
  auto store = DurableStore::Open({dir});
  EXPECT_TRUE(store.ok()) << store.status();
  return store.ok() ? std::move(*store) : nullptr;
}

TEST(ReplayJob, InsertsAreIdempotentByProducerAndSequence) {
  JobConfig c = Config("  tables: [{name: q, max_size: 10}]\n");
  auto job = ReplayJob::Create("j", "", c, nullptr);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_FALSE(Stored(**job, "a", 1));
  Store(**job, "q", Item("a", 1, 0));
  Store(**job, "q", Item("a", 2, 0));
  EXPECT_TRUE(Stored(**job, "a", 1));
  EXPECT_TRUE(Stored(**job, "a", 2));
  EXPECT_FALSE(Stored(**job, "a", 3));
  EXPECT_FALSE(Stored(**job, "b", 1));     // another actor's numbering
  EXPECT_FALSE(Stored(**job, "a", 1, 2));  // the same actor, restarted
  Store(**job, "q", Item("a", 2, 0));      // a resend after a lost ack
  EXPECT_EQ((*job)->table("q")->size(), 2);
  Store(**job, "q", Item("a", 1, 0, /*incarnation=*/2));  // the restarted actor's first item
  EXPECT_EQ((*job)->table("q")->size(), 3);
}

TEST(ReplayJob, RecoversTablesPrioritiesCountsAndWatermarksFromDisk) {
  std::string dir =
      (fs::temp_directory_path() / ("rally-job-" + std::to_string(getpid()))).string();
  fs::remove_all(dir);
  JobConfig c = Config(
      "  snapshot_every_seconds: 0\n"
      "  tables:\n"
      "    - {name: q, max_size: 10}\n"
      "    - {name: p, sampler: prioritized, remover: fifo, max_times_sampled: 0,\n"
      "       rate_limiter: min_size, max_size: 10}\n");
  uint64_t hot_key = 0;
  Table::State q_before, p_before;
  {
    auto store = OpenStore(dir);
    ASSERT_NE(store, nullptr);
    DurableStore* log = store.get();
    auto job = ReplayJob::Create("j", "spec", c, std::move(store));
    ASSERT_TRUE(job.ok()) << job.status();
    for (uint64_t i = 1; i <= 4; ++i) {
      Store(**job, "q", Item("a", i, static_cast<int64_t>(i)));
      Store(**job, "p", Item("b", i, static_cast<int64_t>(i)));
    }
    ASSERT_TRUE((*job)->table("q")->Sample(2, Clock::now()).ok());
    hot_key = (*job)->table("p")->Snapshot().items.back().key;
    ASSERT_TRUE((*job)->table("p")->UpdatePriorities({{hot_key, 50.0}}).ok());
    ASSERT_TRUE((*job)->table("p")->Sample(3, Clock::now()).ok());
    // Snapshot mid-way, then more mutations that only the log holds.
    ASSERT_TRUE((*job)->WriteSnapshot().ok());
    Store(**job, "q", Item("a", 5, 5));
    ASSERT_TRUE((*job)->table("q")->Sample(1, Clock::now()).ok());
    (*job)->table("q")->SetPolicyVersion(9);
    q_before = (*job)->table("q")->Snapshot();
    p_before = (*job)->table("p")->Snapshot();
    ASSERT_TRUE(log->Sync().ok());
    // No clean shutdown: the process "dies" here.
  }
  auto job = ReplayJob::Create("j", "spec", c, OpenStore(dir));
  ASSERT_TRUE(job.ok()) << job.status();
  for (auto [name, before] : {std::pair{"q", q_before}, std::pair{"p", p_before}}) {
    Table::State after = (*job)->table(name)->Snapshot();
    ASSERT_EQ(after.items.size(), before.items.size()) << name;
    for (size_t i = 0; i < after.items.size(); ++i) {
      EXPECT_EQ(after.items[i].key, before.items[i].key);
      EXPECT_EQ(after.items[i].priority, before.items[i].priority);
      EXPECT_EQ(after.items[i].times_sampled, before.items[i].times_sampled);
      EXPECT_EQ(after.items[i].trajectory->sequence(), before.items[i].trajectory->sequence());
    }
    EXPECT_EQ(after.inserts, before.inserts) << name;
    EXPECT_EQ(after.samples, before.samples) << name;
    EXPECT_EQ(after.next_key, before.next_key) << name;
  }
  EXPECT_EQ((*job)->table("q")->Snapshot().policy_version, 9);
  EXPECT_TRUE(Stored(**job, "a", 5));
  EXPECT_TRUE(Stored(**job, "b", 4));
  EXPECT_FALSE(Stored(**job, "a", 6));
  // Sampling resumes: the rate limiter's state came back with the items.
  auto q = (*job)->table("q")->Sample(2, Clock::now() + std::chrono::seconds(1));
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->front().item.trajectory->sequence(), 4u);
  job->reset();
  // A different job on the same directory is refused, and the data stays.
  auto other = ReplayJob::Create("k", "spec", c, OpenStore(dir));
  ASSERT_FALSE(other.ok());
  EXPECT_EQ(other.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(other.status().message().find("holds job 'j'"), std::string::npos) << other.status();
  auto again = ReplayJob::Create("j", "spec", c, OpenStore(dir));
  ASSERT_TRUE(again.ok()) << again.status();
  // The queue's two items were sampled (and so removed) above; the other table's stay.
  EXPECT_EQ((*again)->table("q")->size(), 0);
  EXPECT_EQ((*again)->table("p")->size(), static_cast<int64_t>(p_before.items.size()));
  EXPECT_TRUE(Stored(**again, "a", 5));
}

TEST(ReplayJob, EachJobHasADataDirectoryOfItsOwn) {
  auto dir = JobDataDir("/data", "job-0001-6f1a1a");
  ASSERT_TRUE(dir.ok());
  EXPECT_EQ(*dir, "/data/jobs/job-0001-6f1a1a");
  for (const char* bad : {"", ".", "..", "../other", "a/b", "a b"}) {
    auto refused = JobDataDir("/data", bad);
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

TEST(ReplayJob, ASecondJobLeavesTheFirstJobsItemsOnDisk) {
  // Before jobs had directories of their own, starting job k on the replay's directory wiped
  // job j's log: its acknowledged items were gone.
  const std::string root =
      (fs::temp_directory_path() / ("rally-jobs-" + std::to_string(getpid()))).string();
  fs::remove_all(root);
  JobConfig c = Config("  snapshot_every_seconds: 0\n  tables: [{name: q, max_size: 1000}]\n");
  {
    auto job = ReplayJob::Create("j", "spec", c, OpenStore(*JobDataDir(root, "j")));
    ASSERT_TRUE(job.ok()) << job.status();
    for (uint64_t i = 1; i <= 500; ++i) Store(**job, "q", Item("a", i, 1));
    ASSERT_TRUE((*job)->store()->Sync().ok());
  }
  {
    auto job = ReplayJob::Create("k", "spec", c, OpenStore(*JobDataDir(root, "k")));
    ASSERT_TRUE(job.ok()) << job.status();
    Store(**job, "q", Item("a", 1, 1));
    EXPECT_EQ((*job)->table("q")->size(), 1);
  }
  auto first = ReplayJob::Create("j", "spec", c, OpenStore(*JobDataDir(root, "j")));
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ((*first)->table("q")->size(), 500);
  fs::remove_all(root);
}

TEST(ReplayJob, ADataDirectoryFromBeforeMovesIntoItsJobsDirectory) {
  const std::string root =
      (fs::temp_directory_path() / ("rally-shared-" + std::to_string(getpid()))).string();
  fs::remove_all(root);
  JobConfig c = Config("  snapshot_every_seconds: 0\n  tables: [{name: q, max_size: 1000}]\n");
  {
    // One job's log at the top of the data directory, as the replay wrote it before.
    auto job = ReplayJob::Create("old-job", "spec", c, OpenStore(root));
    ASSERT_TRUE(job.ok()) << job.status();
    for (uint64_t i = 1; i <= 20; ++i) Store(**job, "q", Item("a", i, 1));
    ASSERT_TRUE((*job)->WriteSnapshot().ok());
    for (uint64_t i = 21; i <= 30; ++i) Store(**job, "q", Item("a", i, 1));
    ASSERT_TRUE((*job)->store()->Sync().ok());
  }
  ASSERT_TRUE(AdoptSharedDataDir(root).ok());
  for (const auto& e : fs::directory_iterator(root)) {
    EXPECT_TRUE(e.is_directory()) << e.path() << " left at the top";
  }
  ASSERT_TRUE(AdoptSharedDataDir(root).ok());  // nothing more to do
  auto job = ReplayJob::Create("old-job", "spec", c, OpenStore(*JobDataDir(root, "old-job")));
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ((*job)->table("q")->size(), 30);
  EXPECT_TRUE(Stored(**job, "a", 30));
  fs::remove_all(root);
}

}  // namespace
}  // namespace rally
