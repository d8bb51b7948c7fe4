// Who may do what on rally-control: the tokens file, the role each JobService call needs, and the
// worker leases the Controller hands out and checks (also across a restart on the same store).
#include <gtest/gtest.h>
#include <prometheus/registry.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "services/control/controller.h"
#include "services/control/credentials.h"

namespace rally {
namespace {

const char kReadToken[] = "read-0123456789abcdef";
const char kAdminToken[] = "admin-0123456789abcdef";

bool IsLowerHex(const std::string& s) {
  return s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

TEST(Credentials, Sha256AndFingerprintMatchTheStandardVector) {
  // FIPS 180-2, appendix B.1.
  EXPECT_EQ(HexDigest(Sha256("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(TokenFingerprint("abc"), "ba7816bf");
  EXPECT_TRUE(DigestsEqual(Sha256("abc"), Sha256("abc")));
  EXPECT_FALSE(DigestsEqual(Sha256("abc"), Sha256("abd")));
}

TEST(Credentials, LeasesAre128BitHexAndDoNotRepeat) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    auto lease = NewLease();
    ASSERT_TRUE(lease.ok()) << lease.status();
    EXPECT_EQ(lease->size(), 32u);
    EXPECT_TRUE(IsLowerHex(*lease)) << *lease;
    seen.insert(*lease);
  }
  EXPECT_EQ(seen.size(), 1000u);
}

TEST(TokenTable, ParsesRolesSkippingCommentsAndBlankLines) {
  auto table =
      TokenTable::Parse(absl::StrCat("# operators\n\n  admin ", kAdminToken, "\nread\t", kReadToken,
                                     "  \n# ci\nadmin second-admin-token-xyz\n"),
                        "tokens.txt");
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_EQ(table->Find(kAdminToken), Role::kAdmin);
  EXPECT_EQ(table->Find(kReadToken), Role::kRead);
  EXPECT_EQ(table->Find("second-admin-token-xyz"), Role::kAdmin);
  EXPECT_EQ(table->Count(Role::kAdmin), 2);
  EXPECT_EQ(table->Count(Role::kRead), 1);
  // Only the whole token matches.
  EXPECT_EQ(table->Find(""), std::nullopt);
  EXPECT_EQ(table->Find("read-0123456789abcde"), std::nullopt);
  EXPECT_EQ(table->Find(absl::StrCat(kReadToken, "0")), std::nullopt);
  EXPECT_EQ(table->Find("# operators"), std::nullopt);
}

TEST(TokenTable, BadLinesNameTheFileAndTheLine) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"admin admin-0123456789abcdef\n\nowner owner-0123456789abcdef\n",
       "tokens.txt:3: role 'owner' is not read or admin"},
      {"read\n", "tokens.txt:1: expected 'ROLE TOKEN', got 1 fields"},
      {"read a-0123456789abcdef b\n", "tokens.txt:1: expected 'ROLE TOKEN', got 3 fields"},
      {"# x\nread short\n",
       "tokens.txt:2: a token must be at least 16 printable characters without blanks"},
      {"read read-0123456789abcdef\nadmin read-0123456789abcdef\n",
       "tokens.txt:2: the same token as on line 1"},
      {"# nothing but comments\n\n",
       "tokens.txt: no tokens (one 'ROLE TOKEN' per line, ROLE read or admin)"},
  };
  for (const auto& [text, message] : cases) {
    auto table = TokenTable::Parse(text, "tokens.txt");
    ASSERT_FALSE(table.ok()) << text;
    EXPECT_EQ(table.status().code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_EQ(table.status().message(), message) << text;
  }
  auto missing = TokenTable::Load("/nonexistent/tokens.txt");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(missing.status().message(), "/nonexistent/tokens.txt: cannot read the tokens file");
}

// The role table, written out independently of RequiredRole.
const std::set<std::string> kReadCalls = {"GetJob", "ListJobs", "WatchJob", "GetJobLogs"};
const std::set<std::string> kAdminCalls = {"SubmitJob", "StopJob", "ResumeJob", "DeleteJob"};

TEST(Authorize, EachCallNeedsItsRole) {
  auto table = TokenTable::Parse(absl::StrCat("read ", kReadToken, "\nadmin ", kAdminToken, "\n"),
                                 "tokens.txt");
  ASSERT_TRUE(table.ok());
  const std::string worker_lease(32, 'a');
  auto holder = [&](std::string_view lease) -> std::optional<std::string> {
    if (lease == worker_lease) return "w7";
    return std::nullopt;
  };
  auto bearer = [](const std::string& token) { return "Bearer " + token; };
  std::set<std::string> calls = kReadCalls;
  calls.insert(kAdminCalls.begin(), kAdminCalls.end());
  for (const std::string& call : calls) {
    SCOPED_TRACE(call);
    const bool admin_only = kAdminCalls.contains(call);
    auto none = Authorize(*table, call, {}, holder);
    EXPECT_EQ(none.status().code(), absl::StatusCode::kUnauthenticated);
    EXPECT_EQ(none.status().message(), "missing bearer token");
    auto unknown = Authorize(*table, call, {bearer("admin-0123456789abcdeX"), {}}, holder);
    EXPECT_EQ(unknown.status().code(), absl::StatusCode::kUnauthenticated);
    EXPECT_EQ(unknown.status().message(), "unknown token");
    auto basic = Authorize(*table, call, {"Basic " + std::string(kAdminToken), {}}, holder);
    EXPECT_EQ(basic.status().message(), "authorization metadata must be 'Bearer TOKEN'");

    auto read = Authorize(*table, call, {bearer(kReadToken), {}}, holder);
    if (admin_only) {
      EXPECT_EQ(read.status().code(), absl::StatusCode::kPermissionDenied);
      EXPECT_EQ(read.status().message(),
                call + " needs the admin role; this token has the read role");
    } else {
      ASSERT_TRUE(read.ok()) << read.status();
      EXPECT_EQ(*read, "read token " + TokenFingerprint(kReadToken));
    }
    auto admin = Authorize(*table, call, {"bearer " + std::string(kAdminToken), {}}, holder);
    ASSERT_TRUE(admin.ok()) << admin.status();
    EXPECT_EQ(*admin, "admin token " + TokenFingerprint(kAdminToken));

    // A worker's lease: GetJob only.
    auto lease = Authorize(*table, call, {{}, worker_lease}, holder);
    if (call == "GetJob") {
      ASSERT_TRUE(lease.ok()) << lease.status();
      EXPECT_EQ(*lease, "worker w7");
    } else {
      EXPECT_EQ(lease.status().code(), absl::StatusCode::kPermissionDenied);
      EXPECT_EQ(lease.status().message(),
                call + " needs a bearer token; a worker lease may only call GetJob");
    }
    auto stale = Authorize(*table, call, {{}, std::string(32, 'b')}, holder);
    EXPECT_EQ(stale.status().code(), absl::StatusCode::kUnauthenticated);
    EXPECT_EQ(stale.status().message(), "unknown lease");
    // A token, when there is one, decides.
    auto both = Authorize(*table, call, {bearer("wrong-0123456789abcdef"), worker_lease}, holder);
    EXPECT_EQ(both.status().message(), "unknown token");
  }
  EXPECT_EQ(Authorize(*table, "Register", {bearer(kAdminToken), {}}, holder).status().code(),
            absl::StatusCode::kInternal);
}

const char kSpec[] = R"(name: leases
game:
  name: tictactoe
evaluation:
  opponents: []
stop:
  max_learner_steps: 10
)";

v1::RegisterRequest Registration(v1::WorkerRole role, const std::string& name, int rank = 0) {
  v1::RegisterRequest req;
  req.set_role(role);
  req.set_name(name);
  req.set_rank(rank);
  req.set_address("127.0.0.1:1000");
  return req;
}

v1::HeartbeatRequest Beat(const std::string& worker_id, const std::string& lease,
                          const std::string& job_id, const std::string& error = "") {
  v1::HeartbeatRequest req;
  req.set_worker_id(worker_id);
  req.set_lease(lease);
  req.mutable_report()->set_job_id(job_id);
  req.mutable_report()->set_error(error);
  return req;
}

class ControllerLeases : public ::testing::Test {
 protected:
  void SetUp() override { Open(":memory:"); }
  void Open(const std::string& path) {
    controller_.reset();
    registry_ = std::make_unique<prometheus::Registry>();
    auto store = JobStore::Open(path);
    ASSERT_TRUE(store.ok()) << store.status();
    controller_ =
        std::make_unique<Controller>(std::move(*store), *registry_, std::vector<std::string>{});
    ASSERT_TRUE(controller_->Recover().ok());
  }
  v1::RegisterResponse MustRegister(const v1::RegisterRequest& req) {
    auto resp = controller_->Register(req);
    EXPECT_TRUE(resp.ok()) << resp.status();
    return resp.ok() ? *resp : v1::RegisterResponse();
  }

