#include "tests/testing/postgres.h"

#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "tests/testing/process.h"

namespace tollgate::testing {

absl::StatusOr<std::unique_ptr<PostgresServer>> PostgresServer::Start() {
  std::unique_ptr<PostgresServer> pg(new PostgresServer());
  const char* bin = std::getenv("TOLLGATE_PG_BIN");
  pg->bin_dir_ = bin != nullptr ? bin : "/usr/lib/postgresql/15/bin";
  if (!std::filesystem::exists(pg->bin_dir_ + "/initdb")) {
    return absl::FailedPreconditionError(absl::StrCat(
        "PostgreSQL binaries not found in ", pg->bin_dir_,
        " (install postgresql-15 or set TOLLGATE_PG_BIN)"));
  }
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = absl::StrCat(base != nullptr ? base : "/tmp", "/tollgate-pg-XXXXXX");
  if (mkdtemp(tmpl.data()) == nullptr) return absl::InternalError("mkdtemp failed");
  pg->dir_ = tmpl;
  pg->data_dir_ = pg->dir_ + "/data";
  if (geteuid() == 0) {
    // initdb refuses to run as root: hand the directory to the postgres system user.
    struct passwd* pw = getpwnam("postgres");
    if (pw == nullptr) {
      return absl::FailedPreconditionError("running as root but no 'postgres' user exists");
    }
    if (chown(pg->dir_.c_str(), pw->pw_uid, pw->pw_gid) != 0) {
      return absl::InternalError(absl::StrCat("chown ", pg->dir_, " failed"));
    }
    chmod(pg->dir_.c_str(), 0755);
    pg->as_postgres_user_ = true;
  }
  std::string out;
  absl::Status st = pg->RunAsOwner({pg->bin_dir_ + "/initdb", "-D", pg->data_dir_, "-A", "trust",
                                    "-U", "postgres", "-E", "UTF8", "--no-sync", "--no-locale"},
                                   &out);
  if (!st.ok()) return absl::InternalError(absl::StrCat("initdb failed: ", st.message(), "\n", out));
  for (int attempt = 0; attempt < 5; ++attempt) {
    pg->port_ = PickFreePort();
    st = pg->StartServer();
    if (st.ok()) return pg;
  }
  return st;
}

absl::Status PostgresServer::StartServer() {
  const std::string opts = absl::StrCat(
      "-p ", port_, " -k ", dir_,
      " -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
      " -c max_connections=200 -c shared_buffers=128MB");
  std::string out;
  absl::Status st = RunAsOwner({bin_dir_ + "/pg_ctl", "-D", data_dir_, "-o", opts, "-l",
                                dir_ + "/server.log", "-w", "-t", "60", "start"},
                               &out);
  if (!st.ok()) {
    std::ifstream log(dir_ + "/server.log");
    std::string tail((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
    return absl::UnavailableError(absl::StrCat("pg_ctl start failed: ", out, tail));
  }
  return absl::OkStatus();
}

absl::Status PostgresServer::RunAsOwner(const std::vector<std::string>& argv, std::string* output) {
  std::vector<std::string> full;
  if (as_postgres_user_) full = {"runuser", "-u", "postgres", "--"};
  full.insert(full.end(), argv.begin(), argv.end());
  CommandResult r = RunCommand(full);
  if (output != nullptr) *output = r.output;
  if (r.exit_code != 0) {
    return absl::InternalError(absl::StrCat(argv[0], " exited with ", r.exit_code, ": ", r.output));
  }
  return absl::OkStatus();
}

PostgresServer::~PostgresServer() {
  if (!data_dir_.empty()) {
    RunAsOwner({bin_dir_ + "/pg_ctl", "-D", data_dir_, "-m", "immediate", "-w", "stop"}).IgnoreError();
  }
  if (!dir_.empty() && std::getenv("TOLLGATE_KEEP_TEST_DIRS") == nullptr) {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
}

std::string PostgresServer::url() const { return url("postgres"); }

std::string PostgresServer::url(const std::string& name) const {
  return absl::StrCat("postgresql://postgres@127.0.0.1:", port_, "/", name);
}

absl::Status PostgresServer::CreateDatabase(const std::string& name) {
  return Query(absl::StrCat("CREATE DATABASE \"", name, "\"")).status();
}

absl::StatusOr<std::string> PostgresServer::Query(const std::string& sql, const std::string& db) {
  CommandResult r = RunCommand({bin_dir_ + "/psql", "-X", "-q", "-A", "-t", "-v",
                                "ON_ERROR_STOP=1", "-d", url(db), "-c", sql});
  if (r.exit_code != 0) {
    return absl::InternalError(absl::StrCat("psql failed (", r.exit_code, "): ", r.output));
  }
  return std::string(absl::StripTrailingAsciiWhitespace(r.output));
}

absl::Status PostgresServer::KillAndRestart() {
  std::ifstream pidfile(data_dir_ + "/postmaster.pid");
  pid_t pid = 0;
  pidfile >> pid;
  if (pid <= 0) return absl::FailedPreconditionError("no postmaster.pid");
  kill(pid, SIGKILL);
  for (int i = 0; i < 500 && kill(pid, 0) == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  // Children notice the postmaster's death; give them a moment, then start again (recovery).
  return StartServer();
}

}  // namespace tollgate::testing
