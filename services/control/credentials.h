// Who may do what on rally-control: bearer tokens with roles on the JobService, and the worker
// leases of the WorkerService.
//
// Tokens file (rally-control --tokens_file): one `ROLE TOKEN` per line, ROLE `read` or `admin`,
// TOKEN at least kMinTokenChars printable ASCII characters without blanks; blank lines and lines
// whose first non-blank character is `#` are ignored; a token may appear once. A client sends its
// token as the metadata `authorization: Bearer TOKEN`.
//
// Roles per JobService call: `read` may call GetJob, ListJobs, WatchJob and GetJobLogs; `admin`
// may also call SubmitJob, StopJob, ResumeJob and DeleteJob. A worker of the cluster may call
// GetJob with its lease (metadata `x-rally-lease`) instead of a token.
//
// Secrets are kept only as SHA-256 digests and compared in constant time (the time does not
// depend on which byte differs, nor on which entry matches). Logs name a token by its
// TokenFingerprint (the first 8 hex digits of its digest), never by its text.
//
// Thread safety: a TokenTable is immutable once made; the free functions are thread safe.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace rally {

using Sha256Digest = std::array<uint8_t, 32>;

Sha256Digest Sha256(std::string_view data);
std::string HexDigest(const Sha256Digest& digest);
// Equality of two digests in time independent of their contents.
bool DigestsEqual(const Sha256Digest& a, const Sha256Digest& b);

// A new worker lease: kLeaseBytes from OpenSSL's CSPRNG (RAND_bytes) as lowercase hex.
// UNAVAILABLE when the generator cannot be seeded.
absl::StatusOr<std::string> NewLease();
inline constexpr int kLeaseBytes = 16;

// The first 8 hex digits of the token's SHA-256: names a token in logs without revealing it.
std::string TokenFingerprint(std::string_view token);

enum class Role { kRead, kAdmin };
std::string_view RoleName(Role role);

inline constexpr char kAuthorizationMetadata[] = "authorization";
inline constexpr char kLeaseMetadata[] = "x-rally-lease";
inline constexpr size_t kMinTokenChars = 16;

class TokenTable {
 public:
  // Parses a tokens file's `text`; errors name `source` (the file) and the line.
  static absl::StatusOr<TokenTable> Parse(std::string_view text, std::string_view source);
  // Reads and parses the tokens file at `path`.
  static absl::StatusOr<TokenTable> Load(const std::string& path);

  // The role of `token`; nullopt when it is not in the table.
  std::optional<Role> Find(std::string_view token) const;
  // How many tokens have `role`.
  int Count(Role role) const;

 private:
  struct Entry {
    Sha256Digest digest;
    Role role;
  };
  std::vector<Entry> entries_;
};

// The role a JobService call (its method name, e.g. "StopJob") needs; nullopt for a name that is
// not a JobService call.
std::optional<Role> RequiredRole(std::string_view call);

// What a call carried: its `authorization` and `x-rally-lease` metadata, when present.
struct CallCredentials {
  std::optional<std::string> authorization;
  std::optional<std::string> lease;
};

// Decides one JobService call when control has a tokens file. With a token (it wins over a
// lease): UNAUTHENTICATED "missing bearer token" (no authorization metadata),
// "authorization metadata must be 'Bearer TOKEN'", "unknown token"; PERMISSION_DENIED
// "StopJob needs the admin role; this token has the read role". With a lease alone:
// `lease_holder` returns the live worker holding it (nullopt: UNAUTHENTICATED "unknown lease"),
// and any call but GetJob is PERMISSION_DENIED. Returns the caller as logs name it:
// "admin token 1a2b3c4d", "read token 5e6f7a8b", "worker w3".
absl::StatusOr<std::string> Authorize(
    const TokenTable& tokens, std::string_view call, const CallCredentials& credentials,
    const std::function<std::optional<std::string>(std::string_view lease)>& lease_holder);

}  // namespace rally
