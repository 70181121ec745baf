#include "tools/cairn-bench/events_workloads.h"

#include <grpc/support/time.h>
#include <grpcpp/alarm.h>

#include <cstring>

#include "cairn/events.grpc.pb.h"
#include "src/base/check.h"

namespace cairn::bench {
namespace {

namespace ev = cairn::events::v1;

// The service's page limit (events.proto: a ReadStream page holds at most 4096 events).
constexpr int kReadCountMax = 4096;
// One Append carries at most this many events here: enough for the 1/10/100 configurations,
// and it keeps one request well under gRPC's 4 MiB default message size at --val-size 1024.
constexpr int kBatchMax = 1000;
// How long events-subscribe-latency waits for its subscriptions to report caught_up.
constexpr auto kCaughtUpWait = std::chrono::seconds(10);
// The first bytes of a stamped event's data: the append's send time (NowNs).
constexpr size_t kStampSizeBytes = sizeof(int64_t);

gpr_timespec ToGprDeadline(SteadyClock::time_point due) {
  const int64_t delta_ns = std::max<int64_t>(
      0, std::chrono::duration_cast<std::chrono::nanoseconds>(due - SteadyClock::now()).count());
  return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_nanos(delta_ns, GPR_TIMESPAN));
}

std::string RandomBytes(int size, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string value(size, '\0');
  for (char& c : value) c = static_cast<char>('a' + rng() % 26);
  return value;
}

// A version 4 UUID in text form from the poller's random source, xor a per-process salt: the
// pollers' sources are seeded with --seed, so without the salt every run would repeat the
// same ids, and the server refuses an id it has stored with different content.
uint64_t IdSalt() {
  static const uint64_t salt = (uint64_t{std::random_device{}()} << 32) ^ std::random_device{}();
  return salt;
}

void RandomUuid(std::mt19937_64& rng, std::string* text) {
  static const char kDigits[] = "0123456789abcdef";
  uint64_t words[2] = {rng() ^ IdSalt(), rng()};
  words[0] = (words[0] & ~uint64_t{0xf000}) | 0x4000;                    // version 4
  words[1] = (words[1] & ~(uint64_t{0xc} << 60)) | (uint64_t{8} << 60);  // RFC 4122 variant
  text->resize(36);
  int out = 0;
  for (int nibble = 0; nibble < 32; ++nibble) {
    if (nibble == 8 || nibble == 12 || nibble == 16 || nibble == 20) (*text)[out++] = '-';
    const uint64_t word = words[nibble / 16];
    (*text)[out++] = kDigits[(word >> (60 - 4 * (nibble % 16))) & 0xf];
  }
}

// What a slot sends next, reused from request to request.
struct EventsCall {
  bool read = false;
  bool stamp = false;  // write the send time into every event's data
  int series = 0;
  uint64_t stream_index = 0;
  ev::AppendRequest append;
  ev::AppendResponse append_response;
  ev::ReadStreamRequest read_request;
  ev::ReadStreamResponse read_response;
};

// Decides and accounts each request. Both run on the slot's polling thread; `client` is the
// slot's number (state kept per client needs no lock).
class EventsWorkload {
 public:
  virtual ~EventsWorkload() = default;
  virtual void Prepare(uint64_t ticket, int client, Poller& poller, EventsCall& call) = 0;
  virtual void OnDone(int client, const grpc::Status& status, int64_t latency_ns, Poller& poller,
                      EventsCall& call) = 0;
};

// One request in flight at a time, as UnarySlot (workloads.cc) but on the Events stub.
class EventsSlot final : public Actor {
 public:
  EventsSlot(Run* run, EventsWorkload* workload, int client, Poller* poller)
      : run_(run),
        workload_(workload),
        client_(client),
        stub_(ev::Events::NewStub(run->channel(client % run->conn_count()))),
        poller_(poller) {}

  void Kick() { alarm_.Set(poller_->cq(), gpr_now(GPR_CLOCK_MONOTONIC), &kick_tag_); }

