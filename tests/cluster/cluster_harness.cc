#include "tests/cluster/cluster_harness.h"

#include <signal.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "etcdserverpb/rpc.grpc.pb.h"

namespace cairn::cluster_test {
namespace {

// Maintenance calls to a live member on loopback answer in milliseconds; a member that does
// not answer within this is treated as down for the poll.
constexpr int kMaintenanceDeadlineMs = 500;
constexpr int kPollIntervalMs = 50;

std::chrono::system_clock::time_point DeadlineIn(int ms) {
  return std::chrono::system_clock::now() + std::chrono::milliseconds(ms);
}

std::chrono::steady_clock::time_point SteadyIn(int ms) {
  return std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
}

}  // namespace

std::shared_ptr<grpc::Channel> MakeLoopbackChannel(const std::string& address) {
  grpc::ChannelArguments arguments;
  arguments.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  arguments.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 300);
  // A channel per address, not shared through gRPC's global subchannel pool: a test's
  // channels must not keep each other's broken connections.
  arguments.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel("ipv4:" + address, grpc::InsecureChannelCredentials(),
                                   arguments);
}

ClusterHarness::ClusterHarness(ClusterOptions options) : options_(std::move(options)) {}

ClusterHarness::~ClusterHarness() {
  for (int i = 0; i < size(); ++i) Kill(i);
}

std::string ClusterHarness::InitialCluster() const {
  std::string initial;
  for (const Member& member : members_) {
    if (!member.in_cluster) continue;
    initial += (initial.empty() ? "" : ",") + member.name + "=" + member.peer_url;
  }
  return initial;
}

bool ClusterHarness::Start(std::string* error) {
  const int slots = options_.members + options_.spare_members;
  members_.resize(slots);
  if (options_.network_namespaces) {
    // Each member has its own namespace, so every one can listen on etcd's usual ports.
    NetworkNamespaces::RemoveLeftovers();
    network_ = std::make_unique<NetworkNamespaces>();
    if (!network_->Create(slots, error)) return false;
    for (int i = 0; i < slots; ++i) {
      members_[i].client_address = network_->ClientIp(i) + ":2379";
      members_[i].peer_url = "http://" + network_->PeerIp(i) + ":2380";
    }
  } else {
    // Two ports per member, all picked before any member starts: the peer URLs go into every
    // member's --initial-cluster. Holding them all at once is not possible (the members bind
    // them), so distinct picks are enforced instead.
    std::vector<int> ports;
    while (ports.size() < 2 * static_cast<size_t>(slots)) {
      const int port = diff::FreeLoopbackPort();
      if (port <= 0) {
        *error = "no free loopback port";
        return false;
      }
      if (std::find(ports.begin(), ports.end(), port) == ports.end()) ports.push_back(port);
    }
    for (int i = 0; i < slots; ++i) {
      members_[i].client_address = "127.0.0.1:" + std::to_string(ports[2 * i]);
      members_[i].peer_url = "http://127.0.0.1:" + std::to_string(ports[2 * i + 1]);
    }
  }
  for (int i = 0; i < slots; ++i) {
    Member& member = members_[i];
    member.name = "m" + std::to_string(i);
    member.data_dir = options_.dir + "/" + member.name;
    member.log_path = options_.dir + "/" + member.name + ".log";
    member.in_cluster = i < options_.members;
  }
  for (int i = 0; i < options_.members; ++i) {
    if (!Spawn(i, error)) return false;
  }
  return true;
}

