#pragma once
// Test helpers for running real Tollgate processes on loopback.
//
// Process: a child process started with fork/exec, its stdout and stderr appended to a log file,
// killed with SIGKILL if the test process dies (PR_SET_PDEATHSIG) and stopped in the destructor.
// Not thread-safe; owned by one test fixture.

#include <sys/types.h>

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace tollgate::testing {

class Process {
 public:
  // Starts argv[0] with `argv`, adding `env` to the inherited environment. Output goes to
  // `log_path` (appended). Errors: kInternal when fork/exec fails.
  static absl::StatusOr<std::unique_ptr<Process>> Start(
      const std::vector<std::string>& argv, const std::string& log_path,
      const std::map<std::string, std::string>& env = {});

  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  const std::string& log_path() const { return log_path_; }

  // Sends SIGTERM and waits up to `grace` for exit, then SIGKILL. Returns the exit status as
  // reported by waitpid (or -1 if it had already been reaped).
  int Stop(std::chrono::milliseconds grace = std::chrono::seconds(10));
  // SIGKILL and reap.
  void Kill();
  // True while the child has not exited.
  bool Running();
  // The last `max_bytes` of the log, for failure messages.
  std::string LogTail(size_t max_bytes = 4000) const;

 private:
  Process(pid_t pid, std::string log_path) : pid_(pid), log_path_(std::move(log_path)) {}
  pid_t pid_;
  std::string log_path_;
  int exit_status_ = -1;
};

// A free TCP port on 127.0.0.1 (bound and released; the kernel will not hand it out again soon).
int PickFreePort();

// Waits until a TCP connect to 127.0.0.1:port succeeds. Errors: kDeadlineExceeded.
absl::Status WaitForPort(int port, std::chrono::milliseconds timeout);

// A fresh temporary directory (mkdtemp under $TMPDIR or /tmp) removed by the destructor.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
 private:
  std::string path_;
};

// Writes `contents` to `path`. Aborts the test binary on failure (test setup only).
void WriteFile(const std::string& path, const std::string& contents);

// Runs a command to completion; returns its exit status and captured stdout+stderr.
struct CommandResult {
  int exit_code = -1;
  std::string output;
};
CommandResult RunCommand(const std::vector<std::string>& argv,
                         const std::map<std::string, std::string>& env = {});

}  // namespace tollgate::testing
