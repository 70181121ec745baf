// watch: one Watch stream, printed like etcdctl's printWatchCh until the server cancels it.
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tools/cairnctl/commands.h"
#include "tools/cairnctl/printer.h"

namespace cairnctl {
namespace {

struct WatchFlags {
  std::vector<std::string> args;
  bool prefix = false;
  int64_t rev = 0;
  bool prev_kv = false;
  bool progress_notify = false;
};

std::optional<Failure> BuildWatch(const WatchFlags& flags,
                                  etcdserverpb::WatchCreateRequest* request) {
  if (flags.args.empty() || flags.args.size() > 2) {
    return Failure{kExitBadArgs, "bad number of arguments"};
  }
  if (flags.prefix && flags.args.size() > 1) {
    return Failure{kExitBadArgs, "`range_end` and `--prefix` are mutually exclusive"};
  }
  request->set_key(flags.args[0]);
  if (flags.args.size() > 1) request->set_range_end(flags.args[1]);
  if (flags.prefix) {
    if (flags.args[0].empty()) {
      request->set_key(std::string(1, '\0'));
      request->set_range_end(std::string(1, '\0'));
    } else {
      request->set_range_end(PrefixRangeEnd(flags.args[0]));
    }
  }
  request->set_start_revision(flags.rev);
  request->set_prev_kv(flags.prev_kv);
  request->set_progress_notify(flags.progress_notify);
  return std::nullopt;
}

// clientv3's WatchResponse.Err() for a canceled watch.
std::string CancelText(const etcdserverpb::WatchResponse& response) {
  if (response.compact_revision() != 0) {
    return "etcdserver: mvcc: required revision has been compacted";
  }
  if (!response.cancel_reason().empty()) return response.cancel_reason();
  return "context canceled";
}

int RunWatch(const GlobalOptions& options, const WatchFlags& flags) {
  etcdserverpb::WatchRequest request;
  if (auto failure = BuildWatch(flags, request.mutable_create_request())) {
    return ExitWithError(failure->exit_code, failure->message);
  }
  Connection connection(options, options.endpoints);
  Printer printer(options.output, options.hex);
  auto context = connection.StreamContext();
  auto stream = connection.watch().Watch(context.get());
  if (!stream->Write(request)) {
    return ExitWithError(kExitBadConnection, ErrorText(stream->Finish()));
  }
  etcdserverpb::WatchResponse response;
  while (stream->Read(&response)) {
    bool is_progress = response.events_size() == 0 && !response.canceled() && !response.created() &&
                       response.compact_revision() == 0 && response.header().revision() != 0;
    if (response.created() && !response.canceled() && response.events_size() == 0) continue;
    if (response.canceled()) {
      std::fprintf(stderr, "watch was canceled (%s)\n", CancelText(response).c_str());
    }
    if (is_progress) {
      std::printf("progress notify: %lld\n", static_cast<long long>(response.header().revision()));
    }
    printer.Watch(response);
    std::fflush(stdout);
    if (response.canceled()) break;
  }
  context->TryCancel();
  return ExitWithError(kExitInterrupted, "watch is canceled by the server");
}

}  // namespace

void AddWatchCommand(CLI::App* app, Invocation* invocation) {
  auto flags = std::make_shared<WatchFlags>();
  CLI::App* watch = app->add_subcommand("watch", "Watches events stream on keys or prefixes");
  watch->add_option("args", flags->args, "<key> [range_end]");
  watch->add_flag("--prefix", flags->prefix, "Watch on a prefix if prefix is set");
  watch->add_option("--rev", flags->rev, "Revision to start watching");
  watch->add_flag("--prev-kv", flags->prev_kv,
                  "get the previous key-value pair before the event happens");
  watch->add_flag("--progress-notify", flags->progress_notify,
                  "get periodic watch progress notification from server");
  watch->final_callback([invocation, flags] {
    invocation->run = [flags](const GlobalOptions& o) { return RunWatch(o, *flags); };
  });
}

}  // namespace cairnctl