  void OnEvent(int event, bool ok) override {
    if (event == kDone) {
      workload_->OnDone(client_, status_, NowNs() - start_ns_, *poller_, call_);
    }
    if (event == kDue) return Send();
    Next();
  }

 private:
  enum Event { kKick, kDue, kDone };

  void Next() {
    auto ticket = run_->TakeTicket();
    if (!ticket) return run_->slots().Done();
    workload_->Prepare(ticket->number, client_, *poller_, call_);
    if (ticket->due > SteadyClock::now()) {
      alarm_.Set(poller_->cq(), ToGprDeadline(ticket->due), &due_tag_);
      return;
    }
    Send();
  }

  void Send() {
    context_ = std::make_unique<grpc::ClientContext>();
    start_ns_ = NowNs();
    if (call_.read) {
      read_reader_ =
          stub_->PrepareAsyncReadStream(context_.get(), call_.read_request, poller_->cq());
      read_reader_->StartCall();
      read_reader_->Finish(&call_.read_response, &status_, &done_tag_);
      return;
    }
    if (call_.stamp) {
      for (auto& event : *call_.append.mutable_events()) {
        CAIRN_CHECK(event.data().size() >= kStampSizeBytes);
        std::memcpy(event.mutable_data()->data(), &start_ns_, kStampSizeBytes);
      }
    }
    append_reader_ = stub_->PrepareAsyncAppend(context_.get(), call_.append, poller_->cq());
    append_reader_->StartCall();
    append_reader_->Finish(&call_.append_response, &status_, &done_tag_);
  }

  Run* run_;
  EventsWorkload* workload_;
  int client_;
  std::unique_ptr<ev::Events::Stub> stub_;
  Poller* poller_;
  Tag kick_tag_{this, kKick};
  Tag due_tag_{this, kDue};
  Tag done_tag_{this, kDone};
  grpc::Alarm alarm_;
  std::unique_ptr<grpc::ClientContext> context_;
  grpc::Status status_;
  int64_t start_ns_ = 0;
  EventsCall call_;
  std::unique_ptr<grpc::ClientAsyncResponseReader<ev::AppendResponse>> append_reader_;
  std::unique_ptr<grpc::ClientAsyncResponseReader<ev::ReadStreamResponse>> read_reader_;
};

// Runs one slot per client over the conns until the schedule ends; returns the seconds from
// the schedule's start to the last completion. With `report`, also its CPU time.
double RunEventsSlots(Run& run, EventsWorkload& workload, int64_t total, double duration_s,
                      double rate, Report* report) {
  std::vector<std::unique_ptr<EventsSlot>> slots;
  for (int i = 0; i < run.options().clients; ++i) {
    slots.push_back(std::make_unique<EventsSlot>(&run, &workload, i, run.poller(i)));
  }
  run.slots().Add(static_cast<int>(slots.size()));
  const CpuTimes cpu_before = ProcessCpuTimes();
  run.BeginSchedule(total, duration_s, rate);
  for (auto& slot : slots) slot->Kick();
  const auto last_done = run.slots().Wait();
  const CpuTimes cpu_after = ProcessCpuTimes();
  if (report != nullptr) {
    report->cpu.user_us = cpu_after.user_us - cpu_before.user_us;
    report->cpu.system_us = cpu_after.system_us - cpu_before.system_us;
  }
  return std::chrono::duration<double>(last_done - run.schedule_start()).count();
}

// ---- appends ----

// Appends of `batch` events. Expected version ANY: each append picks a stream (random, or
// ticket mod streams with --sequential-keys). Exact: client c owns streams c, c + clients,
// ... and tracks each one's version (NO_STREAM first, then EXACT), so clients never race.
class AppendWorkload final : public EventsWorkload {
 public:
  AppendWorkload(const Options& options, const WorkloadOptions& workload, std::string prefix,
                 bool stamp, int series, std::atomic<uint64_t>* events_appended)
      : options_(options),
        prefix_(std::move(prefix)),
        streams_(static_cast<uint64_t>(workload.event_streams)),
        batch_(workload.event_batch),
        exact_(workload.event_expected == "exact"),
        stamp_(stamp),
        series_(series),
        value_(RandomBytes(options.val_size, options.seed)),
        events_appended_(events_appended),
        versions_(options.clients) {
    for (int c = 0; c < options.clients; ++c) versions_[c].assign(OwnedStreams(c), -1);
  }

