// ClusterHarness: a cluster of real cairnd processes for multi-process tests. It starts N
// members with --initial-cluster (each with its own data directory and log file under one
// directory), injects process faults by signal (SIGKILL, SIGSTOP/SIGCONT), restarts members on
// their data directories, adds and removes members (etcd's MemberAdd/MemberRemove), and asks
// the members over the etcd Maintenance API who leads and whether their key-value states agree
// (HashKV).
//
// Two networks: by default every member listens on loopback (free ports picked at start). With
// ClusterOptions::network_namespaces each member runs in its own network namespace
// (NetworkNamespaces: a client link to the test's namespace, a peer link on a bridge), and
// Partition()/Heal() split and rejoin the members' peer network while the test still reaches
// every client port.
//
// Members are children of the thread that started them and die with it (PR_SET_PDEATHSIG), so
// a failing or crashing test leaves no server behind; the destructor kills them too.
//
// Thread-safety: not thread-safe; drive it from the test's main thread. ClientAddress() and
// Channel() may be called from any thread once the harness is started.
#pragma once

#include <grpcpp/grpcpp.h>
#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tests/cluster/network_namespaces.h"
#include "tests/diff/child_process.h"

namespace cairn::cluster_test {

struct ClusterOptions {
  // Path of the cairnd binary.
  std::string cairnd_path;
  // Directory that receives the members' data directories (m<i>/) and logs (m<i>.log).
  std::string dir;
  // Default: 3.
  int members = 3;
  // Default: 50 ms heartbeat, 500 ms election timeout (fast failover on loopback).
  int heartbeat_interval_ms = 50;
  int election_timeout_ms = 500;
  // Members prepared (name, addresses, data directory) but not started: AddMember() joins them
  // to the running cluster. They take indexes members .. members + spare_members - 1.
  // Default: 0.
  int spare_members = 0;
  // Run every member in its own network namespace (see NetworkNamespaces; needs root). Start()
  // fails when the namespaces cannot be made. Default: false (loopback).
  bool network_namespaces = false;
  // More cairnd flags for every member (e.g. --snapshot-count 200). Default: none.
  std::vector<std::string> extra_flags;
};

// One member's HashKV answer.
struct MemberHash {
  int64_t revision = 0;  // The revision the hash covers.
  uint32_t hash = 0;
  bool operator==(const MemberHash&) const = default;
};

// Builds a channel to an IPv4 "address:port" (loopback or a member's namespace). A channel whose
// first connection attempts failed (the member was not listening yet, or was down) waits out gRPC's
// reconnect backoff, which here grew to 5-10 s whatever the backoff arguments said: callers that
// must see a member as soon as it listens take a fresh channel instead of keeping one.
std::shared_ptr<grpc::Channel> MakeLoopbackChannel(const std::string& address);

class ClusterHarness {
 public:
  explicit ClusterHarness(ClusterOptions options);
  ~ClusterHarness();
  ClusterHarness(const ClusterHarness&) = delete;
  ClusterHarness& operator=(const ClusterHarness&) = delete;

  // Picks ports and starts every member. Returns false (and says why in *error) when a port
  // or a process cannot be had.
  bool Start(std::string* error);

  // Every member slot, spares included; constant after Start().
  int size() const { return static_cast<int>(members_.size()); }
  // "<ip>:<client port>" of member i.
  const std::string& ClientAddress(int i) const { return members_[i].client_address; }
  // A fresh channel to member i's client port (see MakeLoopbackChannel for why fresh).
  std::shared_ptr<grpc::Channel> Channel(int i) const {
    return MakeLoopbackChannel(members_[i].client_address);
  }

  // True while member i's process runs (stopped counts as running).
  bool Running(int i);
  bool Stopped(int i) const { return members_[i].stopped; }
  // SIGKILL and reap; no-op when not running.
  void Kill(int i);
  // SIGSTOP / SIGCONT. REQUIRES: member i runs.
  void Stop(int i);
  void Continue(int i);
  // Starts member i again on its data directory. REQUIRES: member i is not running.
  bool Restart(int i, std::string* error);

  // Whether member i belongs to the cluster (initial, or added and not removed).
  bool InCluster(int i) const { return members_[i].in_cluster; }
  // Members in the cluster whose process runs and is not stopped, in index order.
  std::vector<int> ActiveMembers();
  // Joins spare member i: MemberAdd of its peer URL through a running member, then starts it
  // with --initial-cluster-state existing. REQUIRES: i is not in the cluster and not running.
  bool AddMember(int i, std::string* error);
  // MemberRemove of member i (by its Raft id) through another running member, then kills it.
  // REQUIRES: i is in the cluster and has answered MemberId() before.
  bool RemoveMember(int i, std::string* error);

  // Network partitions. REQUIRES: options().network_namespaces.
  // Side k's members can exchange peer traffic only among themselves; members in no side are
  // with sides[0]. Client ports stay reachable from the test.
  bool Partition(const std::vector<std::vector<int>>& sides, std::string* error);
  // Every member's peer link back on one network.
  bool Heal(std::string* error);
  // Member i alone on its side of the network.
  bool Isolate(int i, std::string* error);

  // Member i's Raft id as it reports it (Status header member_id), cached after the first
  // answer; nullopt when it does not answer.
  std::optional<uint64_t> MemberId(int i);
  // The index of a running, not stopped member that says it leads (Status: leader == its own
  // id; the highest term wins when two say so), or -1.
  int LeaderIndex();
  // Polls LeaderIndex() until one leads; -1 after timeout_ms.
  int WaitForLeader(int timeout_ms);
  // One line per member: its process state and its Status answer (id, leader, term, indexes)
  // or the error, for failure messages.
  std::string DescribeMembers();

  // HashKV of every running, not stopped member at a revision they all have (the smallest
  // current revision among them). Returns false (and says which member failed in *error)
  // when one does not answer.
  bool HashKvAll(std::map<int, MemberHash>* hashes, std::string* error);
  // Polls until every running member answers HashKV(0) with the same revision and hash;
  // false after timeout_ms, with the last answers in *error.
  bool WaitConverged(int timeout_ms, std::string* error);

  // The last bytes_max bytes of every member's log, headed by the member's name.
  std::string LogTails(size_t bytes_max = 2500) const;
  const ClusterOptions& options() const { return options_; }

 private:
  struct Member {
    std::string name;
    std::string client_address;
    std::string peer_url;
    std::string data_dir;
    std::string log_path;
    std::unique_ptr<diff::ChildProcess> process = std::make_unique<diff::ChildProcess>();
    bool stopped = false;
    bool in_cluster = false;
    bool joined_existing =
        false;  // Added by AddMember: starts with --initial-cluster-state existing.
    std::optional<uint64_t> id;
  };

  bool Spawn(int i, std::string* error);
  std::string InitialCluster() const;

  const ClusterOptions options_;
  std::unique_ptr<NetworkNamespaces> network_;  // Outlives the members (declared first).
  std::vector<Member> members_;
  std::string last_poll_;  // LeaderIndex()'s answers, for DescribeMembers().
};

}  // namespace cairn::cluster_test
