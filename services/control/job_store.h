// The durable job store of rally-control: one SQLite file, one row per job (its spec, state,
// reason and last progress), and one row per registered worker with the SHA-256 of its lease
// (never the lease itself), so that a restarted control can check a worker that registers again.
// Writes are transactions, so a job acknowledged to a client survives a crash of control.
// Thread safety: not thread safe; the controller serialises calls under its own lock.
#pragma once

#include <sqlite3.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "rally/v1/control.pb.h"
#include "services/control/credentials.h"

namespace rally {

// What the store keeps of a worker's registration.
struct StoredLease {
  std::string worker_id;
  Sha256Digest lease_digest{};
  // The peer certificate's component the lease is bound to ("" without mutual TLS).
  std::string component;
};

class JobStore {
 public:
  // Opens (creating if needed) the store at `path`; ":memory:" for a private in-memory store.
  static absl::StatusOr<std::unique_ptr<JobStore>> Open(const std::string& path);
  ~JobStore();

  // Inserts or replaces the job with `job.id()`; durable (fsynced) when it returns OK.
  absl::Status Put(const v1::Job& job);
  // Every stored job, oldest first (by creation time, then id).
  absl::StatusOr<std::vector<v1::Job>> List();
  // Removes the job `id`; OK when there is none.
  absl::Status Delete(const std::string& id);

  // Inserts or replaces the lease of `lease.worker_id`; durable when it returns OK.
  absl::Status PutLease(const StoredLease& lease);
  // Removes the lease of `worker_id`; OK when there is none.
  absl::Status DeleteLease(const std::string& worker_id);
  // Every stored lease.
  absl::StatusOr<std::vector<StoredLease>> ListLeases();

 private:
  explicit JobStore(sqlite3* db) : db_(db) {}
  absl::Status Exec(const std::string& sql);
  // Runs a statement that returns no rows, with `texts` bound to ?1, ?2, ... and `blob` (when
  // given) to the next parameter.
  absl::Status Run(const char* sql, const std::vector<std::string>& texts,
                   const std::string* blob = nullptr);
  sqlite3* db_;
};

}  // namespace rally