  std::unique_ptr<prometheus::Registry> registry_;
  std::unique_ptr<Controller> controller_;
};

TEST_F(ControllerLeases, AHeartbeatWithoutItsWorkersLeaseIsRefusedAndChangesNothing) {
  const auto replay = MustRegister(Registration(v1::WORKER_ROLE_REPLAY, "replay-0"));
  const auto learner = MustRegister(Registration(v1::WORKER_ROLE_LEARNER, "learner"));
  EXPECT_EQ(learner.lease().size(), 32u);
  EXPECT_NE(learner.lease(), replay.lease());
  auto job = controller_->Submit(kSpec, "spec");
  ASSERT_TRUE(job.ok()) << job.status();
  ASSERT_EQ(job->state(), v1::JOB_STATE_STARTING);

  for (const std::string& forged : {std::string(), replay.lease(), std::string(32, '0')}) {
    auto refused = controller_->Heartbeat(Beat(learner.worker_id(), forged, job->id(), "forged"));
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kPermissionDenied);
    EXPECT_EQ(refused.status().message(), "lease does not match worker " + learner.worker_id());
  }
  EXPECT_EQ(controller_->Get(job->id())->state(), v1::JOB_STATE_STARTING);

  // The same report with the lease is the worker's own: it fails the job.
  auto own = controller_->Heartbeat(Beat(learner.worker_id(), learner.lease(), job->id(), "own"));
  ASSERT_TRUE(own.ok()) << own.status();
  EXPECT_EQ(controller_->Get(job->id())->state(), v1::JOB_STATE_FAILED);
  EXPECT_EQ(controller_->Get(job->id())->reason(), "learner: own");

