#include "tools/cairn-bench/workloads.h"

#include <grpc/support/time.h>
#include <grpcpp/alarm.h>

#include <cstring>
#include <deque>

#include "src/base/check.h"
#include "tools/cairn-bench/events_workloads.h"

namespace cairn::bench {
namespace {

using etcdserverpb::PutRequest;
using etcdserverpb::PutResponse;
using etcdserverpb::RangeRequest;
using etcdserverpb::RangeResponse;
using etcdserverpb::TxnRequest;
using etcdserverpb::TxnResponse;

gpr_timespec ToGprDeadline(SteadyClock::time_point due) {
  const int64_t delta_ns = std::max<int64_t>(
      0, std::chrono::duration_cast<std::chrono::nanoseconds>(due - SteadyClock::now()).count());
  return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_nanos(delta_ns, GPR_TIMESPAN));
}

// etcd's GetPrefixRangeEnd: the smallest key greater than every key with this prefix.
std::string PrefixEnd(const std::string& prefix) {
  std::string end = prefix;
  while (!end.empty()) {
    if (static_cast<unsigned char>(end.back()) < 0xff) {
      end.back() = static_cast<char>(static_cast<unsigned char>(end.back()) + 1);
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');  // every key
}

std::string RandomValue(int size, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string value(size, '\0');
  for (char& c : value) c = static_cast<char>('a' + rng() % 26);
  return value;
}

// The requests and responses of one slot, reused from request to request.
enum class Rpc { kPut, kRange, kTxn };
struct UnaryCall {
  Rpc rpc = Rpc::kPut;
  int series = 0;
  uint64_t key_index = 0;    // for put: which key (watch counts the events it causes)
  bool stamp_value = false;  // put: first 8 bytes of the value = send time (NowNs)
  PutRequest put;
  PutResponse put_response;
  RangeRequest range;
  RangeResponse range_response;
  TxnRequest txn;
  TxnResponse txn_response;
};

// Decides each request of a unary workload. Prepare runs on the slot's polling thread.
class UnaryWorkload {
 public:
  virtual ~UnaryWorkload() = default;
  virtual void Prepare(uint64_t ticket, Poller& poller, UnaryCall& call) = 0;
  virtual void OnSuccess(const UnaryCall& call, Poller& poller) {}
};

// One in-flight request at a time: take a ticket, wait for its due time, send, record.
class UnarySlot final : public Actor {
 public:
  UnarySlot(Run* run, UnaryWorkload* workload, int conn, Poller* poller)
      : run_(run), workload_(workload), stub_(run->kv(conn)), poller_(poller) {}

  // Called from any thread: the slot starts on its poller's thread.
  void Kick() { alarm_.Set(poller_->cq(), gpr_now(GPR_CLOCK_MONOTONIC), &kick_tag_); }

  void OnEvent(int event, bool ok) override {
    if (event == kDone) Record();
    if (event == kDue) {
      Send();
      return;
    }
    Next();
  }

 private:
  enum Event { kKick, kDue, kDone };

  void Next() {
    auto ticket = run_->TakeTicket();
    if (!ticket) {
      run_->slots().Done();
      return;
    }
    workload_->Prepare(ticket->number, *poller_, call_);
    if (ticket->due > SteadyClock::now()) {
      alarm_.Set(poller_->cq(), ToGprDeadline(ticket->due), &due_tag_);
      return;
    }
    Send();
  }

  void Send() {
    context_ = std::make_unique<grpc::ClientContext>();
    start_ns_ = NowNs();
    auto* cq = poller_->cq();
    switch (call_.rpc) {
      case Rpc::kPut:
        if (call_.stamp_value) {
          CAIRN_CHECK(call_.put.value().size() >= sizeof(start_ns_));
          std::memcpy(call_.put.mutable_value()->data(), &start_ns_, sizeof(start_ns_));
        }
        put_reader_ = stub_->PrepareAsyncPut(context_.get(), call_.put, cq);
        put_reader_->StartCall();
        put_reader_->Finish(&call_.put_response, &status_, &done_tag_);
        break;
      case Rpc::kRange:
        range_reader_ = stub_->PrepareAsyncRange(context_.get(), call_.range, cq);
        range_reader_->StartCall();
        range_reader_->Finish(&call_.range_response, &status_, &done_tag_);
        break;
      case Rpc::kTxn:
        txn_reader_ = stub_->PrepareAsyncTxn(context_.get(), call_.txn, cq);
        txn_reader_->StartCall();
        txn_reader_->Finish(&call_.txn_response, &status_, &done_tag_);
        break;
    }
  }

  void Record() {
    const int64_t latency_ns = NowNs() - start_ns_;
    Stats& stats = poller_->stats();
    if (!status_.ok()) {
      stats.RecordError(call_.series, status_);
      return;
    }
    stats.latency_ns[call_.series].Record(static_cast<uint64_t>(latency_ns));
    if (call_.rpc == Rpc::kRange) stats.keys_returned += call_.range_response.kvs_size();
    if (call_.rpc == Rpc::kTxn) {
      for (const auto& response : call_.txn_response.responses()) {
        if (response.has_response_range())
          stats.keys_returned += response.response_range().kvs_size();
      }
    }
    workload_->OnSuccess(call_, *poller_);
  }

  Run* run_;
  UnaryWorkload* workload_;
  etcdserverpb::KV::Stub* stub_;
  Poller* poller_;
  Tag kick_tag_{this, kKick};
  Tag due_tag_{this, kDue};
  Tag done_tag_{this, kDone};
  grpc::Alarm alarm_;
  std::unique_ptr<grpc::ClientContext> context_;
  grpc::Status status_;
  int64_t start_ns_ = 0;
  UnaryCall call_;
  std::unique_ptr<grpc::ClientAsyncResponseReader<PutResponse>> put_reader_;
  std::unique_ptr<grpc::ClientAsyncResponseReader<RangeResponse>> range_reader_;
  std::unique_ptr<grpc::ClientAsyncResponseReader<TxnResponse>> txn_reader_;
};

// Chooses key indexes: sequential by ticket, or uniformly random in the key space.
class KeyChooser {
 public:
  KeyChooser(const Options& options) : options_(options) {}
  uint64_t Choose(uint64_t ticket, Poller& poller) const {
    const uint64_t space = static_cast<uint64_t>(options_.key_space_size);
    return options_.sequential_keys ? ticket % space : poller.rng()() % space;
  }

 private:
  const Options& options_;
};

class PutWorkload : public UnaryWorkload {
 public:
  PutWorkload(const Options& options, bool stamp_values)
      : options_(options),
        codec_(options.key_size, options.key_space_size),
        chooser_(options),
        value_(RandomValue(options.val_size, options.seed)),
        stamp_values_(stamp_values) {}

  void Prepare(uint64_t ticket, Poller& poller, UnaryCall& call) override {
    call.rpc = Rpc::kPut;
    call.series = 0;
    call.key_index = chooser_.Choose(ticket, poller);
    call.stamp_value = stamp_values_;
    codec_.Encode(call.key_index, call.put.mutable_key());
    if (call.put.value().size() != value_.size()) call.put.set_value(value_);
  }

 protected:
  const Options& options_;
  KeyCodec codec_;
  KeyChooser chooser_;
  std::string value_;
  bool stamp_values_;
};

// Fills a RangeRequest from the read flags (shared by range and txn-mixed).
class ReadMaker {
 public:
  ReadMaker(const Options& options, const WorkloadOptions& workload)
      : workload_(workload), codec_(options.key_size, options.key_space_size), chooser_(options) {}

  void Fill(uint64_t ticket, Poller& poller, RangeRequest* range) const {
    if (workload_.key.empty() && !workload_.prefix) {
      codec_.Encode(chooser_.Choose(ticket, poller), range->mutable_key());
    } else if (workload_.key.empty()) {
      range->set_key(std::string(1, '\0'));
      range->set_range_end(std::string(1, '\0'));
    } else {
      range->set_key(workload_.key);
      if (workload_.prefix) range->set_range_end(PrefixEnd(workload_.key));
    }
    range->set_limit(workload_.limit);
    range->set_serializable(workload_.consistency == "s");
    range->set_count_only(workload_.count_only);
  }

 private:
  const WorkloadOptions& workload_;
  KeyCodec codec_;
  KeyChooser chooser_;
};

class RangeWorkload : public UnaryWorkload {
 public:
  RangeWorkload(const Options& options, const WorkloadOptions& workload)
      : reads_(options, workload) {}
  void Prepare(uint64_t ticket, Poller& poller, UnaryCall& call) override {
    call.rpc = Rpc::kRange;
    call.series = 0;
    reads_.Fill(ticket, poller, &call.range);
  }

 private:
  ReadMaker reads_;
};

// etcd's txn-put: txn_ops puts in the success branch, no compares; the keys of one txn are
// consecutive indexes (distinct while txn_ops <= key space), starting at a random or
// sequential index.
class TxnPutWorkload : public PutWorkload {
 public:
  TxnPutWorkload(const Options& options, const WorkloadOptions& workload)
      : PutWorkload(options, false), txn_ops_(workload.txn_ops) {}

  void Prepare(uint64_t ticket, Poller& poller, UnaryCall& call) override {
    call.rpc = Rpc::kTxn;
    call.series = 0;
    const uint64_t space = static_cast<uint64_t>(options_.key_space_size);
    const uint64_t first =
        options_.sequential_keys ? ticket * txn_ops_ % space : poller.rng()() % space;
    if (call.txn.success_size() != txn_ops_) {
      call.txn.clear_success();
      for (int i = 0; i < txn_ops_; ++i) call.txn.add_success()->mutable_request_put();
    }
    for (int i = 0; i < txn_ops_; ++i) {
      PutRequest* put = call.txn.mutable_success(i)->mutable_request_put();
      codec_.Encode((first + i) % space, put->mutable_key());
      if (put->value().size() != value_.size()) put->set_value(value_);
    }
  }

 private:
  int txn_ops_;
};

// etcd's txn-mixed: every request is a Txn with one op; a read (Range of the read flags) with
// probability rw_ratio / (1 + rw_ratio), else a put of a random key. Series: read, write.
class TxnMixedWorkload : public PutWorkload {
 public:
  TxnMixedWorkload(const Options& options, const WorkloadOptions& workload)
      : PutWorkload(options, false),
        reads_(options, workload),
        read_probability_(workload.rw_ratio / (1 + workload.rw_ratio)) {}

  void Prepare(uint64_t ticket, Poller& poller, UnaryCall& call) override {
    call.rpc = Rpc::kTxn;
    call.txn.clear_success();
    const bool read =
        std::uniform_real_distribution<double>(0, 1)(poller.rng()) < read_probability_;
    call.series = read ? 0 : 1;
    if (read) {
      reads_.Fill(ticket, poller, call.txn.add_success()->mutable_request_range());
      return;
    }
    PutRequest* put = call.txn.add_success()->mutable_request_put();
    codec_.Encode(chooser_.Choose(ticket, poller), put->mutable_key());
    put->set_value(value_);
  }

 private:
  ReadMaker reads_;
  double read_probability_;
};

// Starts the schedule and every slot, waits until the schedule ended and every slot is idle,
// and reports the measured duration and this process's CPU time over it.
template <typename Slot>
void KickAndMeasure(Run& run, const std::vector<std::unique_ptr<Slot>>& slots, Report* report) {
  const Options& options = run.options();
  run.slots().Add(static_cast<int>(slots.size()));
  const CpuTimes cpu_before = ProcessCpuTimes();
  run.BeginSchedule(options.total, options.duration_s, options.rate);
  for (auto& slot : slots) slot->Kick();
  const auto last_done = run.slots().Wait();
  const CpuTimes cpu_after = ProcessCpuTimes();
  report->duration_s = std::chrono::duration<double>(last_done - run.schedule_start()).count();
  report->cpu.user_us = cpu_after.user_us - cpu_before.user_us;
  report->cpu.system_us = cpu_after.system_us - cpu_before.system_us;
}

// Runs `clients` slots of a unary workload over the conns until the schedule ends.
void RunSlots(Run& run, UnaryWorkload& workload, Report* report) {
  const Options& options = run.options();
  std::vector<std::unique_ptr<UnarySlot>> slots;
  for (int i = 0; i < options.clients; ++i) {
    slots.push_back(
        std::make_unique<UnarySlot>(&run, &workload, i % run.conn_count(), run.poller(i)));
  }
  KickAndMeasure(run, slots, report);
}

// ---- watch, watch-latency ----

// State the watch streams share with the main thread.
struct WatchShared {
  std::atomic<int64_t> created{0};
  std::atomic<uint64_t> events_received{0};
  std::atomic<uint64_t> events_expected{0};
  ActorGroup streams;
  std::atomic<bool> cancelling{false};
};

// One Watch stream: creates its watchers back to back (one write in flight), keeps one read
// in flight, records creation latency (series 0) and event latency (series 2: now minus the
// send time the put stamped into the value).
class WatchStream final : public Actor {
 public:
  static constexpr int kCreateSeries = 0;
  static constexpr int kEventSeries = 2;

  WatchStream(WatchShared* shared, std::shared_ptr<grpc::Channel> channel, Poller* poller,
              std::vector<std::string> keys)
      : shared_(shared),
        stub_(etcdserverpb::Watch::NewStub(channel)),
        poller_(poller),
        keys_(std::move(keys)) {}

  void Kick() { alarm_.Set(poller_->cq(), gpr_now(GPR_CLOCK_MONOTONIC), &kick_tag_); }
  void Cancel() { context_.TryCancel(); }

  void OnEvent(int event, bool ok) override {
    switch (event) {
      case kKick:
        stream_ = stub_->PrepareAsyncWatch(&context_, poller_->cq());
        stream_->StartCall(&started_tag_);
        return;
      case kStarted:
        if (!ok) return EndStream();
        stream_->Read(&response_, &read_tag_);
        return WriteNextCreate();
      case kWritten:
        write_pending_ = false;
        if (ok && !finished_) WriteNextCreate();
        return MaybeDone();
      case kRead:
        if (!ok) return EndStream();
        OnResponse();
        stream_->Read(&response_, &read_tag_);
        return;
      case kFinished:
        if (!status_.ok() && !shared_->cancelling.load())
          poller_->stats().RecordError(kCreateSeries, status_);
        finished_ = true;
        return MaybeDone();
    }
  }

 private:
  enum Event { kKick, kStarted, kWritten, kRead, kFinished };

  void WriteNextCreate() {
    if (next_create_ >= keys_.size()) return;
    request_.mutable_create_request()->set_key(keys_[next_create_++]);
    create_start_ns_.push_back(NowNs());
    write_pending_ = true;
    stream_->Write(request_, &written_tag_);
  }

  // The stream is done once it is finished and no write completion is still to come (the
  // owner may destroy it after Done).
  void MaybeDone() {
    if (finished_ && !write_pending_ && !done_) {
      done_ = true;
      shared_->streams.Done();
    }
  }

  void OnResponse() {
    const int64_t now_ns = NowNs();
    Stats& stats = poller_->stats();
    if (response_.created() && !create_start_ns_.empty()) {
      stats.latency_ns[kCreateSeries].Record(now_ns - create_start_ns_.front());
      create_start_ns_.pop_front();
      shared_->created.fetch_add(1);
    }
    if (response_.canceled() && !shared_->cancelling.load()) {
      stats.RecordError(kCreateSeries,
                        grpc::Status(grpc::StatusCode::CANCELLED,
                                     "watch canceled: " + response_.cancel_reason()));
    }
    stats.events_received += response_.events_size();
    shared_->events_received.fetch_add(response_.events_size(), std::memory_order_relaxed);
    for (const auto& event : response_.events()) {
      int64_t sent_ns = 0;
      if (event.kv().value().size() < sizeof(sent_ns)) continue;
      std::memcpy(&sent_ns, event.kv().value().data(), sizeof(sent_ns));
      if (sent_ns > 0 && sent_ns <= now_ns) stats.latency_ns[kEventSeries].Record(now_ns - sent_ns);
    }
  }

  void EndStream() { stream_->Finish(&status_, &finished_tag_); }

  WatchShared* shared_;
  std::unique_ptr<etcdserverpb::Watch::Stub> stub_;
  Poller* poller_;
  std::vector<std::string> keys_;
  size_t next_create_ = 0;
  bool write_pending_ = false;
  bool finished_ = false;
  bool done_ = false;
  std::deque<int64_t> create_start_ns_;
  Tag kick_tag_{this, kKick};
  Tag started_tag_{this, kStarted};
  Tag written_tag_{this, kWritten};
  Tag read_tag_{this, kRead};
  Tag finished_tag_{this, kFinished};
  grpc::Alarm alarm_;
  grpc::ClientContext context_;
  std::unique_ptr<
      grpc::ClientAsyncReaderWriter<etcdserverpb::WatchRequest, etcdserverpb::WatchResponse>>
      stream_;
  etcdserverpb::WatchRequest request_;
  etcdserverpb::WatchResponse response_;
  grpc::Status status_;
};

// The put phase of watch: stamped values; each successful put expects one event per
// watcher of its key.
class WatchPutWorkload final : public PutWorkload {
 public:
  WatchPutWorkload(const Options& options, int64_t watchers_total, WatchShared* shared)
      : PutWorkload(options, true), watchers_total_(watchers_total), shared_(shared) {}

  void Prepare(uint64_t ticket, Poller& poller, UnaryCall& call) override {
    PutWorkload::Prepare(ticket, poller, call);
    call.series = 1;
  }
  void OnSuccess(const UnaryCall& call, Poller& poller) override {
    const uint64_t space = static_cast<uint64_t>(options_.key_space_size);
    const uint64_t total = static_cast<uint64_t>(watchers_total_);
    const uint64_t expected = total / space + (call.key_index < total % space ? 1 : 0);
    poller.stats().events_expected += expected;
    shared_->events_expected.fetch_add(expected, std::memory_order_relaxed);
  }

 private:
  int64_t watchers_total_;
  WatchShared* shared_;
};

// watch: streams x watchers_per_stream watchers, watcher g on key g % key space; then the
// put phase (the global --total/--duration/--rate/--clients) on random or sequential keys.
// watch-latency is the same with every watcher on one key (key space 1).
bool RunWatch(Run& run, const WorkloadOptions& workload, Report* report, std::string* error) {
  const Options& options = run.options();
  const int64_t watchers_total = int64_t{workload.streams} * workload.watchers_per_stream;
  report->series = {"create", "put", "event"};
  report->primary = WatchStream::kEventSeries;
  if (options.val_size < 8) {
    *error = "watch needs --val-size >= 8 (the value carries the send time)";
    return false;
  }
  KeyCodec codec(options.key_size, options.key_space_size);
  WatchShared shared;
  std::vector<std::unique_ptr<WatchStream>> streams;
  int64_t watcher = 0;
  for (int s = 0; s < workload.streams; ++s) {
    std::vector<std::string> keys(workload.watchers_per_stream);
    for (auto& key : keys) codec.Encode(watcher++ % options.key_space_size, &key);
    streams.push_back(std::make_unique<WatchStream>(&shared, run.channel(s % run.conn_count()),
                                                    run.poller(s), std::move(keys)));
  }
  const int64_t rss_before = options.server_pid ? ProcStatusBytes(options.server_pid, "VmRSS") : -1;
  shared.streams.Add(workload.streams);
  const auto setup_start = SteadyClock::now();
  for (auto& stream : streams) stream->Kick();
  while (shared.created.load() < watchers_total) {
    if (shared.streams.WaitFor(std::chrono::milliseconds(10))) break;  // every stream ended
    if (SteadyClock::now() - setup_start > std::chrono::seconds(300)) break;
  }
  const double setup_s = std::chrono::duration<double>(SteadyClock::now() - setup_start).count();
  const int64_t created = shared.created.load();
  const int64_t rss_after = options.server_pid ? ProcStatusBytes(options.server_pid, "VmRSS") : -1;
  report->extra["watchers"] = watchers_total;
  report->extra["watchers_created"] = created;
  report->extra["watch_setup_s"] = setup_s;
  report->series_duration_s[WatchStream::kCreateSeries] = setup_s;
  if (rss_before > 0 && rss_after > 0 && created > 0) {
    report->extra["server_rss_before_watchers_bytes"] = rss_before;
    report->extra["server_rss_after_watchers_bytes"] = rss_after;
    report->extra["server_bytes_per_watcher"] =
        static_cast<double>(rss_after - rss_before) / static_cast<double>(created);
  }
  bool ok = created == watchers_total;
  if (!ok)
    *error = "only " + std::to_string(created) + " of " + std::to_string(watchers_total) +
             " watchers were created";
  if (ok) {
    WatchPutWorkload puts(options, watchers_total, &shared);
    RunSlots(run, puts, report);
    // Wait (at most event_wait_s) for the events still in flight after the last put.
    const auto wait_start = SteadyClock::now();
    while (shared.events_received.load() < shared.events_expected.load() &&
           SteadyClock::now() - wait_start < std::chrono::duration<double>(workload.event_wait_s)) {
      if (shared.streams.WaitFor(std::chrono::milliseconds(10))) break;  // every stream ended
    }
    report->extra["events_expected"] = shared.events_expected.load();
    report->extra["events_received"] = shared.events_received.load();
  }
  shared.cancelling.store(true);
  for (auto& stream : streams) stream->Cancel();
  shared.streams.Wait();
  return ok;
}

// ---- lease-keepalive ----

// One LeaseKeepAlive stream on its own lease: write a keepalive, read the answer, repeat.
// (etcd's tool calls KeepAliveOnce, a new stream per request; real clients keep one stream,
// which is what this measures.)
class KeepAliveSlot final : public Actor {
 public:
  KeepAliveSlot(Run* run, std::shared_ptr<grpc::Channel> channel, Poller* poller, int64_t lease)
      : run_(run), stub_(etcdserverpb::Lease::NewStub(channel)), poller_(poller), lease_(lease) {}

  void Kick() { alarm_.Set(poller_->cq(), gpr_now(GPR_CLOCK_MONOTONIC), &kick_tag_); }

  void OnEvent(int event, bool ok) override {
    switch (event) {
      case kKick:
        stream_ = stub_->PrepareAsyncLeaseKeepAlive(&context_, poller_->cq());
        stream_->StartCall(&started_tag_);
        return;
      case kStarted:
        if (!ok) return stream_->Finish(&status_, &finished_tag_);
        return Next();
      case kDue:
        return Send();
      case kWritten:
        if (!ok) return stream_->Finish(&status_, &finished_tag_);
        stream_->Read(&response_, &read_tag_);
        return;
      case kRead:
        if (!ok) return stream_->Finish(&status_, &finished_tag_);
        if (response_.ttl() > 0) {
          poller_->stats().latency_ns[0].Record(NowNs() - start_ns_);
        } else {
          poller_->stats().RecordError(
              0, grpc::Status(grpc::StatusCode::NOT_FOUND, "keepalive answered TTL <= 0"));
        }
        return Next();
      case kWritesDone:
        return stream_->Finish(&status_, &finished_tag_);
      case kFinished:
        if (!status_.ok()) poller_->stats().RecordError(0, status_);
        run_->slots().Done();
        return;
    }
  }

 private:
  enum Event { kKick, kStarted, kDue, kWritten, kRead, kWritesDone, kFinished };

  void Next() {
    auto ticket = run_->TakeTicket();
    if (!ticket) return stream_->WritesDone(&writes_done_tag_);
    if (ticket->due > SteadyClock::now()) {
      alarm_.Set(poller_->cq(), ToGprDeadline(ticket->due), &due_tag_);
      return;
    }
    Send();
  }

  void Send() {
    request_.set_id(lease_);
    start_ns_ = NowNs();
    stream_->Write(request_, &written_tag_);
  }

  Run* run_;
  std::unique_ptr<etcdserverpb::Lease::Stub> stub_;
  Poller* poller_;
  int64_t lease_;
  Tag kick_tag_{this, kKick};
  Tag started_tag_{this, kStarted};
  Tag due_tag_{this, kDue};
  Tag written_tag_{this, kWritten};
  Tag read_tag_{this, kRead};
  Tag writes_done_tag_{this, kWritesDone};
  Tag finished_tag_{this, kFinished};
  grpc::Alarm alarm_;
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientAsyncReaderWriter<etcdserverpb::LeaseKeepAliveRequest,
                                                etcdserverpb::LeaseKeepAliveResponse>>
      stream_;
  etcdserverpb::LeaseKeepAliveRequest request_;
  etcdserverpb::LeaseKeepAliveResponse response_;
  grpc::Status status_;
  int64_t start_ns_ = 0;
};

bool RunLeaseKeepAlive(Run& run, const WorkloadOptions& workload, Report* report,
                       std::string* error) {
  const Options& options = run.options();
  report->series = {"keepalive"};
  std::vector<std::unique_ptr<KeepAliveSlot>> slots;
  for (int i = 0; i < options.clients; ++i) {
    auto channel = run.channel(i % run.conn_count());
    etcdserverpb::LeaseGrantRequest request;
    request.set_ttl(workload.lease_ttl_s);
    etcdserverpb::LeaseGrantResponse response;
    grpc::ClientContext context;
    grpc::Status status =
        etcdserverpb::Lease::NewStub(channel)->LeaseGrant(&context, request, &response);
    if (!status.ok()) {
      *error = "LeaseGrant: " + status.error_message();
      return false;
    }
    slots.push_back(std::make_unique<KeepAliveSlot>(&run, channel, run.poller(i), response.id()));
  }
  KickAndMeasure(run, slots, report);
  return true;
}

}  // namespace

bool RunWorkload(const std::string& name, const Options& options,
                 const WorkloadOptions& workload_options, Report* report, std::string* error) {
  report->workload = name;
  report->series.clear();
  Options effective = options;
  if (name == "watch-latency") effective.key_space_size = 1;
  Run run(effective);
  if (!run.Connect(error)) return false;
  run.StartPollers();
  bool ok = true;
  if (name == "put") {
    report->series = {"put"};
    PutWorkload workload(run.options(), false);
    RunSlots(run, workload, report);
  } else if (name == "range") {
    report->series = {"range"};
    RangeWorkload workload(run.options(), workload_options);
    RunSlots(run, workload, report);
  } else if (name == "txn-put") {
    report->series = {"txn"};
    TxnPutWorkload workload(run.options(), workload_options);
    RunSlots(run, workload, report);
  } else if (name == "txn-mixed") {
    report->series = {"read", "write"};
    TxnMixedWorkload workload(run.options(), workload_options);
    RunSlots(run, workload, report);
  } else if (name == "watch" || name == "watch-latency") {
    ok = RunWatch(run, workload_options, report, error);
  } else if (name == "lease-keepalive") {
    ok = RunLeaseKeepAlive(run, workload_options, report, error);
  } else if (IsEventsWorkload(name)) {
    ok = RunEventsWorkload(name, run, workload_options, report, error);
  } else {
    *error = "unknown workload " + name;
    ok = false;
  }
  report->stats = run.StopPollers();
  if (IsEventsWorkload(name) && !report->series.empty()) {
    FinishEventsReport(name, workload_options, report);
  }
  if (options.server_pid) {
    report->extra["server_vm_rss_bytes"] = ProcStatusBytes(options.server_pid, "VmRSS");
    report->extra["server_vm_hwm_bytes"] = ProcStatusBytes(options.server_pid, "VmHWM");
  }
  return ok;
}

}  // namespace cairn::bench
