// lock and elect over the server-side v3lockpb/v3electionpb services, on a lease this
// process keeps alive (what etcdctl's concurrency.Session does). SIGINT/SIGTERM release the
// lock or resign and exit 0, as etcdctl does.
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tools/cairnctl/commands.h"
#include "tools/cairnctl/go_format.h"
#include "tools/cairnctl/printer.h"

extern char** environ;

namespace cairnctl {
namespace {

// Why a lock holder or leader stops waiting. Thread-safe.
class Stopper {
 public:
  // Blocks SIGINT and SIGTERM in every thread and turns them into Interrupt(). REQUIRES:
  // called before any other thread starts (gRPC starts its threads with the first channel).
  void CatchSignals() {
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    std::thread([this, signals] {
      int signal_number = 0;
      sigwait(&signals, &signal_number);
      Interrupt();
    }).detach();
  }

  void Interrupt() {
    std::lock_guard<std::mutex> lock(mutex_);
    interrupted_ = true;
    if (cancel_on_interrupt_ != nullptr) cancel_on_interrupt_->TryCancel();
    changed_.notify_all();
  }

  void Expire() {
    std::lock_guard<std::mutex> lock(mutex_);
    session_expired_ = true;
    changed_.notify_all();
  }

  // The context of the blocking call in progress (nullptr when none): an interrupt cancels it.
  void CancelOnInterrupt(grpc::ClientContext* context) {
    std::lock_guard<std::mutex> lock(mutex_);
    cancel_on_interrupt_ = context;
    if (interrupted_ && context != nullptr) context->TryCancel();
  }

  // Blocks until interrupted or the session expired; true when interrupted.
  bool WaitInterruptedOrExpired() {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [this] { return interrupted_ || session_expired_; });
    return interrupted_;
  }

  bool interrupted() {
    std::lock_guard<std::mutex> lock(mutex_);
    return interrupted_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  bool interrupted_ = false;                            // GUARDED_BY(mutex_)
  bool session_expired_ = false;                        // GUARDED_BY(mutex_)
  grpc::ClientContext* cancel_on_interrupt_ = nullptr;  // GUARDED_BY(mutex_)
};

// A lease kept alive every TTL/3 by a background thread until Close (concurrency.Session).
class Session {
 public:
  Session(Connection* connection, Stopper* stopper) : connection_(connection), stopper_(stopper) {}
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  ~Session() { Close(); }

  grpc::Status Start(int64_t ttl_seconds) {
    etcdserverpb::LeaseGrantRequest request;
    request.set_ttl(ttl_seconds);
    etcdserverpb::LeaseGrantResponse response;
    grpc::Status status =
        connection_->lease().LeaseGrant(connection_->CommandContext().get(), request, &response);
    if (!status.ok()) return status;
    lease_id_ = response.id();
    keep_alive_context_ = connection_->StreamContext();
    thread_ = std::thread([this, ttl = response.ttl()] { KeepAlive(ttl); });
    return grpc::Status::OK;
  }

  int64_t lease_id() const { return lease_id_; }

  // Stops the keep-alives and revokes the lease.
  void Close() {
    if (!thread_.joinable()) return;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      closing_ = true;
    }
    closing_changed_.notify_all();
    keep_alive_context_->TryCancel();
    thread_.join();
    etcdserverpb::LeaseRevokeRequest request;
    request.set_id(lease_id_);
    etcdserverpb::LeaseRevokeResponse response;
    (void)connection_->lease().LeaseRevoke(connection_->CommandContext().get(), request, &response);
  }

 private:
  void KeepAlive(int64_t ttl_seconds) {
    auto stream = connection_->lease().LeaseKeepAlive(keep_alive_context_.get());
    etcdserverpb::LeaseKeepAliveRequest request;
    request.set_id(lease_id_);
    etcdserverpb::LeaseKeepAliveResponse response;
    auto interval = std::chrono::milliseconds(std::max<int64_t>(ttl_seconds * 1000 / 3, 500));
    while (true) {
      {
        std::unique_lock<std::mutex> lock(mutex_);
        if (closing_changed_.wait_for(lock, interval, [this] { return closing_; })) return;
      }
      if (!stream->Write(request) || !stream->Read(&response) || response.ttl() <= 0) break;
    }
    std::lock_guard<std::mutex> lock(mutex_);
    if (!closing_) stopper_->Expire();
  }

