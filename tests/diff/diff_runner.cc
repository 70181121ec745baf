#include "tests/diff/diff_runner.h"

#include <grpcpp/grpcpp.h>
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

#include "etcdserverpb/rpc.grpc.pb.h"
#include "tests/diff/child_process.h"
#include "tests/diff/request_generator.h"
#include "tests/diff/response_compare.h"
#include "tests/diff/watch_stream.h"

namespace cairn::diff {
namespace {

namespace fs = std::filesystem;
using etcdserverpb::WatchResponse;
using google::protobuf::Message;

constexpr int kCallDeadlineMs = 10000;
constexpr int kStartupDeadlineMs = 20000;
// How long to wait for watch output that the model says must come. Generous: a timeout only
// costs time when a server fails to send what it must (and the comparison then reports it).
constexpr int kWatchWaitMs = 3000;
// etcd moves a watcher with a past start revision from "unsynced" to "synced" in a loop
// that runs every 100 ms; when such a watcher has no catch-up events to wait for, this
// pause lets that happen before the next write, so its next events arrive as one response
// per revision on both servers (otherwise etcd would batch them by timing).
constexpr int kUnsyncedSettleMs = 200;

// One running server and its client stubs.
struct Server {
  std::string name;
  ChildProcess process;
  std::string endpoint;  // host:port
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<etcdserverpb::KV::Stub> kv;
  std::unique_ptr<etcdserverpb::Lease::Stub> lease;
  std::unique_ptr<etcdserverpb::Watch::Stub> watch;
  int64_t revision = 1;                 // header.revision of its latest answer
  std::unique_ptr<WatchStream> master;  // every key from the start: the event history