  void Prepare(uint64_t ticket, int client, Poller& poller, EventsCall& call) override {
    call.read = false;
    call.stamp = stamp_;
    call.series = series_;
    const uint64_t pick = options_.sequential_keys ? ticket : poller.rng()();
    if (exact_) {
      const auto& owned = versions_[client];
      const uint64_t local = pick % owned.size();
      call.stream_index = local * options_.clients + client;
      call.append.set_expected_kind(owned[local] < 0 ? ev::NO_STREAM : ev::EXACT);
      call.append.set_expected_version(owned[local] < 0 ? 0 : owned[local]);
    } else {
      call.stream_index = pick % streams_;
      call.append.set_expected_kind(ev::ANY);
    }
    call.append.set_stream(prefix_ + std::to_string(call.stream_index));
    while (call.append.events_size() < batch_) {
      ev::NewEvent* event = call.append.add_events();
      event->set_type("BenchEvent");
      event->set_data(value_);
    }
    for (auto& event : *call.append.mutable_events()) RandomUuid(poller.rng(), event.mutable_id());
  }

  void OnDone(int client, const grpc::Status& status, int64_t latency_ns, Poller& poller,
              EventsCall& call) override {
    Stats& stats = poller.stats();
    if (!status.ok()) return stats.RecordError(series_, status);
    const ev::AppendResponse& response = call.append_response;
    int64_t* version = exact_ ? &versions_[client][call.stream_index / options_.clients] : nullptr;
    if (response.has_wrong_expected_version()) {
      const auto& wrong = response.wrong_expected_version();
      stats.RecordError(series_, grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                                              "wrong expected version on " + call.append.stream()));
      if (version != nullptr) *version = wrong.stream_exists() ? wrong.current_version() : -1;
      return;
    }
    stats.latency_ns[series_].Record(static_cast<uint64_t>(latency_ns));
    if (version != nullptr) *version = static_cast<int64_t>(response.success().current_version());
    if (events_appended_ != nullptr) events_appended_->fetch_add(batch_, std::memory_order_relaxed);
  }

  // REQUIRES (exact): streams >= clients, so that every client owns a stream.
  size_t OwnedStreams(int client) const {
    if (!exact_) return 0;
    return (streams_ - client + options_.clients - 1) / options_.clients;
  }

 private:
  const Options& options_;
  std::string prefix_;
  uint64_t streams_;
  int batch_;
  bool exact_;
  bool stamp_;
  int series_;
  std::string value_;
  std::atomic<uint64_t>* events_appended_;
  std::vector<std::vector<int64_t>> versions_;  // [client][stream / clients]; -1 = no stream
};

// events-read's setup: stream s gets stream_length events, in appends of up to `batch`;
// ticket t writes chunk t % chunks of stream t / chunks.
class FillWorkload final : public EventsWorkload {
 public:
  FillWorkload(const Options& options, const WorkloadOptions& workload, std::string prefix,
               int series)
      : prefix_(std::move(prefix)),
        length_(workload.event_stream_length),
        batch_(workload.event_batch),
        chunks_((length_ + batch_ - 1) / batch_),
        series_(series),
        value_(RandomBytes(options.val_size, options.seed)) {}

  int64_t appends_total(int64_t streams) const { return streams * chunks_; }

  void Prepare(uint64_t ticket, int client, Poller& poller, EventsCall& call) override {
    call.read = false;
    call.stamp = false;
    call.series = series_;
    call.stream_index = ticket / chunks_;
    const int64_t chunk = static_cast<int64_t>(ticket % chunks_);
    const int events = static_cast<int>(std::min<int64_t>(batch_, length_ - chunk * batch_));
    call.append.set_stream(prefix_ + std::to_string(call.stream_index));
    call.append.set_expected_kind(ev::ANY);
    call.append.clear_events();
    for (int i = 0; i < events; ++i) {
      ev::NewEvent* event = call.append.add_events();
      event->set_type("BenchEvent");
      event->set_data(value_);
      RandomUuid(poller.rng(), event->mutable_id());
    }
  }

