// cairn-bench's engine: connections, polling threads, the request schedule and the counters.
//
// Shape: `conns` gRPC channels (each its own TCP connection), `threads` polling threads each
// owning one CompletionQueue, and actors (one per in-flight client slot or stream) bound to
// one queue. An actor is only ever touched by its queue's thread, so actors and the per-thread
// Stats need no locks; the shared schedule (tickets, rate, deadline) is atomic.
//
// Every completion-queue tag is a Tag{actor, event}; the thread calls actor->OnEvent(event, ok).
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "etcdserverpb/rpc.grpc.pb.h"
#include "tools/cairn-bench/histogram.h"

namespace cairn::bench {

using SteadyClock = std::chrono::steady_clock;

// Flags common to every workload (etcd tools/benchmark's global and per-command flags).
struct Options {
  std::vector<std::string> endpoints{"127.0.0.1:2379"};
  int conns = 1;          // gRPC channels = TCP connections
  int clients = 1;        // requests in flight, in total, spread over the conns
  int threads = 1;        // polling threads (one CompletionQueue each)
  int64_t total = 10000;  // requests to start; 0 = no limit (then --duration must be set)
  double duration_s = 0;  // stop starting requests after this; 0 = no limit
  double rate = 0;        // request starts per second over all clients; 0 = unlimited
  int key_size = 8;       // bytes
  int val_size = 8;       // bytes
  int64_t key_space_size = 1;
  bool sequential_keys = false;
  uint64_t seed = 1;
  int server_pid = 0;                // if set, the server's VmRSS/VmHWM are reported
  std::string write_out = "simple";  // simple | json
  int64_t connect_timeout_ms = 10000;
};

// Keys of exactly key_size bytes for indexes in [0, key_space_size): zero-padded decimal
// when the key space fits in key_size digits (readable, ordered), big-endian binary otherwise.
class KeyCodec {
 public:
  // REQUIRES: Valid() — checked by the caller with the options.
  KeyCodec(int key_size, int64_t key_space_size);
  bool Valid() const { return valid_; }
  bool decimal() const { return decimal_; }
  void Encode(uint64_t index, std::string* key) const;

 private:
  int key_size_;
  bool decimal_ = true;
  bool valid_ = true;
};

class Actor {
 public:
  virtual ~Actor() = default;
  virtual void OnEvent(int event, bool ok) = 0;
};

struct Tag {
  Actor* actor;
  int event;
};

// Outcome counters of one polling thread; merged into a Report at the end.
struct Stats {
  static constexpr int kSeriesMax = 4;
  std::array<Histogram, kSeriesMax> latency_ns;  // successful requests only, per series
  std::array<uint64_t, kSeriesMax> errors{};
  std::map<int, uint64_t> errors_by_code;    // grpc::StatusCode -> count
  std::map<int, std::string> error_example;  // first message seen per code
  uint64_t keys_returned = 0;                // sum of kvs over range responses
  uint64_t events_received = 0;              // watch events
  uint64_t events_expected = 0;              // watch events the successful puts caused

  void RecordError(int series, const grpc::Status& status);
  void Merge(const Stats& other);
};

// Counts a group of actors down to zero: Add before starting them, Done once each has
// finished, Wait for all of them. Thread-safe.
class ActorGroup {
 public:
  void Add(int count);
  void Done();
  // Blocks until the count is zero; returns the time the last actor finished.
  SteadyClock::time_point Wait();
  // Like Wait with a limit; false on timeout.
  bool WaitFor(std::chrono::milliseconds timeout);

 private:
  std::mutex mutex_;
  std::condition_variable zero_;
  int active_ = 0;                       // GUARDED_BY(mutex_)
  SteadyClock::time_point last_done_{};  // GUARDED_BY(mutex_)
};

// One polling thread with its CompletionQueue, random source and Stats.
class Poller {
 public:
  Poller(int index, uint64_t seed) : index_(index), rng_(seed + index * 7919) {}
  Poller(const Poller&) = delete;
  Poller& operator=(const Poller&) = delete;

  void Start();
  void ShutdownAndJoin();
  grpc::CompletionQueue* cq() { return &cq_; }
  std::mt19937_64& rng() { return rng_; }
  Stats& stats() { return stats_; }
  int index() const { return index_; }

 private:
  int index_;
  grpc::CompletionQueue cq_;
  std::mt19937_64 rng_;
  Stats stats_;
  std::thread thread_;
  bool shut_down_ = false;
};

// The shared state of one benchmark phase: channels, pollers, schedule, completion.
class Run {
 public:
  explicit Run(const Options& options);
  Run(const Run&) = delete;
  Run& operator=(const Run&) = delete;
  ~Run();

  // Creates the channels and waits until each is connected; false (with a message) if not.
  bool Connect(std::string* error);
  void StartPollers();
  // Stops the pollers (after every actor is done) and merges their stats.
  Stats StopPollers();

  const Options& options() const { return options_; }
  int conn_count() const { return static_cast<int>(channels_.size()); }
  const std::shared_ptr<grpc::Channel>& channel(int i) const { return channels_[i]; }
  etcdserverpb::KV::Stub* kv(int i) { return kv_stubs_[i].get(); }
  Poller* poller(int i) { return pollers_[i % pollers_.size()].get(); }
  int poller_count() const { return static_cast<int>(pollers_.size()); }

  // The schedule: call BeginSchedule right before the actors start.
  void BeginSchedule(int64_t total, double duration_s, double rate);
  // The next request's ticket (0, 1, ...) and the time it may start; nullopt when the phase
  // is over (total reached or deadline passed).
  struct Ticket {
    uint64_t number;
    SteadyClock::time_point due;
  };
  std::optional<Ticket> TakeTicket();
  SteadyClock::time_point schedule_start() const { return schedule_start_; }

  // The request slots of the current phase (other actors, like watch streams, keep their
  // own ActorGroup).
  ActorGroup& slots() { return slots_; }

 private:
  Options options_;
  std::vector<std::shared_ptr<grpc::Channel>> channels_;
  std::vector<std::unique_ptr<etcdserverpb::KV::Stub>> kv_stubs_;
  std::vector<std::unique_ptr<Poller>> pollers_;

  std::atomic<uint64_t> next_ticket_{0};
  int64_t total_ = 0;
  double rate_ = 0;
  SteadyClock::time_point schedule_start_;
  std::optional<SteadyClock::time_point> deadline_;

  ActorGroup slots_;
};

inline int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(SteadyClock::now().time_since_epoch())
      .count();
}

// CPU time (user + system) of this whole process, all threads, in microseconds.
struct CpuTimes {
  int64_t user_us = 0;
  int64_t system_us = 0;
};
CpuTimes ProcessCpuTimes();

// A value from /proc/PID/status in bytes ("VmRSS", "VmHWM"); -1 if unreadable.
int64_t ProcStatusBytes(int pid, const std::string& field);

}  // namespace cairn::bench
