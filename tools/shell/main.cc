// cairn-shell: an interactive shell over the embedded store, with etcdctl-like commands.
// It reads commands from standard input (a terminal or a pipe), one per line:
//
//   put <key> <value>                 prints OK and the new revision
//   get <key> [--prefix|--from-key] [--rev N] [--limit N] [--keys-only] [--count-only]
//   del <key> [--prefix|--from-key]   prints the number of keys deleted
//   compact <revision>
//   hash [revision]                   HashKV
//   status                            revisions
//   help, quit
//
// Arguments may be quoted with "..." (backslash escapes the next character).
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "cairn/store.h"

namespace {

std::vector<std::string> Split(const std::string& line) {
  std::vector<std::string> words;
  std::string word;
  bool in_word = false, quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    char c = line[i];
    if (c == '\\' && i + 1 < line.size()) {
      word += line[++i];
      in_word = true;
    } else if (c == '"') {
      quoted = !quoted;
      in_word = true;
    } else if (!quoted && (c == ' ' || c == '\t')) {
      if (in_word) words.push_back(word);
      word.clear();
      in_word = false;
    } else {
      word += c;
      in_word = true;
    }
  }
  if (in_word) words.push_back(word);
  return words;
}

// etcd's prefix range end: the key with its last byte incremented (trailing 0xff dropped).
std::string PrefixEnd(std::string key) {
  while (!key.empty()) {
    if (static_cast<unsigned char>(key.back()) < 0xff) {
      key.back() = static_cast<char>(key.back() + 1);
      return key;
    }
    key.pop_back();
  }
  return std::string(1, '\0');
}

struct RangeFlags {
  std::string key;
  std::string range_end;
  int64_t revision = 0, limit = 0;
  bool keys_only = false, count_only = false;
  std::string error;
};

RangeFlags ParseRangeFlags(const std::vector<std::string>& w) {
  RangeFlags f;
  f.key = w[1];
  for (size_t i = 2; i < w.size(); ++i) {
    if (w[i] == "--prefix") {
      f.range_end = PrefixEnd(w[1]);
    } else if (w[i] == "--from-key") {
      f.range_end = std::string(1, '\0');
    } else if (w[i] == "--keys-only") {
      f.keys_only = true;
    } else if (w[i] == "--count-only") {
      f.count_only = true;
    } else if ((w[i] == "--rev" || w[i] == "--limit") && i + 1 < w.size()) {
      (w[i] == "--rev" ? f.revision : f.limit) = std::atoll(w[i + 1].c_str());
      ++i;
    } else {
      f.error = "unknown flag " + w[i];
    }
  }
  // As etcdctl: an empty key with --prefix or --from-key means every key.
  if (f.key.empty() && !f.range_end.empty()) {
    f.key = std::string(1, '\0');
    f.range_end = std::string(1, '\0');
  }
  return f;
}

void PrintError(const cairn::Status& status) {
  std::printf("Error: %s\n", std::string(status.message()).c_str());
}

void Get(cairn::Store* store, const std::vector<std::string>& w) {
  RangeFlags f = ParseRangeFlags(w);
  if (!f.error.empty()) return (void)std::printf("Error: %s\n", f.error.c_str());
  etcdserverpb::RangeRequest request;
  request.set_key(f.key);
  request.set_range_end(f.range_end);
  request.set_revision(f.revision);
  request.set_limit(f.limit);
  request.set_keys_only(f.keys_only);
  request.set_count_only(f.count_only);
  auto response = store->Range(request);
  if (!response.ok()) return PrintError(response.status());
  if (f.count_only) return (void)std::printf("%lld\n", static_cast<long long>(response->count()));
  for (const auto& kv : response->kvs()) {
    std::printf("%s\n", kv.key().c_str());
    if (!f.keys_only) std::printf("%s\n", kv.value().c_str());
  }
}

void Execute(cairn::Store* store, const std::vector<std::string>& w) {
  const std::string& cmd = w[0];
  if (cmd == "put" && w.size() == 3) {
    auto rev = store->Put(w[1], w[2]);
    if (!rev.ok()) return PrintError(rev.status());
    std::printf("OK (revision %lld)\n", static_cast<long long>(*rev));
  } else if (cmd == "get" && w.size() >= 2) {
    Get(store, w);
  } else if (cmd == "del" && w.size() >= 2) {
    RangeFlags f = ParseRangeFlags(w);
    if (!f.error.empty()) return (void)std::printf("Error: %s\n", f.error.c_str());
    auto deleted = store->Delete(f.key, f.range_end);
    if (!deleted.ok()) return PrintError(deleted.status());
    std::printf("%lld\n", static_cast<long long>(*deleted));
  } else if (cmd == "compact" && w.size() == 2) {
    auto rev = store->Compact(std::atoll(w[1].c_str()));
    if (!rev.ok()) return PrintError(rev.status());
    std::printf("compacted revision %s\n", w[1].c_str());
  } else if (cmd == "hash" && w.size() <= 2) {
    auto hash = store->HashKV(w.size() == 2 ? std::atoll(w[1].c_str()) : 0);
    if (!hash.ok()) return PrintError(hash.status());
    std::printf("hash %u at revision %lld (compacted %lld)\n", hash->hash(),
                static_cast<long long>(hash->hash_revision()),
                static_cast<long long>(hash->compact_revision()));
  } else if (cmd == "status") {
    std::printf("revision %lld, compacted revision %lld\n",
                static_cast<long long>(store->CurrentRevision()),
                static_cast<long long>(store->CompactedRevision()));
  } else if (cmd == "help") {
    std::printf(
        "put <key> <value>\n"
        "get <key> [--prefix|--from-key] [--rev N] [--limit N] [--keys-only] [--count-only]\n"
        "del <key> [--prefix|--from-key]\ncompact <revision>\nhash [revision]\nstatus\nquit\n");
  } else {
    std::printf("Error: unknown command or wrong arguments (type help)\n");
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir = "./cairn-data";
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--data-dir") == 0 && i + 1 < argc) {
      dir = argv[++i];
    } else {
      std::fprintf(stderr, "usage: %s [--data-dir DIR]\n", argv[0]);
      return 1;
    }
  }
  cairn::StoreOptions options;
  options.dir = dir;
  auto store = cairn::Store::Open(options);
  if (!store.ok()) {
    std::fprintf(stderr, "cairn-shell: cannot open %s: %s\n", dir.c_str(),
                 store.status().ToString().c_str());
    return 1;
  }
  const bool interactive = ::isatty(STDIN_FILENO);
  if (interactive) {
    std::printf("Cairn embedded store in %s (revision %lld). Type help.\n", dir.c_str(),
                static_cast<long long>((*store)->CurrentRevision()));
  }
  std::string line;
  while (true) {
    if (interactive) std::printf("cairn> ");
    std::fflush(stdout);
    if (!std::getline(std::cin, line)) break;
    auto words = Split(line);
    if (words.empty()) continue;
    if (words[0] == "quit" || words[0] == "exit") break;
    Execute(store->get(), words);
  }
  cairn::Status closed = (*store)->Close();
  if (!closed.ok()) {
    std::fprintf(stderr, "cairn-shell: close: %s\n", closed.ToString().c_str());
    return 1;
  }
  return 0;
}
