#include "services/control/job_store.h"

#include "absl/strings/str_cat.h"

namespace rally {

absl::StatusOr<std::unique_ptr<JobStore>> JobStore::Open(const std::string& path) {
  sqlite3* db = nullptr;
  if (sqlite3_open(path.c_str(), &db) != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    return absl::UnavailableError(absl::StrCat("cannot open job store ", path, ": ", msg));
  }
  std::unique_ptr<JobStore> store(new JobStore(db));
  if (auto s = store->Exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"); !s.ok()) return s;
  if (auto s = store->Exec("CREATE TABLE IF NOT EXISTS jobs ("
                           " id TEXT PRIMARY KEY, created INTEGER NOT NULL, job BLOB NOT NULL)");
      !s.ok()) {
    return s;
  }
  return store;
}

JobStore::~JobStore() { sqlite3_close(db_); }

absl::Status JobStore::Exec(const std::string& sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "unknown error";
    sqlite3_free(err);
    return absl::InternalError(absl::StrCat("job store: ", msg));
  }
  return absl::OkStatus();
}

absl::Status JobStore::Put(const v1::Job& job) {
  std::string blob = job.SerializeAsString();
  sqlite3_stmt* stmt = nullptr;
  const char* sql =
      "INSERT INTO jobs (id, created, job) VALUES (?1, ?2, ?3) "
      "ON CONFLICT(id) DO UPDATE SET job = excluded.job";
  if (sqlite3_prepare_v2(db_, sql, -1, &stmt, nullptr) != SQLITE_OK) {
    return absl::InternalError(absl::StrCat("job store: ", sqlite3_errmsg(db_)));
  }
  sqlite3_bind_text(stmt, 1, job.id().c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64(stmt, 2, job.created_unix_micros());
  sqlite3_bind_blob(stmt, 3, blob.data(), static_cast<int>(blob.size()), SQLITE_TRANSIENT);
  int rc = sqlite3_step(stmt);
  sqlite3_finalize(stmt);
  if (rc != SQLITE_DONE) {
    return absl::InternalError(absl::StrCat("job store: ", sqlite3_errmsg(db_)));
  }
  return absl::OkStatus();
}

absl::Status JobStore::Delete(const std::string& id) {
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db_, "DELETE FROM jobs WHERE id = ?1", -1, &stmt, nullptr) != SQLITE_OK) {
    return absl::InternalError(absl::StrCat("job store: ", sqlite3_errmsg(db_)));
  }
  sqlite3_bind_text(stmt, 1, id.c_str(), -1, SQLITE_TRANSIENT);
  int rc = sqlite3_step(stmt);
  sqlite3_finalize(stmt);
  if (rc != SQLITE_DONE) {
    return absl::InternalError(absl::StrCat("job store: deleting ", id, ": ", sqlite3_errmsg(db_)));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<v1::Job>> JobStore::List() {
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db_, "SELECT job FROM jobs ORDER BY created, id", -1, &stmt, nullptr) !=
      SQLITE_OK) {
    return absl::InternalError(absl::StrCat("job store: ", sqlite3_errmsg(db_)));
  }
  std::vector<v1::Job> jobs;
  while (sqlite3_step(stmt) == SQLITE_ROW) {
    v1::Job job;
    const void* data = sqlite3_column_blob(stmt, 0);
    int size = sqlite3_column_bytes(stmt, 0);
    if (!job.ParseFromArray(data, size)) {
      sqlite3_finalize(stmt);
      return absl::DataLossError("job store: a stored job does not parse");
    }
    jobs.push_back(std::move(job));
  }
  sqlite3_finalize(stmt);
  return jobs;
}

}  // namespace rally