bool ClusterHarness::Spawn(int i, std::string* error) {
  Member& member = members_[i];
  const std::string client_url = "http://" + member.client_address;
  std::vector<std::string> argv;
  if (network_ != nullptr) argv = network_->ExecPrefix(i);
  for (const std::string& argument : {
           options_.cairnd_path,
           std::string("--name"),
           member.name,
           std::string("--data-dir"),
           member.data_dir,
           std::string("--initial-cluster"),
           InitialCluster(),
           std::string("--initial-cluster-state"),
           std::string(member.joined_existing ? "existing" : "new"),
           std::string("--listen-client-urls"),
           client_url,
           std::string("--advertise-client-urls"),
           client_url,
           std::string("--listen-peer-urls"),
           member.peer_url,
           std::string("--initial-advertise-peer-urls"),
           member.peer_url,
           std::string("--heartbeat-interval"),
           std::to_string(options_.heartbeat_interval_ms),
           std::string("--election-timeout"),
           std::to_string(options_.election_timeout_ms),
           std::string("--listen-metrics-urls"),
           std::string(""),
       }) {
    argv.push_back(argument);
  }
  argv.insert(argv.end(), options_.extra_flags.begin(), options_.extra_flags.end());
  if (!member.process->Start(argv, member.log_path, error)) return false;
  member.stopped = false;
  return true;
}

std::vector<int> ClusterHarness::ActiveMembers() {
  std::vector<int> active;
  for (int i = 0; i < size(); ++i) {
    if (members_[i].in_cluster && Running(i) && !members_[i].stopped) active.push_back(i);
  }
  return active;
}

namespace {

// Membership changes wait for a commit (and the leader's check that the change is safe); on a
// healthy loopback cluster that is milliseconds, so this leaves room for an election.
constexpr int kMembershipDeadlineMs = 5000;

}  // namespace

bool ClusterHarness::AddMember(int i, std::string* error) {
  Member& member = members_[i];
  if (member.in_cluster || Running(i)) {
    *error = member.name + " is already in the cluster or running";
    return false;
  }
  std::string failures;
  bool added = false;
  for (int via : ActiveMembers()) {
    auto stub = etcdserverpb::Cluster::NewStub(Channel(via));
    grpc::ClientContext context;
    context.set_deadline(DeadlineIn(kMembershipDeadlineMs));
    etcdserverpb::MemberAddRequest request;
    request.add_peerurls(member.peer_url);
    etcdserverpb::MemberAddResponse response;
    const grpc::Status status = stub->MemberAdd(&context, request, &response);
    if (status.ok()) {
      member.id = response.member().id();
      added = true;
      break;
    }
    failures += " via " + members_[via].name + ": " + status.error_message() + ";";
  }
  if (!added) {
    *error = "MemberAdd " + member.peer_url + " failed:" + failures;
    return false;
  }
  member.in_cluster = true;
  member.joined_existing = true;
  return Spawn(i, error);
}

bool ClusterHarness::RemoveMember(int i, std::string* error) {
  Member& member = members_[i];
  if (!member.in_cluster || !member.id.has_value()) {
    *error = member.name + " is not in the cluster or its id is unknown";
    return false;
  }
  std::string failures;
  for (int via : ActiveMembers()) {
    if (via == i) continue;
    auto stub = etcdserverpb::Cluster::NewStub(Channel(via));
    grpc::ClientContext context;
    context.set_deadline(DeadlineIn(kMembershipDeadlineMs));
    etcdserverpb::MemberRemoveRequest request;
    request.set_id(*member.id);
    etcdserverpb::MemberRemoveResponse response;
    const grpc::Status status = stub->MemberRemove(&context, request, &response);
    if (status.ok()) {
      Kill(i);
      member.in_cluster = false;
      return true;
    }
    failures += " via " + members_[via].name + ": " + status.error_message() + ";";
  }
  *error = "MemberRemove " + member.name + " failed:" + failures;
  return false;
}

bool ClusterHarness::Partition(const std::vector<std::vector<int>>& sides, std::string* error) {
  if (network_ == nullptr) {
    *error = "Partition needs ClusterOptions::network_namespaces";
    return false;
  }
  return network_->Partition(sides, error);
}

bool ClusterHarness::Heal(std::string* error) { return Partition({}, error); }

bool ClusterHarness::Isolate(int i, std::string* error) {
  std::vector<int> others;
  for (int member = 0; member < size(); ++member) {
    if (member != i) others.push_back(member);
  }
  return Partition({others, {i}}, error);
}