  Connection* connection_;
  Stopper* stopper_;
  int64_t lease_id_ = 0;
  std::unique_ptr<grpc::ClientContext> keep_alive_context_;
  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable closing_changed_;
  bool closing_ = false;  // GUARDED_BY(mutex_)
};

// Runs argv with ETCD_LOCK_KEY/ETCD_LOCK_REV added to the environment; returns "" or
// etcdctl's error text ("exit status 1").
std::string RunCommand(const std::vector<std::string>& argv, const std::string& key,
                       int64_t revision) {
  std::vector<std::string> environment = {"ETCD_LOCK_KEY=" + key,
                                          "ETCD_LOCK_REV=" + std::to_string(revision)};
  for (char** entry = environ; *entry != nullptr; ++entry) environment.push_back(*entry);
  std::vector<char*> env_pointers, arg_pointers;
  for (auto& entry : environment) env_pointers.push_back(entry.data());
  env_pointers.push_back(nullptr);
  std::vector<std::string> args = argv;
  for (auto& arg : args) arg_pointers.push_back(arg.data());
  arg_pointers.push_back(nullptr);
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGINT);
  sigaddset(&defaults, SIGTERM);
  posix_spawnattr_setsigmask(&attributes, &none);
  posix_spawnattr_setsigdefault(&attributes, &defaults);
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  pid_t pid = 0;
  int error = posix_spawnp(&pid, arg_pointers[0], nullptr, &attributes, arg_pointers.data(),
                           env_pointers.data());
  posix_spawnattr_destroy(&attributes);
  if (error != 0) {
    return "exec: " + GoQuote(argv[0]) + ": executable file not found in $PATH";
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return "";
  if (WIFEXITED(status)) return "exit status " + std::to_string(WEXITSTATUS(status));
  return std::string("signal: ") + strsignal(WTERMSIG(status));
}

int Unlock(Connection* connection, const std::string& key) {
  v3lockpb::UnlockRequest request;
  request.set_key(key);
  v3lockpb::UnlockResponse response;
  grpc::Status status =
      connection->lock().Unlock(connection->CommandContext().get(), request, &response);
  if (!status.ok()) return ExitWithError(kExitError, ErrorText(status));
  return kExitSuccess;
}

struct LockFlags {
  std::vector<std::string> args;
  int64_t ttl_seconds = 10;  // etcdctl 3.4's lock --ttl default
};

int RunLock(const GlobalOptions& options, const LockFlags& flags) {
  if (flags.args.empty()) {
    return ExitWithError(kExitBadArgs,
                         "lock takes a lock name argument and an optional command to execute");
  }
  Stopper stopper;
  stopper.CatchSignals();
  Connection connection(options, options.endpoints);
  Session session(&connection, &stopper);
  grpc::Status status = session.Start(flags.ttl_seconds);
  if (!status.ok()) return ExitWithError(kExitError, ErrorText(status));
  v3lockpb::LockRequest request;
  request.set_name(flags.args[0]);
  request.set_lease(session.lease_id());
  v3lockpb::LockResponse locked;
  auto context = connection.StreamContext();
  stopper.CancelOnInterrupt(context.get());
  status = connection.lock().Lock(context.get(), request, &locked);
  stopper.CancelOnInterrupt(nullptr);
  if (!status.ok()) return ExitWithError(kExitError, ErrorText(status));
  if (flags.args.size() > 1) {
    std::vector<std::string> command(flags.args.begin() + 1, flags.args.end());
    std::fflush(stdout);
    std::string error = RunCommand(command, locked.key(), locked.header().revision());
    int unlocked = Unlock(&connection, locked.key());
    session.Close();
    if (!error.empty()) return ExitWithError(kExitError, error);
    return unlocked;
  }
  etcdserverpb::RangeRequest get;
  get.set_key(locked.key());
  etcdserverpb::RangeResponse held;
  status = connection.kv().Range(connection.CommandContext().get(), get, &held);
  if (!status.ok()) return ExitWithError(kExitError, ErrorText(status));
  if (held.kvs_size() == 0) return ExitWithError(kExitError, "lock lost on init");
  Printer(options.output, options.hex).Get(held);
  std::fflush(stdout);
  if (!stopper.WaitInterruptedOrExpired()) return ExitWithError(kExitError, "session expired");
  int unlocked = Unlock(&connection, locked.key());
  session.Close();
  return unlocked;
}

struct ElectFlags {
  std::vector<std::string> args;
  bool listen = false;
};

int Observe(const GlobalOptions& options, const std::string& name, Stopper* stopper) {
  Connection connection(options, options.endpoints);
  Printer printer(options.output, options.hex);
  v3electionpb::LeaderRequest request;
  request.set_name(name);
  auto context = connection.StreamContext();
  stopper->CancelOnInterrupt(context.get());
  auto stream = connection.election().Observe(context.get(), request);
  v3electionpb::LeaderResponse leader;
  while (stream->Read(&leader)) {
    etcdserverpb::RangeResponse as_get;  // etcdctl prints observations with display.Get
    *as_get.mutable_header() = leader.header();
    *as_get.add_kvs() = leader.kv();
    printer.Get(as_get);
    std::fflush(stdout);
  }
  stopper->CancelOnInterrupt(nullptr);
  if (stopper->interrupted()) return kExitSuccess;
  return ExitWithError(kExitError, "elect: observer lost");
}

int Campaign(const GlobalOptions& options, const ElectFlags& flags, Stopper* stopper) {
  Connection connection(options, options.endpoints);
  Session session(&connection, stopper);
  grpc::Status status = session.Start(60);  // concurrency.NewSession's default TTL
  if (!status.ok()) return ExitWithError(kExitError, ErrorText(status));
  v3electionpb::CampaignRequest request;
  request.set_name(flags.args[0]);
  request.set_lease(session.lease_id());
  request.set_value(flags.args[1]);
  v3electionpb::CampaignResponse elected;
  auto context = connection.StreamContext();
  stopper->CancelOnInterrupt(context.get());
  status = connection.election().Campaign(context.get(), request, &elected);
  stopper->CancelOnInterrupt(nullptr);
  if (!status.ok()) return ExitWithError(kExitError, ErrorText(status));
  etcdserverpb::RangeRequest get;
  get.set_key(elected.leader().key());
  etcdserverpb::RangeResponse leader;
  status = connection.kv().Range(connection.CommandContext().get(), get, &leader);
  if (!status.ok()) return ExitWithError(kExitError, ErrorText(status));
  Printer(options.output, options.hex).Get(leader);
  std::fflush(stdout);
  if (!stopper->WaitInterruptedOrExpired()) {
    return ExitWithError(kExitError, "elect: session expired");
  }
  v3electionpb::ResignRequest resign;
  *resign.mutable_leader() = elected.leader();
  v3electionpb::ResignResponse resigned;
  status = connection.election().Resign(connection.CommandContext().get(), resign, &resigned);
  session.Close();
  if (!status.ok()) return ExitWithError(kExitError, ErrorText(status));
  return kExitSuccess;
}

int RunElect(const GlobalOptions& options, const ElectFlags& flags) {
  if (flags.args.empty() || flags.args.size() > 2) {
    return ExitWithError(kExitBadArgs,
                         "elect takes one election name argument and an optional proposal "
                         "argument");
  }
  if (!flags.listen && flags.args.size() == 1) {
    return ExitWithError(kExitBadArgs, "no proposal argument but -l not set");
  }
  Stopper stopper;
  stopper.CatchSignals();
  if (flags.listen) return Observe(options, flags.args[0], &stopper);
  return Campaign(options, flags, &stopper);
}

}  // namespace

