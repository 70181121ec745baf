// cairnctl: an etcdctl (v3) compatible command-line client for Cairn and etcd. Commands,
// flags, output and exit codes follow etcdctl 3.4; docs/cairnctl.md lists the differences.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>
#include <vector>

#include "tools/cairnctl/commands.h"
#include "tools/cairnctl/go_format.h"

namespace {

using cairnctl::GlobalOptions;
using cairnctl::Invocation;
using cairnctl::OutputFormat;

// Flag values as typed; MapGlobalFlags turns them into GlobalOptions.
struct GlobalFlags {
  std::vector<std::string> endpoints = {"127.0.0.1:2379"};
  std::string write_out = "simple";
  std::string dial_timeout = "2s";
  std::string command_timeout = "5s";
  bool hex = false;
  bool ignored = false;  // --debug, --insecure-transport, ...
  std::string ignored_text;
};

void AddGlobalFlags(CLI::App* app, GlobalFlags* flags) {
  app->add_option("--endpoints", flags->endpoints, "gRPC endpoints")
      ->delimiter(',')
      ->envname("ETCDCTL_ENDPOINTS");
  app->add_option("-w,--write-out", flags->write_out, "set the output format (simple, json)")
      ->envname("ETCDCTL_WRITE_OUT");
  app->add_option("--dial-timeout", flags->dial_timeout, "dial timeout for client connections")
      ->envname("ETCDCTL_DIAL_TIMEOUT");
  app->add_option("--command-timeout", flags->command_timeout,
                  "timeout for short running command (excluding dial timeout)")
      ->envname("ETCDCTL_COMMAND_TIMEOUT");
  app->add_flag("--hex", flags->hex, "print byte strings as hex encoded strings");
  app->add_flag("--debug,--insecure-transport,--insecure-discovery", flags->ignored,
                "accepted for etcdctl compatibility; no effect");
  app->add_option("--keepalive-time,--keepalive-timeout", flags->ignored_text,
                  "accepted for etcdctl compatibility; no effect");
}

// Returns an error message, or "" when the flags are valid.
std::string MapGlobalFlags(const GlobalFlags& flags, GlobalOptions* options) {
  options->endpoints.clear();
  for (const std::string& endpoint : flags.endpoints) {
    if (!endpoint.empty()) options->endpoints.push_back(cairnctl::StripScheme(endpoint));
  }
  if (options->endpoints.empty()) return "no endpoints given";
  if (flags.write_out == "simple") {
    options->output = OutputFormat::kSimple;
  } else if (flags.write_out == "json") {
    options->output = OutputFormat::kJson;
  } else {
    return "unsupported output format " + flags.write_out + " (cairnctl prints simple or json)";
  }
  auto dial = cairnctl::ParseGoDurationNanoseconds(flags.dial_timeout);
  auto command = cairnctl::ParseGoDurationNanoseconds(flags.command_timeout);
  if (!dial) return "invalid argument \"" + flags.dial_timeout + "\" for \"--dial-timeout\"";
  if (!command) {
    return "invalid argument \"" + flags.command_timeout + "\" for \"--command-timeout\"";
  }
  options->dial_timeout = std::chrono::milliseconds(*dial / 1000000);
  options->command_timeout = std::chrono::milliseconds(*command / 1000000);
  options->hex = flags.hex;
  return "";
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("A simple command line client for etcd3 (and Cairn).", "cairnctl");
  app.fallthrough();  // global flags are accepted after the command too, as etcdctl's
  app.require_subcommand(0, 1);
  GlobalFlags flags;
  AddGlobalFlags(&app, &flags);
  Invocation invocation;
  cairnctl::AddKvCommands(&app, &invocation);
  cairnctl::AddLeaseCommands(&app, &invocation);
  cairnctl::AddWatchCommand(&app, &invocation);
  cairnctl::AddClusterCommands(&app, &invocation);
  cairnctl::AddMaintenanceCommands(&app, &invocation);
  cairnctl::AddConcurrencyCommands(&app, &invocation);
  cairnctl::AddEventsCommands(&app, &invocation);
  cairnctl::AddProjectionCommands(&app, &invocation);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return cairnctl::ExitWithError(cairnctl::kExitError, e.what());
  }
  std::string error = MapGlobalFlags(flags, &invocation.options);
  if (!error.empty()) return cairnctl::ExitWithError(cairnctl::kExitBadArgs, error);
  if (!invocation.run) {
    std::printf("%s", app.help().c_str());
    return cairnctl::kExitSuccess;
  }
  int exit_code = invocation.run(invocation.options);
  std::fflush(stdout);
  return exit_code;
}
