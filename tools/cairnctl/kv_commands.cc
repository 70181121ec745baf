// put, get, del, txn and compaction, with etcdctl 3.4's flags, argument checks and messages
// (etcdctl/ctlv3/command/{put,get,del,txn,compaction}_command.go).
#include <cstdio>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tools/cairnctl/commands.h"
#include "tools/cairnctl/go_format.h"
#include "tools/cairnctl/printer.h"

namespace cairnctl {
namespace {

struct PutFlags {
  std::vector<std::string> args;
  bool prev_kv = false;
  std::string lease = "0";
  bool ignore_value = false;
  bool ignore_lease = false;
};

struct GetFlags {
  std::vector<std::string> args;
  std::string consistency = "l";
  std::string order;
  std::string sort_by;
  bool prefix = false;
  bool from_key = false;
  int64_t limit = 0;
  int64_t rev = 0;
  bool keys_only = false;
  bool count_only = false;
  bool print_value_only = false;
};

struct DelFlags {
  std::vector<std::string> args;
  bool prefix = false;
  bool prev_kv = false;
  bool from_key = false;
};

CLI::App* AddPut(CLI::App* app, PutFlags* flags) {
  CLI::App* put = app->add_subcommand("put", "Puts the given key into the store");
  put->add_option("args", flags->args, "<key> <value>");
  put->add_flag("--prev-kv", flags->prev_kv,
                "return the previous key-value pair before modification");
  put->add_option("--lease", flags->lease, "lease ID (in hexadecimal) to attach to the key");
  put->add_flag("--ignore-value", flags->ignore_value, "updates the key using its current value");
  put->add_flag("--ignore-lease", flags->ignore_lease, "updates the key using its current lease");
  return put;
}

CLI::App* AddGet(CLI::App* app, GetFlags* flags) {
  CLI::App* get = app->add_subcommand("get", "Gets the key or a range of keys");
  get->add_option("args", flags->args, "<key> [range_end]");
  get->add_option("--consistency", flags->consistency, "Linearizable(l) or Serializable(s)");
  get->add_option("--order", flags->order, "Order of results; ASCEND or DESCEND");
  get->add_option("--sort-by", flags->sort_by,
                  "Sort target; CREATE, KEY, MODIFY, VALUE, or VERSION");
  get->add_flag("--prefix", flags->prefix, "Get keys with matching prefix");
  get->add_flag("--from-key", flags->from_key,
                "Get keys that are greater than or equal to the given key");
  get->add_option("--limit", flags->limit, "Maximum number of results");
  get->add_option("--rev", flags->rev, "Specify the kv revision");
  get->add_flag("--keys-only", flags->keys_only, "Get only the keys");
  get->add_flag("--count-only", flags->count_only, "Get only the count");
  get->add_flag("--print-value-only", flags->print_value_only,
                "Only write values when using the \"simple\" output format");
  return get;
}

CLI::App* AddDel(CLI::App* app, DelFlags* flags) {
  CLI::App* del =
      app->add_subcommand("del", "Removes the specified key or range of keys [key, range_end)");
  del->add_option("args", flags->args, "<key> [range_end]");
  del->add_flag("--prefix", flags->prefix, "delete keys with matching prefix");
  del->add_flag("--prev-kv", flags->prev_kv, "return deleted key-value pairs");
  del->add_flag("--from-key", flags->from_key,
                "delete keys that are greater than or equal to the given key");
  return del;
}

// argOrStdin: the argument, or all of stdin when it is missing.
std::optional<std::string> ArgOrStdin(const std::vector<std::string>& args, size_t index,
                                      bool stdin_allowed) {
  if (args.size() > index) return args[index];
  if (!stdin_allowed) return std::nullopt;
  std::string data((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  if (data.empty()) return std::nullopt;
  return data;
}

std::optional<Failure> BuildPut(const PutFlags& flags, bool stdin_allowed,
                                etcdserverpb::PutRequest* request) {
  if (flags.args.empty()) {
    return Failure{kExitBadArgs,
                   "put command needs 1 argument and input from stdin or 2 arguments"};
  }
  if (flags.ignore_value && flags.args.size() > 1) {
    return Failure{kExitBadArgs, "put command needs only 1 argument when 'ignore-value' is set"};
  }
  request->set_key(flags.args[0]);
  if (!flags.ignore_value) {
    auto value = ArgOrStdin(flags.args, 1, stdin_allowed);
    if (!value) {
      return Failure{kExitBadArgs,
                     "put command needs 1 argument and input from stdin or 2 arguments"};
    }
    request->set_value(*value);
  }
  std::string error;
  auto lease = ParseGoInt(flags.lease, 16, &error);
  if (!lease) return Failure{kExitBadArgs, "bad lease ID (" + error + "), expecting ID in Hex"};
  request->set_lease(*lease);
  request->set_prev_kv(flags.prev_kv);
  request->set_ignore_value(flags.ignore_value);
  request->set_ignore_lease(flags.ignore_lease);
  return std::nullopt;
}

std::optional<Failure> ApplySort(const GetFlags& flags, etcdserverpb::RangeRequest* request) {
  using etcdserverpb::RangeRequest;
  std::string order = flags.order, target = flags.sort_by;
  for (char& c : order) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  for (char& c : target) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  RangeRequest::SortOrder sort_order = RangeRequest::NONE;
  if (order == "ASCEND") {
    sort_order = RangeRequest::ASCEND;
  } else if (order == "DESCEND") {
    sort_order = RangeRequest::DESCEND;
  } else if (!order.empty()) {
    return Failure{kExitBadFeature, "bad sort order " + flags.order};
  }
  RangeRequest::SortTarget sort_target = RangeRequest::KEY;
  if (target == "CREATE") {
    sort_target = RangeRequest::CREATE;
  } else if (target == "MODIFY") {
    sort_target = RangeRequest::MOD;
  } else if (target == "VALUE") {
    sort_target = RangeRequest::VALUE;
  } else if (target == "VERSION") {
    sort_target = RangeRequest::VERSION;
  } else if (target != "KEY" && !target.empty()) {
    return Failure{kExitBadFeature, "bad sort target " + flags.sort_by};
  }
  // clientv3.WithSort: ascending by key is the server's default order.
  if (sort_target == RangeRequest::KEY && sort_order == RangeRequest::ASCEND) {
    sort_order = RangeRequest::NONE;
  }
  request->set_sort_order(sort_order);
  request->set_sort_target(sort_target);
  return std::nullopt;
}

// Sets key and range_end for --prefix/--from-key/range_end, as etcdctl's get and del do.
std::optional<Failure> ApplyRange(const std::vector<std::string>& args, bool prefix, bool from_key,
                                  std::string* key, std::string* range_end) {
  if (prefix && from_key) {
    return Failure{kExitBadArgs,
                   "`--prefix` and `--from-key` cannot be set at the same time, choose one"};
  }
  *key = args[0];
  if (args.size() > 1) {
    if (prefix || from_key) {
      return Failure{kExitBadArgs,
                     "too many arguments, only accept one argument when `--prefix` or "
                     "`--from-key` is set"};
    }
    *range_end = args[1];
  }
  if (prefix) {
    if (key->empty()) {
      *key = std::string(1, '\0');
      *range_end = std::string(1, '\0');
    } else {
      *range_end = PrefixRangeEnd(*key);
    }
  }
  if (from_key) {
    if (key->empty()) *key = std::string(1, '\0');
    *range_end = std::string(1, '\0');
  }
  return std::nullopt;
}

std::optional<Failure> BuildGet(const GetFlags& flags, const Printer& printer,
                                etcdserverpb::RangeRequest* request) {
  if (flags.print_value_only && printer.json()) {
    return Failure{kExitBadArgs, "print-value-only is only for `--write-out=simple`"};
  }
  if (flags.args.empty()) {
    return Failure{kExitBadArgs,
                   "get command needs one argument as key and an optional argument as range_end"};
  }
  if (flags.consistency == "s") {
    request->set_serializable(true);
  } else if (flags.consistency != "l") {
    return Failure{kExitBadFeature, "unknown consistency flag " + GoQuote(flags.consistency)};
  }
  std::string key, range_end;
  if (auto failure = ApplyRange(flags.args, flags.prefix, flags.from_key, &key, &range_end)) {
    return failure;
  }
  request->set_key(key);
  request->set_range_end(range_end);
  request->set_limit(flags.limit);
  if (flags.rev > 0) request->set_revision(flags.rev);
  if (auto failure = ApplySort(flags, request)) return failure;
  request->set_keys_only(flags.keys_only);
  request->set_count_only(flags.count_only);
  return std::nullopt;
}

std::optional<Failure> BuildDel(const DelFlags& flags, etcdserverpb::DeleteRangeRequest* request) {
  if (flags.args.empty() || flags.args.size() > 2) {
    return Failure{kExitBadArgs,
                   "del command needs one argument as key and an optional argument as range_end"};
  }
  std::string key, range_end;
  if (auto failure = ApplyRange(flags.args, flags.prefix, flags.from_key, &key, &range_end)) {
    return failure;
  }
  request->set_key(key);
  request->set_range_end(range_end);
  request->set_prev_kv(flags.prev_kv);
  return std::nullopt;
}

int Fail(const Failure& failure) { return ExitWithError(failure.exit_code, failure.message); }

int RunPut(const GlobalOptions& options, const PutFlags& flags) {
  etcdserverpb::PutRequest request;
  if (auto failure = BuildPut(flags, /*stdin_allowed=*/true, &request)) return Fail(*failure);
  Connection connection(options, options.endpoints);
  etcdserverpb::PutResponse response;
  grpc::Status status = connection.kv().Put(connection.CommandContext().get(), request, &response);
  if (!status.ok()) return ExitWithError(kExitError, ErrorText(status));
  Printer(options.output, options.hex).Put(response);
  return kExitSuccess;
}

int RunGet(const GlobalOptions& options, const GetFlags& flags) {
  Printer printer(options.output, options.hex);
  etcdserverpb::RangeRequest request;
  if (auto failure = BuildGet(flags, printer, &request)) return Fail(*failure);
  printer.set_value_only(flags.print_value_only);
  printer.set_count_only(flags.count_only);
  Connection connection(options, options.endpoints);
  etcdserverpb::RangeResponse response;
  grpc::Status status =
      connection.kv().Range(connection.CommandContext().get(), request, &response);
  if (!status.ok()) return ExitWithError(kExitError, ErrorText(status));
  printer.Get(response);
  return kExitSuccess;
}

int RunDel(const GlobalOptions& options, const DelFlags& flags) {
  etcdserverpb::DeleteRangeRequest request;
  if (auto failure = BuildDel(flags, &request)) return Fail(*failure);
  Connection connection(options, options.endpoints);
  etcdserverpb::DeleteRangeResponse response;
  grpc::Status status =
      connection.kv().DeleteRange(connection.CommandContext().get(), request, &response);
  if (!status.ok()) return ExitWithError(kExitError, ErrorText(status));
  Printer(options.output, options.hex).Delete(response);
  return kExitSuccess;
}

// ---- txn ----

// One line of a txn section, without its newline; a Failure "EOF" (exit 3) at the end of
// input, as etcdctl's bufio.ReadString('\n').
std::optional<Failure> ReadTrimmedLine(std::string* line) {
  line->clear();
  int c;
  while ((c = std::getchar()) != EOF && c != '\n') line->push_back(static_cast<char>(c));
  if (c == EOF) return Failure{kExitInvalidInput, "EOF"};
  size_t begin = line->find_first_not_of(" \t\r\v\f");
  size_t end = line->find_last_not_of(" \t\r\v\f");
  *line = begin == std::string::npos ? "" : line->substr(begin, end - begin + 1);
  return std::nullopt;
}

std::optional<Failure> ParseCompare(const std::string& line, etcdserverpb::Compare* compare) {
  using etcdserverpb::Compare;
  size_t paren = line.find('(');
  if (paren == std::string::npos)
    return Failure{kExitInvalidInput, "malformed comparison: " + line};
  std::string target = line.substr(0, paren);
  std::string_view rest = std::string_view(line).substr(paren + 1);
  auto skip_spaces = [&rest] {
    while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
  };
  auto key = ConsumeGoQuoted(&rest);
  std::string op;
  std::optional<std::string> value;
  if (key && !rest.empty() && rest.front() == ')') {
    rest.remove_prefix(1);
    skip_spaces();
    while (!rest.empty() && rest.front() != ' ') {
      op.push_back(rest.front());
      rest.remove_prefix(1);
    }
    skip_spaces();
    value = ConsumeGoQuoted(&rest);
  }
  if (!key || op.empty() || !value) {
    return Failure{kExitInvalidInput, "malformed comparison: " + line + "; got " + target + "(" +
                                          GoQuote(key.value_or("")) + ") " + op + " " +
                                          GoQuote(value.value_or(""))};
  }
  compare->set_key(*key);
  if (op == "=") {
    compare->set_result(Compare::EQUAL);
  } else if (op == "!=") {
    compare->set_result(Compare::NOT_EQUAL);
  } else if (op == ">") {
    compare->set_result(Compare::GREATER);
  } else if (op == "<") {
    compare->set_result(Compare::LESS);
  } else {
    return Failure{kExitInvalidInput, "malformed comparison: " + line + " (unknown op " + op + ")"};
  }
  std::string error;
  std::optional<int64_t> number;
  if (target == "ver" || target == "version") {
    compare->set_target(Compare::VERSION);
    if ((number = ParseGoInt(*value, 10, &error))) compare->set_version(*number);
  } else if (target == "c" || target == "create") {
    compare->set_target(Compare::CREATE);
    if ((number = ParseGoInt(*value, 10, &error))) compare->set_create_revision(*number);
  } else if (target == "m" || target == "mod") {
    compare->set_target(Compare::MOD);
    if ((number = ParseGoInt(*value, 10, &error))) compare->set_mod_revision(*number);
  } else if (target == "val" || target == "value") {
    compare->set_target(Compare::VALUE);
    compare->set_value(*value);
  } else if (target == "lease") {
    compare->set_target(Compare::LEASE);
    if ((number = ParseGoInt(*value, 16, &error))) compare->set_lease(*number);
  } else {
    return Failure{kExitInvalidInput,
                   "malformed comparison: " + line + " (unknown target " + target + ")"};
  }
  if (!error.empty()) {
    return Failure{kExitInvalidInput, "invalid txn compare request: " + line + " (" + error + ")"};
  }
  return std::nullopt;
}

// One request line ("put k v", "get k --prefix", "del k"), parsed with the same flags as
// the top-level commands, as etcdctl does.
std::optional<Failure> ParseRequestOp(const std::string& line, const Printer& printer,
                                      etcdserverpb::RequestOp* op) {
  auto words = Argify(line);
  if (!words || words->size() < 2) {
    return Failure{kExitInvalidInput, "invalid txn compare request: " + line};
  }
  CLI::App parser;
  PutFlags put_flags;
  GetFlags get_flags;
  DelFlags del_flags;
  CLI::App* put = AddPut(&parser, &put_flags);
  CLI::App* get = AddGet(&parser, &get_flags);
  CLI::App* del = AddDel(&parser, &del_flags);
  parser.require_subcommand(1);
  std::vector<std::string> reversed(words->rbegin(), words->rend());
  try {
    parser.parse(reversed);
  } catch (const CLI::ParseError&) {
    return Failure{kExitInvalidInput, "invalid txn request: " + line};
  }
  if (put->parsed()) return BuildPut(put_flags, /*stdin_allowed=*/false, op->mutable_request_put());
  if (get->parsed()) return BuildGet(get_flags, printer, op->mutable_request_range());
  if (del->parsed()) return BuildDel(del_flags, op->mutable_request_delete_range());
  return Failure{kExitInvalidInput, "invalid txn request: " + line};
}

std::optional<Failure> ReadOps(const Printer& printer,
                               google::protobuf::RepeatedPtrField<etcdserverpb::RequestOp>* ops) {
  std::string line;
  while (true) {
    if (auto failure = ReadTrimmedLine(&line)) return failure;
    if (line.empty()) return std::nullopt;
    if (auto failure = ParseRequestOp(line, printer, ops->Add())) return failure;
  }
}

int RunTxn(const GlobalOptions& options, bool interactive, const std::vector<std::string>& args) {
  if (!args.empty()) return ExitWithError(kExitBadArgs, "txn command does not accept argument");
  Printer printer(options.output, options.hex);
  auto prompt = [interactive](const char* text) {
    if (interactive) std::printf("%s\n", text);
  };
  etcdserverpb::TxnRequest request;
  prompt("compares:");
  std::string line;
  while (true) {
    if (auto failure = ReadTrimmedLine(&line)) return Fail(*failure);
    if (line.empty()) break;
    if (auto failure = ParseCompare(line, request.add_compare())) return Fail(*failure);
  }
  prompt("success requests (get, put, del):");
  if (auto failure = ReadOps(printer, request.mutable_success())) return Fail(*failure);
  prompt("failure requests (get, put, del):");
  if (auto failure = ReadOps(printer, request.mutable_failure())) return Fail(*failure);
  Connection connection(options, options.endpoints);
  etcdserverpb::TxnResponse response;
  grpc::Status status = connection.kv().Txn(connection.CommandContext().get(), request, &response);
  if (!status.ok()) return ExitWithError(kExitError, ErrorText(status));
  printer.Txn(response);
  return kExitSuccess;
}

int RunCompaction(const GlobalOptions& options, const std::vector<std::string>& args,
                  bool physical) {
  if (args.size() != 1) return ExitWithError(kExitBadArgs, "compaction command needs 1 argument");
  std::string error;
  auto revision = ParseGoInt(args[0], 10, &error);
  if (!revision) return ExitWithError(kExitError, error);
  etcdserverpb::CompactionRequest request;
  request.set_revision(*revision);
  request.set_physical(physical);
  Connection connection(options, options.endpoints);
  etcdserverpb::CompactionResponse response;
  grpc::Status status =
      connection.kv().Compact(connection.CommandContext().get(), request, &response);
  if (!status.ok()) return ExitWithError(kExitError, ErrorText(status));
  std::printf("compacted revision %lld\n", static_cast<long long>(*revision));
  return kExitSuccess;
}

}  // namespace

std::string PrefixRangeEnd(const std::string& key) {
  std::string end = key;
  while (!end.empty()) {
    unsigned char last = static_cast<unsigned char>(end.back());
    if (last < 0xff) {
      end.back() = static_cast<char>(last + 1);
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');
}

void AddKvCommands(CLI::App* app, Invocation* invocation) {
  auto put_flags = std::make_shared<PutFlags>();
  AddPut(app, put_flags.get())->final_callback([invocation, put_flags] {
    invocation->run = [put_flags](const GlobalOptions& o) { return RunPut(o, *put_flags); };
  });
  auto get_flags = std::make_shared<GetFlags>();
  AddGet(app, get_flags.get())->final_callback([invocation, get_flags] {
    invocation->run = [get_flags](const GlobalOptions& o) { return RunGet(o, *get_flags); };
  });
  auto del_flags = std::make_shared<DelFlags>();
  AddDel(app, del_flags.get())->final_callback([invocation, del_flags] {
    invocation->run = [del_flags](const GlobalOptions& o) { return RunDel(o, *del_flags); };
  });

  struct TxnFlags {
    bool interactive = false;
    std::vector<std::string> args;
  };
  auto txn_flags = std::make_shared<TxnFlags>();
  CLI::App* txn = app->add_subcommand("txn", "Txn processes all the requests in one transaction");
  txn->add_flag("-i,--interactive", txn_flags->interactive,
                "Input transaction in interactive mode");
  txn->add_option("args", txn_flags->args);
  txn->final_callback([invocation, txn_flags] {
    invocation->run = [txn_flags](const GlobalOptions& o) {
      return RunTxn(o, txn_flags->interactive, txn_flags->args);
    };
  });

  struct CompactionFlags {
    bool physical = false;
    std::vector<std::string> args;
  };
  auto compaction_flags = std::make_shared<CompactionFlags>();
  CLI::App* compaction = app->add_subcommand("compaction", "Compacts the event history in etcd");
  compaction->add_flag("--physical", compaction_flags->physical,
                       "'true' to wait for compaction to physically remove all old revisions");
  compaction->add_option("args", compaction_flags->args, "<revision>");
  compaction->final_callback([invocation, compaction_flags] {
    invocation->run = [compaction_flags](const GlobalOptions& o) {
      return RunCompaction(o, compaction_flags->args, compaction_flags->physical);
    };
  });
}

}  // namespace cairnctl