  auto unknown = controller_->Heartbeat(Beat("w99", "", job->id()));
  ASSERT_TRUE(unknown.ok());
  EXPECT_TRUE(unknown->unknown_worker());
  EXPECT_EQ(controller_->LeaseHolder(learner.lease()), learner.worker_id());
  EXPECT_EQ(controller_->LeaseHolder(std::string(32, '0')), std::nullopt);
}

TEST_F(ControllerLeases, ASlotHeldByALiveWorkerIsRefused) {
  const auto learner = MustRegister(Registration(v1::WORKER_ROLE_LEARNER, "learner", 0));
  MustRegister(Registration(v1::WORKER_ROLE_REPLAY, "replay-0"));
  MustRegister(Registration(v1::WORKER_ROLE_ACTOR, "actor-0"));

  auto second = controller_->Register(Registration(v1::WORKER_ROLE_LEARNER, "impostor", 0));
  EXPECT_EQ(second.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_TRUE(absl::StartsWith(second.status().message(),
                               "learner rank 0 is held by live worker " + learner.worker_id() +
                                   " (learner, last heartbeat 0.0 s ago); a second one is "
                                   "refused until the holder has been silent for 3 s"))
      << second.status();
  auto shard = controller_->Register(Registration(v1::WORKER_ROLE_REPLAY, "replay-0"));
  EXPECT_EQ(shard.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_TRUE(absl::StartsWith(shard.status().message(), "replay shard 'replay-0' is held"));
  auto actor = controller_->Register(Registration(v1::WORKER_ROLE_ACTOR, "actor-0"));
  EXPECT_TRUE(absl::StartsWith(actor.status().message(), "actor 'actor-0' is held"))
      << actor.status();

  // Other slots are free: another rank, another shard, a nameless actor.
  MustRegister(Registration(v1::WORKER_ROLE_LEARNER, "learner-1", 1));
  MustRegister(Registration(v1::WORKER_ROLE_REPLAY, "replay-1"));
  MustRegister(Registration(v1::WORKER_ROLE_ACTOR, ""));
  MustRegister(Registration(v1::WORKER_ROLE_ACTOR, ""));
}

TEST_F(ControllerLeases, ASilentHolderIsReplacedByItsRestartedProcess) {
  MustRegister(Registration(v1::WORKER_ROLE_REPLAY, "replay-0"));
  const auto old = MustRegister(Registration(v1::WORKER_ROLE_LEARNER, "learner", 0));
  MustRegister(Registration(v1::WORKER_ROLE_ACTOR, "actor-0"));
  auto job = controller_->Submit(kSpec, "spec");
  ASSERT_TRUE(job.ok());
  std::this_thread::sleep_for(Controller::kLiveHolderWindow + std::chrono::milliseconds(100));
  const auto restarted = MustRegister(Registration(v1::WORKER_ROLE_LEARNER, "learner", 0));
  EXPECT_NE(restarted.worker_id(), old.worker_id());
  EXPECT_EQ(controller_->Get(job->id())->state(), v1::JOB_STATE_RECOVERING);
  EXPECT_EQ(controller_->Get(job->id())->reason(),
            "learner restarted; resuming from its saved state");
  // The old registration and its lease are gone.
  auto beat = controller_->Heartbeat(Beat(old.worker_id(), old.lease(), job->id()));
  ASSERT_TRUE(beat.ok());
  EXPECT_TRUE(beat->unknown_worker());
  EXPECT_EQ(controller_->LeaseHolder(old.lease()), std::nullopt);
}

TEST_F(ControllerLeases, RegisteringAgainKeepsTheIdOnlyWithItsLease) {
  const auto first = MustRegister(Registration(v1::WORKER_ROLE_ACTOR, "actor-0"));
  v1::RegisterRequest again = Registration(v1::WORKER_ROLE_ACTOR, "actor-0");
  again.set_previous_worker_id(first.worker_id());
  again.set_previous_lease(std::string(32, 'f'));
  auto refused = controller_->Register(again);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(refused.status().message(), "lease does not match worker " + first.worker_id());

  again.set_previous_lease(first.lease());
  const auto kept = MustRegister(again);
  EXPECT_EQ(kept.worker_id(), first.worker_id());
  EXPECT_NE(kept.lease(), first.lease());  // a new lease per registration
  auto stale = controller_->Heartbeat(Beat(first.worker_id(), first.lease(), ""));
  EXPECT_EQ(stale.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(controller_->Heartbeat(Beat(first.worker_id(), kept.lease(), "")).ok());

  // An id control has no record of is not handed out on request.
  v1::RegisterRequest claim = Registration(v1::WORKER_ROLE_ACTOR, "actor-9");
  claim.set_previous_worker_id("w42");
  EXPECT_NE(MustRegister(claim).worker_id(), "w42");
}

TEST_F(ControllerLeases, UnderMutualTlsALeaseIsBoundToItsCertificatesComponent) {
  auto learner = controller_->Register(Registration(v1::WORKER_ROLE_LEARNER, "learner"), "learner");
  ASSERT_TRUE(learner.ok()) << learner.status();
  auto other = controller_->Heartbeat(Beat(learner->worker_id(), learner->lease(), ""), "actor");
  EXPECT_EQ(other.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(other.status().message(),
            "worker " + learner->worker_id() + " is bound to component 'learner', not 'actor'");
  EXPECT_TRUE(
      controller_->Heartbeat(Beat(learner->worker_id(), learner->lease(), ""), "learner").ok());
  v1::RegisterRequest again = Registration(v1::WORKER_ROLE_LEARNER, "learner");
  again.set_previous_worker_id(learner->worker_id());
  again.set_previous_lease(learner->lease());
  EXPECT_EQ(controller_->Register(again, "actor").status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(controller_->Register(again, "learner")->worker_id(), learner->worker_id());
}

TEST_F(ControllerLeases, ARestartedControlChecksLeasesFromItsStore) {
  const std::string dir = ::testing::TempDir() + "/control_auth_restart";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string db = dir + "/control.sqlite";
  ASSERT_NO_FATAL_FAILURE(Open(db));
  const auto learner = MustRegister(Registration(v1::WORKER_ROLE_LEARNER, "learner", 0));

  ASSERT_NO_FATAL_FAILURE(Open(db));  // control restarted: no live workers
  auto unknown = controller_->Heartbeat(Beat(learner.worker_id(), learner.lease(), ""));
  ASSERT_TRUE(unknown.ok());
  EXPECT_TRUE(unknown->unknown_worker());
  // A new worker does not get the id awaiting its holder.
  EXPECT_NE(MustRegister(Registration(v1::WORKER_ROLE_ACTOR, "actor-0")).worker_id(),
            learner.worker_id());

  v1::RegisterRequest again = Registration(v1::WORKER_ROLE_LEARNER, "learner", 0);
  again.set_previous_worker_id(learner.worker_id());
  again.set_previous_lease(std::string(32, 'e'));
  auto refused = controller_->Register(again);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(refused.status().message(), "lease does not match worker " + learner.worker_id());
  again.set_previous_lease(learner.lease());
  EXPECT_EQ(MustRegister(again).worker_id(), learner.worker_id());
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace rally
