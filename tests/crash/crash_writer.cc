// crash_writer: the child process of crash_test. Opens a Store and writes from several
// threads until it is killed. After each acknowledged write it appends one line to the ack
// file with a single write(2) on an O_APPEND descriptor, so the line survives SIGKILL (the
// page cache outlives the process) and a line is never torn.
//
// Ack lines, each naming the run, the thread and the operation's sequence number so that the
// parent can tell which operation was in flight when the kill landed:
//   P <run> <thread> <seq> <key> <value> <revision>   put acknowledged
//   D <run> <thread> <seq> <key> <revision>           delete of the thread's newest acked put
//   C <run> <thread> <seq> <counter key> <value>      txn increment: the counter now holds value
// Operation seq of a thread: seq % 10 == 9 increments the thread's counter; otherwise
// seq % 7 == 6 deletes the thread's newest acknowledged, not yet deleted put (when there is
// one); otherwise it puts a new key.
//
// Usage: crash_writer <dir> <ack file> <run id> <threads> <checkpoint interval entries>
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "cairn/store.h"

namespace {

void Ack(int fd, const std::string& line) {
  ssize_t written = ::write(fd, line.data(), line.size());
  if (written != static_cast<ssize_t>(line.size())) {
    std::perror("crash_writer: ack write");
    std::_Exit(3);
  }
}

void Fatal(const cairn::Status& status, const char* what) {
  std::fprintf(stderr, "crash_writer: %s: %s\n", what, status.ToString().c_str());
  std::_Exit(2);
}

// Increments `key` (a decimal counter) with a compare-and-swap txn on its mod_revision.
int64_t Increment(cairn::Store* store, const std::string& key) {
  while (true) {
    auto current = store->Get(key);
    if (!current.ok()) Fatal(current.status(), "get counter");
    int64_t value = current->has_value() ? std::stoll((*current)->value()) : 0;
    int64_t mod = current->has_value() ? (*current)->mod_revision() : 0;
    etcdserverpb::TxnRequest txn;
    auto* compare = txn.add_compare();
    compare->set_key(key);
    compare->set_target(etcdserverpb::Compare::MOD);
    compare->set_result(etcdserverpb::Compare::EQUAL);
    compare->set_mod_revision(mod);
    auto* put = txn.add_success()->mutable_request_put();
    put->set_key(key);
    put->set_value(std::to_string(value + 1));
    auto response = store->Txn(txn);
    if (!response.ok()) Fatal(response.status(), "txn");
    if (response->succeeded()) return value + 1;
  }
}

void Writer(cairn::Store* store, int ack_fd, const std::string& run, int thread) {
  const std::string prefix = "r" + run + "/t" + std::to_string(thread) + "/";
  const std::string who = run + " " + std::to_string(thread) + " ";
  const std::string counter = "counter/t" + std::to_string(thread);
  std::vector<std::string> acked;
  for (uint64_t seq = 0;; ++seq) {
    if (seq % 10 == 9) {
      int64_t value = Increment(store, counter);
      Ack(ack_fd,
          "C " + who + std::to_string(seq) + " " + counter + " " + std::to_string(value) + "\n");
    } else if (seq % 7 == 6 && !acked.empty()) {
      std::string key = acked.back();
      acked.pop_back();
      etcdserverpb::DeleteRangeRequest request;
      request.set_key(key);
      auto deleted = store->DeleteRange(request);
      if (!deleted.ok()) Fatal(deleted.status(), "delete");
      if (deleted->deleted() != 1) {
        std::fprintf(stderr, "crash_writer: delete of acked key %s deleted %lld\n", key.c_str(),
                     static_cast<long long>(deleted->deleted()));
        std::_Exit(4);
      }
      Ack(ack_fd, "D " + who + std::to_string(seq) + " " + key + " " +
                      std::to_string(deleted->header().revision()) + "\n");
    } else {
      std::string key = prefix + std::to_string(seq);
      std::string value = "v" + std::to_string(seq * 31 + thread);
      auto rev = store->Put(key, value);
      if (!rev.ok()) Fatal(rev.status(), "put");
      acked.push_back(key);
      Ack(ack_fd, "P " + who + std::to_string(seq) + " " + key + " " + value + " " +
                      std::to_string(*rev) + "\n");
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 6) {
    std::fprintf(stderr, "usage: %s <dir> <ack file> <run id> <threads> <checkpoint entries>\n",
                 argv[0]);
    return 1;
  }
  cairn::StoreOptions options;
  options.dir = argv[1];
  options.block_cache_bytes = 8 << 20;
  options.wal_segment_size_bytes = 256 << 10;
  options.checkpoint_interval_entries = std::strtoull(argv[5], nullptr, 10);
  auto store = cairn::Store::Open(options);
  if (!store.ok()) Fatal(store.status(), "open");
  int ack_fd = ::open(argv[2], O_WRONLY | O_APPEND | O_CREAT, 0644);
  if (ack_fd < 0) {
    std::perror("crash_writer: open ack file");
    return 1;
  }
  Ack(ack_fd, "# open revision " + std::to_string((*store)->CurrentRevision()) + "\n");
  int threads = std::atoi(argv[4]);
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back(Writer, store->get(), ack_fd, std::string(argv[3]), t);
  }
  for (auto& worker : workers) worker.join();  // never returns: killed by the parent
  return 0;
}