  void Connect(const std::string& host_port) {
    endpoint = host_port;
    channel = grpc::CreateChannel(endpoint, grpc::InsecureChannelCredentials());
    kv = etcdserverpb::KV::NewStub(channel);
    lease = etcdserverpb::Lease::NewStub(channel);
    watch = etcdserverpb::Watch::NewStub(channel);
  }
};

std::chrono::system_clock::time_point DeadlineIn(int ms) {
  return std::chrono::system_clock::now() + std::chrono::milliseconds(ms);
}

bool StartEtcd(const RunOptions& options, const fs::path& dir, Server* server, std::string* error) {
  int client_port = FreeLoopbackPort();
  int peer_port = FreeLoopbackPort();
  std::string client_url = "http://127.0.0.1:" + std::to_string(client_port);
  std::string peer_url = "http://127.0.0.1:" + std::to_string(peer_port);
  server->name = "etcd";
  server->Connect("127.0.0.1:" + std::to_string(client_port));
  return server->process.Start({options.etcd,
                                "--name",
                                "default",
                                "--data-dir",
                                (dir / "etcd-data").string(),
                                "--listen-client-urls",
                                client_url,
                                "--advertise-client-urls",
                                client_url,
                                "--listen-peer-urls",
                                peer_url,
                                "--initial-advertise-peer-urls",
                                peer_url,
                                "--initial-cluster",
                                "default=" + peer_url,
                                "--max-request-bytes",
                                std::to_string(kMaxRequestBytes),
                                "--max-txn-ops",
                                std::to_string(kMaxTxnOps),
                                "--logger",
                                "zap",
                                "--log-level",
                                "warn"},
                               (dir / "etcd.log").string(), error);
}

bool StartCairnd(const RunOptions& options, const fs::path& dir, Server* server,
                 std::string* error) {
  server->name = "cairnd";
  return server->process.Start(
      {options.cairnd, "--data-dir", (dir / "cairnd-data").string(), "--listen-client-urls",
       "http://127.0.0.1:0", "--listen-metrics-urls", "http://127.0.0.1:0", "--max-request-bytes",
       std::to_string(kMaxRequestBytes), "--max-txn-ops", std::to_string(kMaxTxnOps)},
      (dir / "cairnd.log").string(), error);
}

// cairnd binds port 0 and logs "serving etcd v3 clients on HOST:PORT" (tests/compat/lib.sh).
bool FindCairndEndpoint(Server* server, std::string* error) {
  static const std::regex kServing("serving etcd v3 clients on ([0-9.]+:[0-9]+)");
  for (auto deadline = DeadlineIn(kStartupDeadlineMs); std::chrono::system_clock::now() < deadline;
       std::this_thread::sleep_for(std::chrono::milliseconds(20))) {
    std::smatch match;
    std::string log = server->process.LogTail(1 << 20);
    if (std::regex_search(log, match, kServing)) {
      server->Connect(match[1]);
      return true;
    }
    if (!server->process.Running()) break;
  }
  *error = "cairnd did not report its address:\n" + server->process.LogTail();
  return false;
}

// Ready = answers a Range (etcd: once it has elected itself leader).
bool WaitReady(Server* server, std::string* error) {
  for (auto deadline = DeadlineIn(kStartupDeadlineMs); std::chrono::system_clock::now() < deadline;
       std::this_thread::sleep_for(std::chrono::milliseconds(30))) {
    grpc::ClientContext context;
    context.set_deadline(DeadlineIn(500));
    etcdserverpb::RangeRequest request;
    request.set_key("ready?");
    etcdserverpb::RangeResponse response;
    if (server->kv->Range(&context, request, &response).ok()) return true;
    if (!server->process.Running()) break;
  }
  *error = server->name + " did not become ready:\n" + server->process.LogTail();
  return false;
}

int64_t HeaderRevision(const Message& message) {
  const auto* field = message.GetDescriptor()->FindFieldByName("header");
  if (field == nullptr || !message.GetReflection()->HasField(message, field)) return 0;
  const auto& header = static_cast<const etcdserverpb::ResponseHeader&>(
      message.GetReflection()->GetMessage(message, field));
  return header.revision();
}

template <typename Request, typename Response, typename Call>
Reply Unary(const Message& request, Call call) {
  grpc::ClientContext context;
  context.set_deadline(DeadlineIn(kCallDeadlineMs));
  auto response = std::make_unique<Response>();
  grpc::Status status = call(&context, static_cast<const Request&>(request), response.get());
  Reply reply;
  reply.code = status.error_code();
  reply.message = status.error_message();
  if (status.ok()) reply.body = std::move(response);
  return reply;
}

// One keep-alive on a fresh stream: send the ID, read one answer, close.
Reply KeepAliveOnce(Server* server, const etcdserverpb::LeaseKeepAliveRequest& request) {
  grpc::ClientContext context;
  context.set_deadline(DeadlineIn(kCallDeadlineMs));
  auto stream = server->lease->LeaseKeepAlive(&context);
  auto response = std::make_unique<etcdserverpb::LeaseKeepAliveResponse>();
  bool read = stream->Write(request) && stream->Read(response.get());
  stream->WritesDone();
  if (read) context.TryCancel();
  grpc::Status status = stream->Finish();
  Reply reply;
  if (read) {
    reply.body = std::move(response);
  } else {
    reply.code = status.error_code();
    reply.message = status.error_message();
  }
  return reply;
}

Reply Execute(Server* server, const Op& op) {
  using namespace etcdserverpb;
  auto* kv = server->kv.get();
  auto* lease = server->lease.get();
  Reply reply;
  switch (op.kind) {
    case OpKind::kRange:
      reply = Unary<RangeRequest, RangeResponse>(
          *op.request, [&](auto* c, auto& q, auto* r) { return kv->Range(c, q, r); });
      break;
    case OpKind::kPut:
      reply = Unary<PutRequest, PutResponse>(
          *op.request, [&](auto* c, auto& q, auto* r) { return kv->Put(c, q, r); });
      break;
    case OpKind::kDeleteRange:
      reply = Unary<DeleteRangeRequest, DeleteRangeResponse>(
          *op.request, [&](auto* c, auto& q, auto* r) { return kv->DeleteRange(c, q, r); });
      break;
    case OpKind::kTxn:
      reply = Unary<TxnRequest, TxnResponse>(
          *op.request, [&](auto* c, auto& q, auto* r) { return kv->Txn(c, q, r); });
      break;
    case OpKind::kCompact:
      reply = Unary<CompactionRequest, CompactionResponse>(
          *op.request, [&](auto* c, auto& q, auto* r) { return kv->Compact(c, q, r); });
      break;
    case OpKind::kLeaseGrant:
      reply = Unary<LeaseGrantRequest, LeaseGrantResponse>(
          *op.request, [&](auto* c, auto& q, auto* r) { return lease->LeaseGrant(c, q, r); });
      break;
    case OpKind::kLeaseRevoke:
      reply = Unary<LeaseRevokeRequest, LeaseRevokeResponse>(
          *op.request, [&](auto* c, auto& q, auto* r) { return lease->LeaseRevoke(c, q, r); });
      break;
    case OpKind::kLeaseTimeToLive:
      reply = Unary<LeaseTimeToLiveRequest, LeaseTimeToLiveResponse>(
          *op.request, [&](auto* c, auto& q, auto* r) { return lease->LeaseTimeToLive(c, q, r); });
      break;
    case OpKind::kLeaseLeases:
      reply = Unary<LeaseLeasesRequest, LeaseLeasesResponse>(
          *op.request, [&](auto* c, auto& q, auto* r) { return lease->LeaseLeases(c, q, r); });
      break;
    case OpKind::kLeaseKeepAlive:
      reply = KeepAliveOnce(server, static_cast<const LeaseKeepAliveRequest&>(*op.request));
      break;
    default:
      std::cerr << "not a unary op\n";
      std::abort();
  }
  if (reply.body) server->revision = std::max(server->revision, HeaderRevision(*reply.body));
  return reply;
}

// ---- Watches ----

// An event matches a watch when its key is in the watch's range and no filter drops it.
bool Matches(const etcdserverpb::WatchCreateRequest& create, const mvccpb::Event& event) {
  const std::string& key = event.kv().key();
  const std::string& end = create.range_end();
  bool in_range = end.empty()                   ? key == create.key()
                  : end == std::string(1, '\0') ? key >= create.key()
                                                : key >= create.key() && key < end;
  if (!in_range) return false;
  for (int filter : create.filters()) {
    if (filter == etcdserverpb::WatchCreateRequest::NOPUT && event.type() == mvccpb::Event::PUT) {
      return false;
    }
    if (filter == etcdserverpb::WatchCreateRequest::NODELETE &&
        event.type() == mvccpb::Event::DELETE) {
      return false;
    }
  }
  return true;
}

// WaitUntil that says so when the wait timed out: the server did not send what the model
// says it must (the stream comparison then shows the difference), or the model is wrong.
bool WaitOrNote(WatchStream* stream,
                const std::function<bool(const std::vector<WatchResponse>&)>& done,
                const std::string& server, const std::string& what) {
  if (stream->WaitUntil(done, kWatchWaitMs)) return true;
  std::cout << "  note: " << server << " did not send " << what << " within " << kWatchWaitMs
            << " ms\n";
  return false;
}

int64_t LastEventRevision(const std::vector<WatchResponse>& responses) {
  for (auto it = responses.rbegin(); it != responses.rend(); ++it) {
    if (it->events_size() > 0) return it->events(it->events_size() - 1).kv().mod_revision();
  }
  return 0;
}

// Waits until the server's all-keys watch has delivered every event up to its revision, so
// that its event list is the complete history the expected counts are computed from.
bool SyncMaster(Server* server) {
  int64_t target = server->revision;
  return WaitOrNote(
      server->master.get(),
      [&](const std::vector<WatchResponse>& r) {
        return target <= 1 || LastEventRevision(r) >= target;
      },
      server->name, "all-keys watch events through revision " + std::to_string(target));
}

// One watch opened on both servers (each on its own stream).
struct WatchPair {
  etcdserverpb::WatchCreateRequest create;
  std::unique_ptr<WatchStream> stream[2];
  int64_t watch_id[2] = {0, 0};
  int64_t first_revision[2] = {0, 0};  // events from this revision on
  bool compacted = false;              // canceled at creation: start revision compacted
  bool refused[2] = {false, false};    // created and canceled at once (e.g. empty range)
  // The compact revision when opened: etcd's compaction removed the tombstones at it, so a
  // catch-up from it has no deletes of that revision.
  int64_t compacted_at_open = 0;
  int opened_step = 0;
};

// How many events the watch must have delivered by now, from the server's history.
size_t ExpectedEvents(Server* server, const WatchPair& pair, int side) {
  if (pair.compacted || pair.refused[side]) return 0;
  SyncMaster(server);
  size_t count = 0;
  for (const WatchResponse& response : server->master->Responses()) {
    for (const mvccpb::Event& event : response.events()) {
      if (event.type() == mvccpb::Event::DELETE &&
          event.kv().mod_revision() <= pair.compacted_at_open) {
        continue;
      }
      if (event.kv().mod_revision() >= pair.first_revision[side] && Matches(pair.create, event)) {
        ++count;
      }
    }
  }
  return count;
}

bool WaitForExpectedEvents(Server* server, WatchPair* pair, int side) {
  size_t expected = ExpectedEvents(server, *pair, side);
  return WaitOrNote(
      pair->stream[side].get(),
      [&](const std::vector<WatchResponse>& responses) {
        size_t count = 0;
        for (const auto& response : responses) count += response.events_size();
        return count >= expected;
      },
      server->name,
      std::to_string(expected) + " events on the watch opened at step " +
          std::to_string(pair->opened_step));
}

// "" when both streams delivered the same responses (headers normalized).
// etcd's watch reads an event's prev_kv at the event's revision - 1 when it sends the event
// (serverWatchStream.sendLoop), and leaves it out when that revision is compacted by then; so
// whether etcd sends it for an event just below a compaction depends on etcd's timing. cairnd
// takes prev_kv from the change itself and always sends it. Such an event's prev_kv is
// compared only when etcd sent one: `compact_revision` is the latest compaction, which bounds
// every compaction etcd may have applied before sending.
void ForgiveCompactedPrevKvs(const WatchResponse& etcd, int64_t compact_revision,
                             WatchResponse* cairnd) {
  if (etcd.events_size() != cairnd->events_size()) return;
  for (int i = 0; i < etcd.events_size(); ++i) {
    const mvccpb::Event& theirs = etcd.events(i);
    mvccpb::Event* ours = cairnd->mutable_events(i);
    if (!theirs.has_prev_kv() && ours->has_prev_kv() && theirs.kv().key() == ours->kv().key() &&
        theirs.kv().mod_revision() == ours->kv().mod_revision() &&
        theirs.kv().mod_revision() - 1 < compact_revision) {
      ours->clear_prev_kv();
    }
  }
}

std::string DiffStreams(WatchStream* etcd, WatchStream* cairnd, int64_t compact_revision) {
  std::vector<WatchResponse> etcd_responses = etcd->Responses();
  std::vector<WatchResponse> cairnd_responses = cairnd->Responses();
  std::string report;
  for (size_t i = 0; i < std::max(etcd_responses.size(), cairnd_responses.size()); ++i) {
    if (i < etcd_responses.size() && i < cairnd_responses.size()) {
      ForgiveCompactedPrevKvs(etcd_responses[i], compact_revision, &cairnd_responses[i]);
    }
    if (i >= etcd_responses.size() || i >= cairnd_responses.size()) {
      report += "response " + std::to_string(i) + ": only " +
                (i < etcd_responses.size() ? "etcd" : "cairnd") + " sent " +
                Short(i < etcd_responses.size() ? etcd_responses[i] : cairnd_responses[i], 600) +
                "\n";
      continue;
    }
    std::string diff = DiffMessages(&etcd_responses[i], &cairnd_responses[i]);
    if (!diff.empty()) {
      report += "response " + std::to_string(i) + ":\n  etcd:   " + Short(etcd_responses[i], 4000) +
                "\n  cairnd: " + Short(cairnd_responses[i], 4000) + "\n  " + diff;
    }
  }
  return report;
}

// ---- One seed ----

class SeedRun {
 public:
  SeedRun(const RunOptions& options, uint64_t seed, fs::path dir)
      : options_(options), seed_(seed), dir_(std::move(dir)), generator_(seed) {}

