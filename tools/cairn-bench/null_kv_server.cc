// cairn-null-kv: an etcd v3 KV server that does no work. Every Range, Put, DeleteRange, Txn
// and Compact is answered at once, on the gRPC thread that received it, with an empty response
// that carries only a header (its revision counts the writes). It stores nothing.
//
// It is the gRPC limit of a benchmark: cairn-bench pointed at it measures what the client,
// gRPC and protobuf alone cost for the same requests over the same connections, on the same
// cores. scripts/bench-vs-etcd.sh runs put 1/1 and put 100/1000 against it each round and
// reports them next to etcd and Cairn (a put 1/1 can be no faster than this round trip plus
// one fdatasync; a put 100/1000 no faster than this throughput).
//
//   cairn-null-kv [--listen 127.0.0.1:0]
//
// Prints "cairn-null-kv: serving etcd v3 KV on HOST:PORT" once listening; SIGTERM or SIGINT
// stop it (exit 0). Exit 1 if it cannot listen.
#include <absl/synchronization/mutex.h>
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <cstdio>
#include <string>

#include "etcdserverpb/rpc.grpc.pb.h"

namespace {

class NullKv final : public etcdserverpb::KV::CallbackService {
 public:
  grpc::ServerUnaryReactor* Range(grpc::CallbackServerContext* context,
                                  const etcdserverpb::RangeRequest*,
                                  etcdserverpb::RangeResponse* response) override {
    return Answer(context, response->mutable_header(), false);
  }
  grpc::ServerUnaryReactor* Put(grpc::CallbackServerContext* context,
                                const etcdserverpb::PutRequest*,
                                etcdserverpb::PutResponse* response) override {
    return Answer(context, response->mutable_header(), true);
  }
  grpc::ServerUnaryReactor* DeleteRange(grpc::CallbackServerContext* context,
                                        const etcdserverpb::DeleteRangeRequest*,
                                        etcdserverpb::DeleteRangeResponse* response) override {
    return Answer(context, response->mutable_header(), true);
  }
  grpc::ServerUnaryReactor* Txn(grpc::CallbackServerContext* context,
                                const etcdserverpb::TxnRequest*,
                                etcdserverpb::TxnResponse* response) override {
    response->set_succeeded(true);
    return Answer(context, response->mutable_header(), true);
  }
  grpc::ServerUnaryReactor* Compact(grpc::CallbackServerContext* context,
                                    const etcdserverpb::CompactionRequest*,
                                    etcdserverpb::CompactionResponse* response) override {
    return Answer(context, response->mutable_header(), false);
  }

 private:
  grpc::ServerUnaryReactor* Answer(grpc::CallbackServerContext* context,
                                   etcdserverpb::ResponseHeader* header, bool write) {
    header->set_cluster_id(1);
    header->set_member_id(1);
    header->set_raft_term(1);
    header->set_revision(write ? revision_.fetch_add(1, std::memory_order_relaxed) + 1
                               : revision_.load(std::memory_order_relaxed));
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

  std::atomic<int64_t> revision_{1};
};

}  // namespace

int main(int argc, char** argv) {
  // As in cairnd: Debian's Abseil is a debug build; no lock graph in gRPC's absl::Mutex.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  CLI::App app{"cairn-null-kv: an etcd v3 KV server that answers at once and stores nothing"};
  std::string listen = "127.0.0.1:0";
  app.add_option("--listen", listen, "host:port to serve on (port 0: any free port)")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  // Block the stop signals before gRPC starts its threads, so only sigwait sees them.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  NullKv service;
  grpc::ServerBuilder builder;
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  int port = 0;
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    std::fprintf(stderr, "cairn-null-kv: cannot listen on %s\n", listen.c_str());
    return 1;
  }
  const std::string host = listen.substr(0, listen.rfind(':'));
  std::printf("cairn-null-kv: serving etcd v3 KV on %s:%d\n", host.c_str(), port);
  std::fflush(stdout);
  int signal = 0;
  sigwait(&stop, &signal);
  server->Shutdown();
  return 0;
}
