#include "services/control/credentials.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <fstream>
#include <map>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace rally {
namespace {

std::string Hex(const uint8_t* data, size_t size) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * size);
  for (size_t i = 0; i < size; ++i) {
    out.push_back(kDigits[data[i] >> 4]);
    out.push_back(kDigits[data[i] & 0xf]);
  }
  return out;
}

std::optional<Role> ParseRole(std::string_view name) {
  if (name == "read") return Role::kRead;
  if (name == "admin") return Role::kAdmin;
  return std::nullopt;
}

bool PrintableWithoutBlanks(std::string_view token) {
  for (char c : token) {
    if (c <= ' ' || c > '~') return false;
  }
  return true;
}

// A tokens file line's error, naming the file and the line.
absl::Status LineError(std::string_view source, int line, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(std::string(source), ":", line, ": ", what));
}

}  // namespace

Sha256Digest Sha256(std::string_view data) {
  Sha256Digest digest;
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest.data());
  return digest;
}

std::string HexDigest(const Sha256Digest& digest) { return Hex(digest.data(), digest.size()); }

bool DigestsEqual(const Sha256Digest& a, const Sha256Digest& b) {
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

absl::StatusOr<std::string> NewLease() {
  uint8_t bytes[kLeaseBytes];
  if (RAND_bytes(bytes, sizeof bytes) != 1) {
    return absl::UnavailableError("cannot draw a lease: OpenSSL's random generator failed");
  }
  return Hex(bytes, sizeof bytes);
}

std::string TokenFingerprint(std::string_view token) {
  return HexDigest(Sha256(token)).substr(0, 8);
}

std::string_view RoleName(Role role) { return role == Role::kAdmin ? "admin" : "read"; }

absl::StatusOr<TokenTable> TokenTable::Parse(std::string_view text, std::string_view source) {
  TokenTable table;
  std::map<std::string, int> seen;  // hex digest -> line, to name both lines of a duplicate
  int number = 0;
  for (absl::string_view line : absl::StrSplit(absl::string_view(text.data(), text.size()), '\n')) {
    ++number;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line.front() == '#') continue;
    std::vector<std::string> fields =
        absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipWhitespace());
    if (fields.size() != 2) {
      return LineError(source, number,
                       absl::StrCat("expected 'ROLE TOKEN', got ", fields.size(), " fields"));
    }
    std::optional<Role> role = ParseRole(fields[0]);
    if (!role) {
      return LineError(source, number, absl::StrCat("role '", fields[0], "' is not read or admin"));
    }
    const std::string& token = fields[1];
    if (token.size() < kMinTokenChars || !PrintableWithoutBlanks(token)) {
      return LineError(source, number,
                       absl::StrCat("a token must be at least ", kMinTokenChars,
                                    " printable characters without blanks"));
    }
    const Sha256Digest digest = Sha256(token);
    auto [it, inserted] = seen.emplace(HexDigest(digest), number);
    if (!inserted) {
      return LineError(source, number, absl::StrCat("the same token as on line ", it->second));
    }
    table.entries_.push_back({digest, *role});
  }
  if (table.entries_.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        std::string(source), ": no tokens (one 'ROLE TOKEN' per line, ROLE read or admin)"));
  }
  return table;
}

absl::StatusOr<TokenTable> TokenTable::Load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot read the tokens file"));
  return Parse(text.str(), path);
}

std::optional<Role> TokenTable::Find(std::string_view token) const {
  const Sha256Digest digest = Sha256(token);
  std::optional<Role> found;
  // Every entry is compared, matched or not.
  for (const Entry& e : entries_) {
    if (DigestsEqual(e.digest, digest)) found = e.role;
  }
  return found;
}

int TokenTable::Count(Role role) const {
  int n = 0;
  for (const Entry& e : entries_) n += e.role == role ? 1 : 0;
  return n;
}

std::optional<Role> RequiredRole(std::string_view call) {
  static const std::map<std::string_view, Role> kRoles = {
      {"GetJob", Role::kRead},     {"ListJobs", Role::kRead},   {"WatchJob", Role::kRead},
      {"GetJobLogs", Role::kRead}, {"SubmitJob", Role::kAdmin}, {"StopJob", Role::kAdmin},
      {"ResumeJob", Role::kAdmin}, {"DeleteJob", Role::kAdmin}};
  auto it = kRoles.find(call);
  if (it == kRoles.end()) return std::nullopt;
  return it->second;
}

absl::StatusOr<std::string> Authorize(
    const TokenTable& tokens, std::string_view call, const CallCredentials& credentials,
    const std::function<std::optional<std::string>(std::string_view lease)>& lease_holder) {
  const std::optional<Role> needed = RequiredRole(call);
  const std::string name(call);
  if (!needed) return absl::InternalError(absl::StrCat("no role is defined for ", name));
  if (!credentials.authorization && credentials.lease) {
    std::optional<std::string> worker = lease_holder(*credentials.lease);
    if (!worker) return absl::UnauthenticatedError("unknown lease");
    if (call != "GetJob") {
      return absl::PermissionDeniedError(
          absl::StrCat(name, " needs a bearer token; a worker lease may only call GetJob"));
    }
    return absl::StrCat("worker ", *worker);
  }
  if (!credentials.authorization) return absl::UnauthenticatedError("missing bearer token");
  const std::string& value = *credentials.authorization;
  if (!absl::StartsWithIgnoreCase(value, "Bearer ")) {
    return absl::UnauthenticatedError("authorization metadata must be 'Bearer TOKEN'");
  }
  const std::string token(absl::StripAsciiWhitespace(absl::string_view(value).substr(7)));
  const std::optional<Role> role = tokens.Find(token);
  if (!role) return absl::UnauthenticatedError("unknown token");
  if (*needed == Role::kAdmin && *role != Role::kAdmin) {
    return absl::PermissionDeniedError(
        absl::StrCat(name, " needs the admin role; this token has the read role"));
  }
  return absl::StrCat(std::string(RoleName(*role)), " token ", TokenFingerprint(token));
}

}  // namespace rally