  void OnDone(int client, const grpc::Status& status, int64_t latency_ns, Poller& poller,
              EventsCall& call) override {
    if (!status.ok()) return poller.stats().RecordError(series_, status);
    poller.stats().latency_ns[series_].Record(static_cast<uint64_t>(latency_ns));
  }

 private:
  std::string prefix_;
  int64_t length_;
  int64_t batch_;
  int64_t chunks_;
  int series_;
  std::string value_;
};

// events-read: ReadStream of one page (--count events) at a random page of a random stream.
class ReadWorkload final : public EventsWorkload {
 public:
  ReadWorkload(const Options& options, const WorkloadOptions& workload, std::string prefix)
      : options_(options),
        prefix_(std::move(prefix)),
        streams_(static_cast<uint64_t>(workload.event_streams)),
        count_(workload.event_read_count),
        pages_((workload.event_stream_length + count_ - 1) / count_) {}

  void Prepare(uint64_t ticket, int client, Poller& poller, EventsCall& call) override {
    call.read = true;
    call.series = 0;
    call.stream_index = options_.sequential_keys ? ticket % streams_ : poller.rng()() % streams_;
    call.read_request.set_stream(prefix_ + std::to_string(call.stream_index));
    call.read_request.set_from_version(poller.rng()() % pages_ * count_);
    call.read_request.set_count(count_);
  }

  void OnDone(int client, const grpc::Status& status, int64_t latency_ns, Poller& poller,
              EventsCall& call) override {
    if (!status.ok()) return poller.stats().RecordError(0, status);
    poller.stats().latency_ns[0].Record(static_cast<uint64_t>(latency_ns));
    poller.stats().keys_returned += call.read_response.events_size();
  }

 private:
  const Options& options_;
  std::string prefix_;
  uint64_t streams_;
  uint64_t count_;
  uint64_t pages_;
};

// ---- subscriptions ----

struct SubscribeShared {
  std::atomic<int> caught_up{0};
  std::atomic<uint64_t> events_received{0};
  ActorGroup streams;
  std::atomic<bool> cancelling{false};
};

// One Subscribe($all, from end, filtered to this run's streams) with one read in flight;
// every event gives a latency sample: receipt time minus the send time stamped in its data.
class SubscriptionStream final : public Actor {
 public:
  SubscriptionStream(SubscribeShared* shared, std::shared_ptr<grpc::Channel> channel,
                     Poller* poller, const std::string& prefix, int series)
      : shared_(shared), stub_(ev::Events::NewStub(channel)), poller_(poller), series_(series) {
    request_.set_all(true);
    request_.set_from_end(true);
    request_.mutable_filter()->add_stream_prefixes(prefix);
  }

  void Kick() { alarm_.Set(poller_->cq(), gpr_now(GPR_CLOCK_MONOTONIC), &kick_tag_); }
  void Cancel() { context_.TryCancel(); }

  void OnEvent(int event, bool ok) override {
    switch (event) {
      case kKick:
        reader_ = stub_->PrepareAsyncSubscribe(&context_, request_, poller_->cq());
        reader_->StartCall(&started_tag_);
        return;
      case kStarted:
      case kRead:
        if (!ok) return reader_->Finish(&status_, &finished_tag_);
        if (event == kRead) OnResponse();
        reader_->Read(&response_, &read_tag_);
        return;
      case kFinished:
        if (!status_.ok() && !shared_->cancelling.load()) {
          poller_->stats().RecordError(series_, status_);
        }
        shared_->streams.Done();
        return;
    }
  }

 private:
  enum Event { kKick, kStarted, kRead, kFinished };

