// The durable job store of rally-control: one SQLite file, one row per job (its spec, state,
// reason and last progress). Writes are transactions, so a job acknowledged to a client survives
// a crash of control.
// Thread safety: not thread safe; the controller serialises calls under its own lock.
#pragma once

#include <sqlite3.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "rally/v1/control.pb.h"

namespace rally {

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

 private:
  explicit JobStore(sqlite3* db) : db_(db) {}
  absl::Status Exec(const std::string& sql);
  sqlite3* db_;
};

}  // namespace rally