bool ClusterHarness::Running(int i) {
  Member& member = members_[i];
  if (!member.process->Running()) member.stopped = false;
  return member.process->Running();
}

void ClusterHarness::Kill(int i) {
  members_[i].process->Kill();
  members_[i].stopped = false;
}

void ClusterHarness::Stop(int i) {
  if (members_[i].process->Signal(SIGSTOP)) members_[i].stopped = true;
}

void ClusterHarness::Continue(int i) {
  if (members_[i].process->Signal(SIGCONT)) members_[i].stopped = false;
}

bool ClusterHarness::Restart(int i, std::string* error) {
  if (Running(i)) {
    *error = members_[i].name + " is still running";
    return false;
  }
  return Spawn(i, error);
}

std::optional<uint64_t> ClusterHarness::MemberId(int i) {
  Member& member = members_[i];
  if (member.id.has_value()) return member.id;
  if (member.process->pid() < 0 || member.stopped) return std::nullopt;
  auto stub = etcdserverpb::Maintenance::NewStub(Channel(i));
  grpc::ClientContext context;
  context.set_deadline(DeadlineIn(kMaintenanceDeadlineMs));
  etcdserverpb::StatusResponse response;
  if (!stub->Status(&context, etcdserverpb::StatusRequest(), &response).ok()) return std::nullopt;
  if (response.header().member_id() != 0) member.id = response.header().member_id();
  return member.id;
}

int ClusterHarness::LeaderIndex() {
  int leader = -1;
  uint64_t leader_term = 0;
  std::ostringstream poll;
  for (int i = 0; i < size(); ++i) {
    if (!Running(i) || members_[i].stopped) continue;
    auto stub = etcdserverpb::Maintenance::NewStub(Channel(i));
    grpc::ClientContext context;
    context.set_deadline(DeadlineIn(kMaintenanceDeadlineMs));
    etcdserverpb::StatusResponse response;
    const grpc::Status status = stub->Status(&context, etcdserverpb::StatusRequest(), &response);
    if (!status.ok()) {
      poll << " " << members_[i].name << ": code " << status.error_code() << " "
           << status.error_message() << ";";
      continue;
    }
    poll << " " << members_[i].name << ": id " << std::hex << response.header().member_id()
         << " leader " << response.leader() << std::dec << " term " << response.raftterm() << ";";
    const uint64_t id = response.header().member_id();
    if (id != 0) members_[i].id = id;
    if (id != 0 && response.leader() == id && (leader < 0 || response.raftterm() > leader_term)) {
      leader = i;
      leader_term = response.raftterm();
    }
  }
  last_poll_ = poll.str();
  return leader;
}

int ClusterHarness::WaitForLeader(int timeout_ms) {
  const auto deadline = SteadyIn(timeout_ms);
  while (true) {
    const int leader = LeaderIndex();
    if (leader >= 0 || std::chrono::steady_clock::now() > deadline) return leader;
    std::this_thread::sleep_for(std::chrono::milliseconds(kPollIntervalMs));
  }
}

std::string ClusterHarness::DescribeMembers() {
  std::ostringstream out;
  out << "last leader poll:" << last_poll_ << "\n";
  if (network_ != nullptr) out << "network:" << network_->Describe() << "\n";
  for (int i = 0; i < size(); ++i) {
    out << members_[i].name << " " << members_[i].client_address << ": ";
    if (!members_[i].in_cluster) out << "(not in the cluster) ";
    if (!Running(i)) {
      out << "not running\n";
      continue;
    }
    out << "pid " << members_[i].process->pid() << (members_[i].stopped ? " (stopped) " : " ");
    auto stub = etcdserverpb::Maintenance::NewStub(Channel(i));
    grpc::ClientContext context;
    context.set_deadline(DeadlineIn(kMaintenanceDeadlineMs));
    etcdserverpb::StatusResponse response;
    const grpc::Status status = stub->Status(&context, etcdserverpb::StatusRequest(), &response);
    if (!status.ok()) {
      out << "Status failed: code " << status.error_code() << " " << status.error_message() << "\n";
      continue;
    }
    out << std::hex << "id " << response.header().member_id() << " leader " << response.leader()
        << std::dec << " term " << response.raftterm() << " index " << response.raftindex()
        << " applied " << response.raftappliedindex() << "\n";
  }
  return out.str();
}

