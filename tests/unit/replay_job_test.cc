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

std::shared_ptr<v1::Trajectory> Item(const std::string& actor, uint64_t seq, int64_t version) {
  auto t = std::make_shared<v1::Trajectory>();
  t->set_actor_id(actor);
  t->set_sequence(seq);
  t->add_turns()->set_policy_version(version);
  return t;
}

// Stores like the insert path does: skip duplicates, insert, mark stored.
void Store(ReplayJob& job, const std::string& table, std::shared_ptr<v1::Trajectory> t,
           double priority = 1) {
  if (job.IsDuplicate(t->actor_id(), t->sequence())) return;
  ASSERT_TRUE(job.table(table)->Insert(t, priority, Clock::now()).ok());
  job.MarkStored(t->actor_id(), t->sequence());
}

TEST(ReplayJob, InsertsAreIdempotentByActorAndSequence) {
  JobConfig c = Config("  tables: [{name: q, max_size: 10}]\n");
  auto job = ReplayJob::Create("j", "", c, nullptr);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_FALSE((*job)->IsDuplicate("a", 1));
  Store(**job, "q", Item("a", 1, 0));
  Store(**job, "q", Item("a", 2, 0));
  EXPECT_TRUE((*job)->IsDuplicate("a", 1));
  EXPECT_TRUE((*job)->IsDuplicate("a", 2));
  EXPECT_FALSE((*job)->IsDuplicate("a", 3));
  EXPECT_FALSE((*job)->IsDuplicate("b", 1));  // another actor's numbering
  Store(**job, "q", Item("a", 2, 0));         // a resend after a lost ack
  EXPECT_EQ((*job)->table("q")->size(), 2);
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
    auto store = DurableStore::Open({dir});
    ASSERT_TRUE(store.ok());
    auto job = ReplayJob::Create("j", "spec", c, store->get());
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
    ASSERT_TRUE(store->get()->Sync().ok());
    // No clean shutdown: the process "dies" here.
  }
  auto store = DurableStore::Open({dir});
  ASSERT_TRUE(store.ok());
  auto job = ReplayJob::Create("j", "spec", c, store->get());
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
  EXPECT_TRUE((*job)->IsDuplicate("a", 5));
  EXPECT_TRUE((*job)->IsDuplicate("b", 4));
  EXPECT_FALSE((*job)->IsDuplicate("a", 6));
  // Sampling resumes: the rate limiter's state came back with the items.
  auto q = (*job)->table("q")->Sample(2, Clock::now() + std::chrono::seconds(1));
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->front().item.trajectory->sequence(), 4u);
  // A different job id starts from an empty log.
  auto other = ReplayJob::Create("k", "spec", c, store->get());
  ASSERT_TRUE(other.ok());
  EXPECT_EQ((*other)->table("q")->size(), 0);
}

}  // namespace
}  // namespace rally