void AddConcurrencyCommands(CLI::App* app, Invocation* invocation) {
  auto lock_flags = std::make_shared<LockFlags>();
  CLI::App* lock = app->add_subcommand("lock", "Acquires a named lock");
  lock->add_option("--ttl", lock_flags->ttl_seconds, "timeout for session");
  // Everything from the lock name on is positional: the command keeps its own flags.
  // Global flags must come before `lock` (no fallthrough), unlike etcdctl.
  lock->prefix_command();
  lock->fallthrough(false);
  lock->final_callback([invocation, lock_flags, lock] {
    for (const std::string& arg : lock->remaining()) {
      if (arg == "--" && lock_flags->args.size() <= 1) continue;  // `lock name -- cmd ...`
      lock_flags->args.push_back(arg);
    }
    invocation->run = [lock_flags](const GlobalOptions& o) { return RunLock(o, *lock_flags); };
  });

  auto elect_flags = std::make_shared<ElectFlags>();
  CLI::App* elect = app->add_subcommand("elect", "Observes and participates in leader election");
  elect->add_flag("-l,--listen", elect_flags->listen, "observation mode");
  elect->add_option("args", elect_flags->args, "<election-name> [proposal]");
  elect->final_callback([invocation, elect_flags] {
    invocation->run = [elect_flags](const GlobalOptions& o) { return RunElect(o, *elect_flags); };
  });
}

}  // namespace cairnctl