  // True when the servers agreed on every step.
  bool Run();

 private:
  bool Start();
  bool Step(int step);
  bool UnaryStep(int step, const Op& op);
  bool OpenWatch(int step, const Op& op);
  bool CancelWatch(int step, const Op& op);
  bool ProgressWatch(int step, const Op& op);
  bool CloseAll(int step);
  bool Report(int step, const std::string& label, const std::string& what);

  const RunOptions& options_;
  uint64_t seed_;
  fs::path dir_;
  RequestGenerator generator_;
  ObservedState state_;
  Server servers_[2];  // 0: etcd (the reference), 1: cairnd
  std::vector<std::unique_ptr<WatchPair>> watches_;
};

bool SeedRun::Report(int step, const std::string& label, const std::string& what) {
  std::cout << "MISMATCH seed " << seed_ << " step " << step << " (" << label << ")\n"
            << what << "\n"
            << "  logs: " << servers_[0].process.log_path() << " " << servers_[1].process.log_path()
            << "\n";
  return false;
}

bool SeedRun::Start() {
  std::string error;
  if (!StartEtcd(options_, dir_, &servers_[0], &error) ||
      !StartCairnd(options_, dir_, &servers_[1], &error) ||
      !FindCairndEndpoint(&servers_[1], &error) || !WaitReady(&servers_[0], &error) ||
      !WaitReady(&servers_[1], &error)) {
    std::cout << "seed " << seed_ << ": could not start the servers: " << error << "\n";
    return false;
  }
  for (Server& server : servers_) {
    server.master = std::make_unique<WatchStream>(server.watch.get());
    etcdserverpb::WatchRequest request;
    auto* create = request.mutable_create_request();
    create->set_key(std::string(1, '\0'));
    create->set_range_end(std::string(1, '\0'));
    create->set_prev_kv(true);
    server.master->Send(request);
    if (!server.master->WaitUntil([](const auto& r) { return !r.empty(); }, kWatchWaitMs)) {
      std::cout << "seed " << seed_ << ": " << server.name << " did not create the watch\n";
      return false;
    }
  }
  return true;
}

bool SeedRun::UnaryStep(int step, const Op& op) {
  Reply etcd = Execute(&servers_[0], op);
  Reply cairnd = Execute(&servers_[1], op);
  if (options_.verbose) std::cout << "  etcd: " << Describe(etcd) << "\n";
  if (op.kind == OpKind::kCompact && etcd.code == grpc::StatusCode::OK) {
    state_.compact_revision =
        static_cast<const etcdserverpb::CompactionRequest&>(*op.request).revision();
  }
  std::string etcd_text = Describe(etcd);
  std::string cairnd_text = Describe(cairnd);
  std::string diff = DiffReplies(&etcd, &cairnd);
  if (!diff.empty()) {
    return Report(step, op.label,
                  "  request: " + Short(*op.request) + "\n  etcd:    " + etcd_text +
                      "\n  cairnd:  " + cairnd_text + "\n  diff:\n" + diff);
  }
  if (op.kind == OpKind::kLeaseGrant &&
      static_cast<const etcdserverpb::LeaseGrantRequest&>(*op.request).id() == kShortLeaseId) {
    // A lease of a few seconds would expire during the run, at a different moment on each
    // server: revoke it now (and compare that too).
    Op revoke;
    revoke.kind = OpKind::kLeaseRevoke;
    revoke.label = op.label + ", then its revoke";
    etcdserverpb::LeaseRevokeRequest request;
    request.set_id(kShortLeaseId);
    revoke.request = std::make_unique<etcdserverpb::LeaseRevokeRequest>(request);
    return UnaryStep(step, revoke);
  }
  return true;
}

bool SeedRun::OpenWatch(int step, const Op& op) {
  auto pair = std::make_unique<WatchPair>();
  pair->create = static_cast<const etcdserverpb::WatchCreateRequest&>(*op.request);
  pair->opened_step = step;
  int64_t start = pair->create.start_revision();
  pair->compacted = start > 0 && start < state_.compact_revision;
  pair->compacted_at_open = state_.compact_revision;
  bool settle = false;
  for (int side = 0; side < 2; ++side) {
    Server& server = servers_[side];
    pair->stream[side] = std::make_unique<WatchStream>(server.watch.get());
    etcdserverpb::WatchRequest request;
    *request.mutable_create_request() = pair->create;
    pair->stream[side]->Send(request);
    WaitOrNote(
        pair->stream[side].get(), [](const auto& r) { return !r.empty(); }, server.name,
        "the created response");
    std::vector<WatchResponse> responses = pair->stream[side]->Responses();
    int64_t created_revision = responses.empty() ? 0 : responses[0].header().revision();
    pair->watch_id[side] = responses.empty() ? 0 : responses[0].watch_id();
    pair->first_revision[side] = start > 0 ? start : created_revision + 1;
    pair->refused[side] = !responses.empty() && responses[0].canceled();
    if (pair->refused[side]) {
      continue;  // nothing more will come
    } else if (pair->compacted) {
      WaitOrNote(
          pair->stream[side].get(),
          [](const auto& r) { return r.size() >= 2 && r.back().canceled(); }, server.name,
          "the compacted cancel");
    } else if (start > 0 && start <= created_revision) {
      settle |= ExpectedEvents(&server, *pair, side) == 0;
      WaitForExpectedEvents(&server, pair.get(), side);
    }
  }
  if (settle) std::this_thread::sleep_for(std::chrono::milliseconds(kUnsyncedSettleMs));
  std::string diff =
      DiffStreams(pair->stream[0].get(), pair->stream[1].get(), state_.compact_revision);
  watches_.push_back(std::move(pair));
  if (diff.empty()) return true;
  return Report(step, op.label, "  request: " + Short(*op.request) + "\n" + diff);
}

bool SeedRun::CancelWatch(int step, const Op& op) {
  auto pair = std::move(watches_[op.watch_index]);
  watches_.erase(watches_.begin() + op.watch_index);
  for (int side = 0; side < 2; ++side) {
    WaitForExpectedEvents(&servers_[side], pair.get(), side);
    size_t before = pair->stream[side]->Responses().size();
    etcdserverpb::WatchRequest request;
    request.mutable_cancel_request()->set_watch_id(pair->watch_id[side]);
    pair->stream[side]->Send(request);
    if (pair->refused[side]) continue;  // an unknown id: etcd answers nothing
    WaitOrNote(
        pair->stream[side].get(), [&](const auto& r) { return r.size() > before; },
        servers_[side].name, "an answer to the cancel");
  }
  std::string diff =
      DiffStreams(pair->stream[0].get(), pair->stream[1].get(), state_.compact_revision);
  if (diff.empty()) return true;
  return Report(step,
                op.label + " of the watch opened at step " + std::to_string(pair->opened_step),
                "  watch: " + Short(pair->create) + "\n" + diff);
}

bool SeedRun::ProgressWatch(int step, const Op& op) {
  WatchPair* pair = watches_[op.watch_index].get();
  for (int side = 0; side < 2; ++side) {
    WaitForExpectedEvents(&servers_[side], pair, side);
    size_t before = pair->stream[side]->Responses().size();
    etcdserverpb::WatchRequest request;
    request.mutable_progress_request();
    pair->stream[side]->Send(request);
    WaitOrNote(
        pair->stream[side].get(), [&](const auto& r) { return r.size() > before; },
        servers_[side].name, "an answer to the progress request");
  }
  std::string diff =
      DiffStreams(pair->stream[0].get(), pair->stream[1].get(), state_.compact_revision);
  if (diff.empty()) return true;
  return Report(step,
                op.label + " on the watch opened at step " + std::to_string(pair->opened_step),
                "  watch: " + Short(pair->create) + "\n" + diff);
}

// At the end: every open watch has delivered what it must; compare the whole streams,
// the all-keys history watch included.
bool SeedRun::CloseAll(int step) {
  for (auto& pair : watches_) {
    for (int side = 0; side < 2; ++side) WaitForExpectedEvents(&servers_[side], pair.get(), side);
    std::string diff =
        DiffStreams(pair->stream[0].get(), pair->stream[1].get(), state_.compact_revision);
    if (!diff.empty()) {
      return Report(step,
                    "final events of the watch opened at step " + std::to_string(pair->opened_step),
                    "  watch: " + Short(pair->create) + "\n" + diff);
    }
  }
  for (Server& server : servers_) SyncMaster(&server);
  std::string diff =
      DiffStreams(servers_[0].master.get(), servers_[1].master.get(), state_.compact_revision);
  if (diff.empty()) return true;
  return Report(step, "the all-keys watch (whole history)", diff);
}

bool SeedRun::Step(int step) {
  state_.open_watches = static_cast<int>(watches_.size());
  Op op = generator_.Next(state_);
  if (options_.verbose) {
    std::cout << "step " << step << " " << op.label << ": "
              << (op.request ? Short(*op.request, 300) : "watch " + std::to_string(op.watch_index))
              << "\n";
  }
  bool agreed;
  switch (op.kind) {
    case OpKind::kWatchOpen:
      agreed = OpenWatch(step, op);
      break;
    case OpKind::kWatchCancel:
      agreed = CancelWatch(step, op);
      break;
    case OpKind::kWatchProgress:
      agreed = ProgressWatch(step, op);
      break;
    default:
      agreed = UnaryStep(step, op);
      break;
  }
  state_.revision = servers_[0].revision;
  return agreed;
}

bool SeedRun::Run() {
  if (!Start()) return false;
  for (int step = 0; step < options_.ops; ++step) {
    if (!Step(step)) return false;
  }
  return CloseAll(options_.ops);
}

}  // namespace

int RunSeeds(const RunOptions& options) {
  char pattern[] = "/tmp/cairn_diff_XXXXXX";
  const char* base = mkdtemp(pattern);
  if (base == nullptr) {
    std::cerr << "mkdtemp failed\n";
    return 1;
  }
  auto begin = std::chrono::steady_clock::now();
  std::vector<uint64_t> failed;
  for (uint64_t seed = options.seed_start; seed < options.seed_start + options.seeds; ++seed) {
    fs::path dir = fs::path(base) / ("seed-" + std::to_string(seed));
    fs::create_directories(dir);
    auto seed_begin = std::chrono::steady_clock::now();
    bool agreed = SeedRun(options, seed, dir).Run();
    std::cout
        << "seed " << seed << ": " << (agreed ? "agreed" : "DIFFERED") << " in "
        << std::chrono::duration<double>(std::chrono::steady_clock::now() - seed_begin).count()
        << " s\n"
        << std::flush;
    if (!agreed) {
      failed.push_back(seed);
      std::cout << "replay: "
                << "CAIRN_DIFF_OPS=" << options.ops << " " << options.self << " --cairnd "
                << options.cairnd << " --seed " << seed << " --verbose\n";
    } else if (!options.keep_data) {
      fs::remove_all(dir);
    }
  }
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
  std::cout << options.seeds - failed.size() << "/" << options.seeds << " seeds agreed (seeds "
            << options.seed_start << ".." << options.seed_start + options.seeds - 1 << ", "
            << options.ops << " steps each) in " << seconds << " s\n";
  if (failed.empty() && !options.keep_data) fs::remove_all(base);
  return failed.empty() ? 0 : 1;
}

}  // namespace cairn::diff