namespace {

bool HashKvAt(const std::shared_ptr<grpc::Channel>& channel, int64_t revision, MemberHash* hash,
              std::string* error) {
  auto stub = etcdserverpb::Maintenance::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(DeadlineIn(kMaintenanceDeadlineMs));
  etcdserverpb::HashKVRequest request;
  request.set_revision(revision);
  etcdserverpb::HashKVResponse response;
  const grpc::Status status = stub->HashKV(&context, request, &response);
  if (!status.ok()) {
    *error = "HashKV(" + std::to_string(revision) + "): " + status.error_message();
    return false;
  }
  // hash_revision is the revision the hash covers; older servers leave it 0 and mean the
  // header revision (HashKV(0)) or the requested one.
  hash->revision = response.hash_revision() != 0 ? response.hash_revision()
                   : revision != 0               ? revision
                                                 : response.header().revision();
  hash->hash = response.hash();
  return true;
}

std::string DescribeHashes(const std::map<int, MemberHash>& hashes) {
  std::ostringstream out;
  for (const auto& [member, hash] : hashes) {
    out << " m" << member << "=(rev " << hash.revision << ", hash " << hash.hash << ")";
  }
  return out.str();
}

}  // namespace

bool ClusterHarness::HashKvAll(std::map<int, MemberHash>* hashes, std::string* error) {
  hashes->clear();
  int64_t common_revision = -1;
  for (int i = 0; i < size(); ++i) {
    if (!Running(i) || members_[i].stopped) continue;
    MemberHash current;
    if (!HashKvAt(Channel(i), 0, &current, error)) {
      *error = members_[i].name + ": " + *error;
      return false;
    }
    if (common_revision < 0 || current.revision < common_revision) {
      common_revision = current.revision;
    }
  }
  for (int i = 0; i < size(); ++i) {
    if (!Running(i) || members_[i].stopped) continue;
    if (!HashKvAt(Channel(i), common_revision, &(*hashes)[i], error)) {
      *error = members_[i].name + ": " + *error;
      return false;
    }
  }
  return true;
}

bool ClusterHarness::WaitConverged(int timeout_ms, std::string* error) {
  const auto deadline = SteadyIn(timeout_ms);
  std::map<int, MemberHash> hashes;
  std::string last_error;
  while (std::chrono::steady_clock::now() < deadline) {
    hashes.clear();
    last_error.clear();
    bool all_answered = true;
    for (int i = 0; i < size() && all_answered; ++i) {
      if (!Running(i) || members_[i].stopped) continue;
      all_answered = HashKvAt(Channel(i), 0, &hashes[i], &last_error);
      if (!all_answered) last_error = members_[i].name + ": " + last_error;
    }
    if (all_answered && !hashes.empty() &&
        std::all_of(hashes.begin(), hashes.end(),
                    [&](const auto& entry) { return entry.second == hashes.begin()->second; })) {
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(kPollIntervalMs));
  }
  *error = "members did not converge within " + std::to_string(timeout_ms) +
           " ms; last HashKV(0):" + DescribeHashes(hashes) +
           (last_error.empty() ? "" : "; " + last_error);
  return false;
}

std::string ClusterHarness::LogTails(size_t bytes_max) const {
  std::ostringstream out;
  for (const Member& member : members_) {
    if (!std::filesystem::exists(member.log_path)) continue;  // A spare never started.
    std::ifstream in(member.log_path, std::ios::binary);
    std::stringstream buffer;
    buffer << in.rdbuf();
    std::string text = buffer.str();
    if (text.size() > bytes_max) text = "..." + text.substr(text.size() - bytes_max);
    out << "--- " << member.name << " (" << member.log_path << ")\n" << text << "\n";
  }
  return out.str();
}

}  // namespace cairn::cluster_test
