#include "services/control/job_store.h"

#include <cstring>

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
  if (auto s = store->Exec("CREATE TABLE IF NOT EXISTS worker_leases (worker_id TEXT PRIMARY KEY,"
                           " component TEXT NOT NULL, lease_sha256 BLOB NOT NULL)");
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

absl::Status JobStore::Run(const char* sql, const std::vector<std::string>& texts,
                           const std::string* blob) {
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db_, sql, -1, &stmt, nullptr) != SQLITE_OK) {
    return absl::InternalError(absl::StrCat("job store: ", sqlite3_errmsg(db_)));
  }
  int i = 1;
  for (const std::string& text : texts) {
    sqlite3_bind_text(stmt, i++, text.c_str(), -1, SQLITE_TRANSIENT);
  }
  if (blob != nullptr) {
    sqlite3_bind_blob(stmt, i, blob->data(), static_cast<int>(blob->size()), SQLITE_TRANSIENT);
  }
  int rc = sqlite3_step(stmt);
  sqlite3_finalize(stmt);
  if (rc != SQLITE_DONE) {
    return absl::InternalError(absl::StrCat("job store: ", sqlite3_errmsg(db_)));
  }
  return absl::OkStatus();
}

absl::Status JobStore::PutLease(const StoredLease& lease) {
  const std::string digest(lease.lease_digest.begin(), lease.lease_digest.end());
  return Run(
      "INSERT INTO worker_leases (worker_id, component, lease_sha256) VALUES (?1, ?2, ?3) "
      "ON CONFLICT(worker_id) DO UPDATE SET component = excluded.component, "
      "lease_sha256 = excluded.lease_sha256",
      {lease.worker_id, lease.component}, &digest);
}

absl::Status JobStore::DeleteLease(const std::string& worker_id) {
  return Run("DELETE FROM worker_leases WHERE worker_id = ?1", {worker_id});
}

absl::StatusOr<std::vector<StoredLease>> JobStore::ListLeases() {
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db_, "SELECT worker_id, component, lease_sha256 FROM worker_leases", -1,
                         &stmt, nullptr) != SQLITE_OK) {
    return absl::InternalError(absl::StrCat("job store: ", sqlite3_errmsg(db_)));
  }
  std::vector<StoredLease> leases;
  while (sqlite3_step(stmt) == SQLITE_ROW) {
    StoredLease lease;
    lease.worker_id = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    lease.component = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 1));
    const int size = sqlite3_column_bytes(stmt, 2);
    if (size != static_cast<int>(lease.lease_digest.size())) {
      sqlite3_finalize(stmt);
      return absl::DataLossError(absl::StrCat("job store: the lease digest of worker ",
                                              lease.worker_id, " has ", size, " bytes, not 32"));
    }
    std::memcpy(lease.lease_digest.data(), sqlite3_column_blob(stmt, 2), size);
    leases.push_back(std::move(lease));
  }
  sqlite3_finalize(stmt);
  return leases;
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