  void OnResponse() {
    const int64_t now_ns = NowNs();
    if (response_.has_caught_up()) shared_->caught_up.fetch_add(1);
    if (!response_.has_event()) return;
    Stats& stats = poller_->stats();
    ++stats.events_received;
    shared_->events_received.fetch_add(1, std::memory_order_relaxed);
    const std::string& data = response_.event().data();
    int64_t sent_ns = 0;
    if (data.size() < kStampSizeBytes) return;
    std::memcpy(&sent_ns, data.data(), kStampSizeBytes);
    if (sent_ns > 0 && sent_ns <= now_ns) {
      stats.latency_ns[series_].Record(static_cast<uint64_t>(now_ns - sent_ns));
    }
  }

  SubscribeShared* shared_;
  std::unique_ptr<ev::Events::Stub> stub_;
  Poller* poller_;
  int series_;
  Tag kick_tag_{this, kKick};
  Tag started_tag_{this, kStarted};
  Tag read_tag_{this, kRead};
  Tag finished_tag_{this, kFinished};
  grpc::Alarm alarm_;
  grpc::ClientContext context_;
  ev::SubscribeRequest request_;
  ev::SubscribeResponse response_;
  std::unique_ptr<grpc::ClientAsyncReader<ev::SubscribeResponse>> reader_;
  grpc::Status status_;
};

// ---- the workloads ----

std::string StreamPrefix(const Options& options, const WorkloadOptions& workload) {
  if (!workload.event_stream_prefix.empty()) return workload.event_stream_prefix;
  std::mt19937_64 rng(std::random_device{}() ^ options.seed);
  static const char kDigits[] = "0123456789abcdef";
  std::string prefix = "bench-";
  for (int i = 0; i < 8; ++i) prefix += kDigits[rng() & 0xf];
  return prefix + "-";
}

bool RunAppend(Run& run, const WorkloadOptions& workload, const std::string& prefix,
               Report* report) {
  const Options& options = run.options();
  report->series = {"append"};
  AppendWorkload appends(options, workload, prefix, false, 0, nullptr);
  report->duration_s =
      RunEventsSlots(run, appends, options.total, options.duration_s, options.rate, report);
  return true;
}

bool RunRead(Run& run, const WorkloadOptions& workload, const std::string& prefix, Report* report) {
  const Options& options = run.options();
  report->series = {"read", "fill"};
  report->primary = 0;
  FillWorkload fill(options, workload, prefix, 1);
  report->series_duration_s[1] =
      RunEventsSlots(run, fill, fill.appends_total(workload.event_streams), 0, 0, nullptr);
  ReadWorkload reads(options, workload, prefix);
  report->duration_s =
      RunEventsSlots(run, reads, options.total, options.duration_s, options.rate, report);
  return true;
}

bool RunSubscribeLatency(Run& run, const WorkloadOptions& workload, const std::string& prefix,
                         Report* report, std::string* error) {
  const Options& options = run.options();
  report->series = {"append", "event"};
  report->primary = 1;
  SubscribeShared shared;
  std::vector<std::unique_ptr<SubscriptionStream>> subscriptions;
  for (int i = 0; i < workload.event_subscriptions; ++i) {
    subscriptions.push_back(std::make_unique<SubscriptionStream>(
        &shared, run.channel(i % run.conn_count()), run.poller(i), prefix, 1));
  }
  shared.streams.Add(workload.event_subscriptions);
  const auto setup_start = SteadyClock::now();
  for (auto& subscription : subscriptions) subscription->Kick();
  while (shared.caught_up.load() < workload.event_subscriptions &&
         SteadyClock::now() - setup_start < kCaughtUpWait) {
    if (shared.streams.WaitFor(std::chrono::milliseconds(10))) break;  // every stream ended
  }
  const int caught_up = shared.caught_up.load();
  report->extra["subscriptions_caught_up"] = caught_up;
  bool ok = caught_up == workload.event_subscriptions;
  if (!ok) {
    *error = "only " + std::to_string(caught_up) + " of " +
             std::to_string(workload.event_subscriptions) + " subscriptions reported caught_up";
  } else {
    std::atomic<uint64_t> events_appended{0};
    AppendWorkload appends(options, workload, prefix, true, 0, &events_appended);
    report->duration_s =
        RunEventsSlots(run, appends, options.total, options.duration_s, options.rate, report);
    const uint64_t expected = events_appended.load() * workload.event_subscriptions;
    const auto wait_start = SteadyClock::now();
    while (shared.events_received.load() < expected &&
           SteadyClock::now() - wait_start < std::chrono::duration<double>(workload.event_wait_s)) {
      if (shared.streams.WaitFor(std::chrono::milliseconds(10))) break;
    }
    report->extra["events_expected"] = expected;
    report->extra["events_received"] = shared.events_received.load();
  }
  shared.cancelling.store(true);
  for (auto& subscription : subscriptions) subscription->Cancel();
  shared.streams.Wait();
  return ok;
}

