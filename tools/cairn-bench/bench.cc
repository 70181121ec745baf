#include "tools/cairn-bench/bench.h"

#include <grpc/grpc.h>
#include <sys/resource.h>

#include <fstream>
#include <sstream>

#include "src/base/check.h"

namespace cairn::bench {

KeyCodec::KeyCodec(int key_size, int64_t key_space_size) : key_size_(key_size) {
  if (key_size <= 0 || key_space_size <= 0) {
    valid_ = false;
    return;
  }
  // Decimal if 10^key_size >= key_space_size.
  long double capacity = 1;
  for (int i = 0; i < key_size && capacity < key_space_size; ++i) capacity *= 10;
  if (capacity >= key_space_size) return;
  decimal_ = false;
  capacity = 1;
  for (int i = 0; i < key_size && capacity < key_space_size; ++i) capacity *= 256;
  valid_ = capacity >= key_space_size;
}

void KeyCodec::Encode(uint64_t index, std::string* key) const {
  key->assign(key_size_, decimal_ ? '0' : '\0');
  for (int i = key_size_ - 1; i >= 0 && index != 0; --i) {
    if (decimal_) {
      (*key)[i] = static_cast<char>('0' + index % 10);
      index /= 10;
    } else {
      (*key)[i] = static_cast<char>(index & 0xff);
      index >>= 8;
    }
  }
}

void Stats::RecordError(int series, const grpc::Status& status) {
  ++errors[series];
  const int code = static_cast<int>(status.error_code());
  if (errors_by_code[code]++ == 0) error_example[code] = status.error_message();
}

void Stats::Merge(const Stats& other) {
  for (int i = 0; i < kSeriesMax; ++i) {
    latency_ns[i].Merge(other.latency_ns[i]);
    errors[i] += other.errors[i];
  }
  for (const auto& [code, count] : other.errors_by_code) errors_by_code[code] += count;
  for (const auto& [code, message] : other.error_example) error_example.emplace(code, message);
  keys_returned += other.keys_returned;
  events_received += other.events_received;
  events_expected += other.events_expected;
}

void Poller::Start() {
  thread_ = std::thread([this] {
    void* tag = nullptr;
    bool ok = false;
    while (cq_.Next(&tag, &ok)) {  // false once shut down and drained
      Tag* event = static_cast<Tag*>(tag);
      event->actor->OnEvent(event->event, ok);
    }
  });
}

void Poller::ShutdownAndJoin() {
  if (shut_down_) return;
  shut_down_ = true;
  cq_.Shutdown();
  if (thread_.joinable()) thread_.join();
}

Run::Run(const Options& options) : options_(options) {
  for (int i = 0; i < std::max(1, options_.threads); ++i)
    pollers_.push_back(std::make_unique<Poller>(i, options_.seed));
}

Run::~Run() {
  for (auto& poller : pollers_) poller->ShutdownAndJoin();
}

bool Run::Connect(std::string* error) {
  const auto deadline =
      std::chrono::system_clock::now() + std::chrono::milliseconds(options_.connect_timeout_ms);
  for (int i = 0; i < options_.conns; ++i) {
    const std::string& endpoint = options_.endpoints[i % options_.endpoints.size()];
    grpc::ChannelArguments args;
    // A local subchannel pool and a distinct argument make every channel its own TCP
    // connection (gRPC otherwise shares subchannels between channels with equal arguments).
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    args.SetInt("cairn.bench.conn", i);
    args.SetMaxReceiveMessageSize(-1);
    auto channel = grpc::CreateCustomChannel(endpoint, grpc::InsecureChannelCredentials(), args);
    if (!channel->WaitForConnected(deadline)) {
      *error = "could not connect to " + endpoint;
      return false;
    }
    kv_stubs_.push_back(etcdserverpb::KV::NewStub(channel));
    channels_.push_back(std::move(channel));
  }
  return true;
}

void Run::StartPollers() {
  for (auto& poller : pollers_) poller->Start();
}

Stats Run::StopPollers() {
  Stats merged;
  for (auto& poller : pollers_) {
    poller->ShutdownAndJoin();
    merged.Merge(poller->stats());
  }
  return merged;
}

void Run::BeginSchedule(int64_t total, double duration_s, double rate) {
  total_ = total;
  rate_ = rate;
  next_ticket_.store(0);
  schedule_start_ = SteadyClock::now();
  deadline_.reset();
  if (duration_s > 0) {
    deadline_ = schedule_start_ + std::chrono::duration_cast<SteadyClock::duration>(
                                      std::chrono::duration<double>(duration_s));
  }
}

std::optional<Run::Ticket> Run::TakeTicket() {
  const uint64_t number = next_ticket_.fetch_add(1, std::memory_order_relaxed);
  if (total_ > 0 && number >= static_cast<uint64_t>(total_)) return std::nullopt;
  Ticket ticket{number, SteadyClock::time_point{}};
  if (rate_ > 0) {
    ticket.due = schedule_start_ + std::chrono::duration_cast<SteadyClock::duration>(
                                       std::chrono::duration<double>(number / rate_));
  }
  if (deadline_) {
    const auto start = std::max(ticket.due, SteadyClock::now());
    if (start >= *deadline_) return std::nullopt;
  }
  return ticket;
}

void ActorGroup::Add(int count) {
  std::lock_guard lock(mutex_);
  active_ += count;
}

void ActorGroup::Done() {
  std::lock_guard lock(mutex_);
  CAIRN_CHECK(active_ > 0);
  if (--active_ == 0) {
    last_done_ = SteadyClock::now();
    zero_.notify_all();
  }
}

SteadyClock::time_point ActorGroup::Wait() {
  std::unique_lock lock(mutex_);
  zero_.wait(lock, [this] { return active_ == 0; });
  return last_done_;
}

bool ActorGroup::WaitFor(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  return zero_.wait_for(lock, timeout, [this] { return active_ == 0; });
}

CpuTimes ProcessCpuTimes() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  CpuTimes times;
  times.user_us = usage.ru_utime.tv_sec * 1000000LL + usage.ru_utime.tv_usec;
  times.system_us = usage.ru_stime.tv_sec * 1000000LL + usage.ru_stime.tv_usec;
  return times;
}

int64_t ProcStatusBytes(int pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) != 0) continue;
    std::istringstream fields(line.substr(field.size() + 1));
    int64_t kib = -1;
    fields >> kib;
    return kib < 0 ? -1 : kib * 1024;
  }
  return -1;
}

}  // namespace cairn::bench
