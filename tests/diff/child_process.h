// Child processes for the differential and cluster tests: real etcd and cairnd servers, each
// started with its output in a log file and killed (SIGKILL) when the owning object goes away, or
// when this process dies (PR_SET_PDEATHSIG), so a failing or crashing test leaves no
// server behind.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace cairn::diff {

class ChildProcess {
 public:
  ChildProcess() = default;
  ~ChildProcess() { Kill(); }
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  // Starts argv[0] with argv, stdout and stderr appended to log_path. Returns false (and
  // says why in *error) when fork or exec fails.
  bool Start(const std::vector<std::string>& argv, const std::string& log_path, std::string* error);
  // True while the child has not exited.
  bool Running();
  // SIGKILL and reap; no-op when not running.
  void Kill();
  // Sends `signal` (SIGSTOP, SIGCONT, ...); false when not running.
  bool Signal(int signal);
  pid_t pid() const { return pid_; }
  // The last bytes_max bytes of the log, for failure messages.
  std::string LogTail(size_t bytes_max = 3000) const;
  const std::string& log_path() const { return log_path_; }

 private:
  pid_t pid_ = -1;
  std::string log_path_;
};

// A loopback TCP port that was free a moment ago (bind to port 0, read it, close).
int FreeLoopbackPort();

}  // namespace cairn::diff
