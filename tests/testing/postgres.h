#pragma once
// A real, throw-away PostgreSQL server for tests: initdb in a temporary directory, listening on a
// free loopback port, stopped and deleted by the destructor.
//
//   auto pg = tollgate::testing::PostgresServer::Start();
//   ASSERT_TRUE(pg.ok()) << pg.status();
//   Connect((*pg)->url());
//
// When run as root (CI, sessions), PostgreSQL runs as the `postgres` system user, which owns the
// directory. Binaries are found in $TOLLGATE_PG_BIN, else /usr/lib/postgresql/15/bin.
// Not thread-safe.

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace tollgate::testing {

class PostgresServer {
 public:
  static absl::StatusOr<std::unique_ptr<PostgresServer>> Start();
  ~PostgresServer();
  PostgresServer(const PostgresServer&) = delete;
  PostgresServer& operator=(const PostgresServer&) = delete;

  // libpq URL of the `postgres` database as superuser `postgres`.
  std::string url() const;
  // libpq URL of database `name`.
  std::string url(const std::string& name) const;
  int port() const { return port_; }

  // Creates database `name` (a fresh database for one test).
  absl::Status CreateDatabase(const std::string& name);
  // Runs `sql` with psql against database `db`; returns psql's unaligned, tuples-only output.
  absl::StatusOr<std::string> Query(const std::string& sql, const std::string& db = "postgres");

  // Crash (SIGKILL of the postmaster and its children) and restart on the same port and data.
  absl::Status KillAndRestart();

 private:
  PostgresServer() = default;
  absl::Status RunAsOwner(const std::vector<std::string>& argv, std::string* output = nullptr);
  absl::Status StartServer();

  std::string bin_dir_;
  std::string dir_;
  std::string data_dir_;
  int port_ = 0;
  bool as_postgres_user_ = false;
};

}  // namespace tollgate::testing
