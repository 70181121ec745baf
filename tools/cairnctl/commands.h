// cairnctl's commands. Each Add*Commands registers its subcommands and their flags on the
// CLI11 app; when one of them is chosen, its callback stores what to run in
// Invocation::run, and main runs it after all flags (global ones included) are parsed.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <string>

#include "tools/cairnctl/connection.h"

namespace cairnctl {

struct Invocation {
  GlobalOptions options;
  // Returns the exit status. Empty when no command was given.
  std::function<int(const GlobalOptions&)> run;
};

// An error that ends the command: what etcdctl's ExitWithError would print, and its code.
struct Failure {
  int exit_code = kExitError;
  std::string message;
};

void AddKvCommands(CLI::App* app, Invocation* invocation);           // put get del txn compaction
void AddLeaseCommands(CLI::App* app, Invocation* invocation);        // lease ...
void AddWatchCommand(CLI::App* app, Invocation* invocation);         // watch
void AddClusterCommands(CLI::App* app, Invocation* invocation);      // endpoint, member, snapshot
void AddConcurrencyCommands(CLI::App* app, Invocation* invocation);  // lock, elect
// alarm, defrag, endpoint hashkv, move-leader, snapshot restore. REQUIRES: after
// AddClusterCommands (it extends the endpoint and snapshot commands).
void AddMaintenanceCommands(CLI::App* app, Invocation* invocation);
void AddEventsCommands(CLI::App* app, Invocation* invocation);  // events ..., audit verify
// events group ... (persistent subscriptions); called by AddEventsCommands.
void AddGroupCommands(CLI::App* events, Invocation* invocation);
void AddProjectionCommands(CLI::App* app, Invocation* invocation);  // projection, upcaster

// etcd's prefix range end: the key with its last byte below 0xff incremented and the rest
// dropped; "\0" (every key) when there is none.
std::string PrefixRangeEnd(const std::string& key);

}  // namespace cairnctl
