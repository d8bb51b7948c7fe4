// Which failures of a collective mean that a peer rank was lost (the learner exits and its group
// restarts) and which are errors of their own (the job fails with them).
#include <c10/util/Exception.h>
#include <gloo/common/error.h>
#include <gtest/gtest.h>

#include <stdexcept>

#include "services/learner/distributed.h"

namespace rally {
namespace {

TEST(PeerLoss, GloosTransportFailuresAreALostPeer) {
  for (const char* message : {"Connection reset by peer", "Connection closed by peer",
                              "Timed out waiting 30000ms for recv operation to complete",
                              "connect [127.0.0.1]:41234 failed: Connection refused"}) {
    absl::Status s = CollectiveError("gradient all-reduce", gloo::IoException(message));
    EXPECT_TRUE(IsPeerLost(s)) << s;
    EXPECT_TRUE(absl::IsUnavailable(s)) << s;
    EXPECT_NE(s.message().find("gradient all-reduce"), absl::string_view::npos) << s;
    EXPECT_NE(s.message().find(message), absl::string_view::npos) << s;
  }
}

TEST(PeerLoss, TheStoresTimeoutsAndClosedSocketsAreALostPeer) {
  for (const char* message : {"Socket Timeout", "Wait timeout", "Broken pipe"}) {
    EXPECT_TRUE(IsPeerLost(CollectiveError("process group", c10::Error(message, "")))) << message;
    EXPECT_TRUE(IsPeerLost(CollectiveError("process group", std::runtime_error(message))))
        << message;
  }
}

TEST(PeerLoss, OtherFailuresAreErrorsOfTheirOwn) {
  // Gloo's type decides before the message: only its IoException is a transport failure.
  EXPECT_FALSE(IsPeerLost(CollectiveError(
      "broadcast", gloo::InvalidOperationException("Connection reset by peer: size mismatch"))));
  EXPECT_FALSE(IsPeerLost(
      CollectiveError("gradient all-reduce", c10::Error("Tensors must be contiguous", ""))));
  EXPECT_FALSE(IsPeerLost(
      CollectiveError("all-gather of weight digests", std::runtime_error("invalid argument"))));
  absl::Status s = CollectiveError("broadcast", std::runtime_error("invalid argument"));
  EXPECT_TRUE(absl::IsUnavailable(s)) << s;
  EXPECT_EQ(s.message(), "broadcast: invalid argument");
}

TEST(PeerLoss, OnlyThePeerLostStatusCarriesTheMark) {
  EXPECT_TRUE(IsPeerLost(PeerLostError("rank 1 gone")));
  EXPECT_EQ(PeerLostError("rank 1 gone").message(), "lost a peer rank: rank 1 gone");
  EXPECT_FALSE(IsPeerLost(absl::OkStatus()));
  EXPECT_FALSE(IsPeerLost(absl::UnavailableError("lost a peer rank: rank 1 gone")));
  EXPECT_FALSE(IsPeerLost(absl::InternalError("weights differ across ranks at step 100")));
}

}  // namespace
}  // namespace rally