std::optional<std::string> CheckOptions(const Options& options, const WorkloadOptions& workload,
                                        const std::string& name) {
  if (workload.event_batch < 1 || workload.event_batch > kBatchMax) {
    return "--batch must be in [1, " + std::to_string(kBatchMax) + "]";
  }
  if (workload.event_streams < 1) return "--streams must be >= 1";
  if (workload.event_expected != "any" && workload.event_expected != "exact") {
    return "--expected must be any or exact";
  }
  if (workload.event_expected == "exact" && workload.event_streams < options.clients) {
    return "--expected exact needs --streams >= --clients (each client owns its streams)";
  }
  if (workload.event_read_count < 1 || workload.event_read_count > kReadCountMax) {
    return "--count must be in [1, " + std::to_string(kReadCountMax) + "]";
  }
  if (workload.event_stream_length < 1) return "--stream-length must be >= 1";
  if (name == "events-subscribe-latency" && options.val_size < static_cast<int>(kStampSizeBytes)) {
    return "events-subscribe-latency needs --val-size >= 8 (the data carries the send time)";
  }
  if (workload.event_subscriptions < 1) return "--subscriptions must be >= 1";
  return std::nullopt;
}

}  // namespace

bool IsEventsWorkload(const std::string& name) {
  return name == "events-append" || name == "events-read" || name == "events-subscribe-latency";
}

bool RunEventsWorkload(const std::string& name, Run& run, const WorkloadOptions& workload,
                       Report* report, std::string* error) {
  CAIRN_CHECK(IsEventsWorkload(name));
  if (auto problem = CheckOptions(run.options(), workload, name)) {
    *error = *problem;
    return false;
  }
  const std::string prefix = StreamPrefix(run.options(), workload);
  report->extra["stream_prefix"] = prefix;
  bool ok = true;
  if (name == "events-append") {
    ok = RunAppend(run, workload, prefix, report);
  } else if (name == "events-read") {
    ok = RunRead(run, workload, prefix, report);
  } else {
    ok = RunSubscribeLatency(run, workload, prefix, report, error);
  }
  return ok;
}

void FinishEventsReport(const std::string& name, const WorkloadOptions& workload, Report* report) {
  const Stats& stats = report->stats;
  const double duration_s = report->duration_s;
  auto per_s = [duration_s](uint64_t count) { return duration_s > 0 ? count / duration_s : 0.0; };
  if (name == "events-read") {
    report->extra["reads"] = stats.latency_ns[0].count();
    report->extra["events_read"] = stats.keys_returned;
    report->extra["reads_per_s"] = per_s(stats.latency_ns[0].count());
    report->extra["events_per_s"] = per_s(stats.keys_returned);
    return;
  }
  // Every successful append wrote exactly --batch events.
  const uint64_t appends = stats.latency_ns[0].count();
  report->extra["appends"] = appends;
  report->extra["events_appended"] = appends * workload.event_batch;
  report->extra["appends_per_s"] = per_s(appends);
  report->extra["events_per_s"] = per_s(appends * workload.event_batch);
}

}  // namespace cairn::bench
