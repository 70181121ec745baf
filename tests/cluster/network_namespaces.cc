#include "tests/cluster/network_namespaces.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <sstream>

namespace cairn::cluster_test {
namespace {

constexpr char kNamespacePrefix[] = "cairnpt-";
// Link and bridge names: "cpt<pid><kind><n>", at most 3 + 7 + 1 + 2 = 13 of the kernel's 15.
constexpr char kLinkPrefix[] = "cpt";
// Client /30s are 4 addresses each in one /24.
constexpr int kMembersMax = 63;

std::string IpPath() {
  for (const char* path : {"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"}) {
    if (access(path, X_OK) == 0) return path;
  }
  return "";
}

// Runs `ip <arguments>`; returns its exit status and its output (stdout and stderr) in
// *output. The arguments are names and addresses this file makes (no shell metacharacters).
int RunIp(const std::string& arguments, std::string* output = nullptr) {
  const std::string command = IpPath() + " " + arguments + " 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return -1;
  std::string text;
  std::array<char, 512> buffer;
  size_t n = 0;
  while ((n = fread(buffer.data(), 1, buffer.size(), pipe)) > 0) text.append(buffer.data(), n);
  const int status = pclose(pipe);
  if (output != nullptr) *output = text;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

bool RunIpOrSay(const std::string& arguments, std::string* error) {
  std::string output;
  if (RunIp(arguments, &output) == 0) return true;
  *error = "ip " + arguments + ": " + output;
  return false;
}

bool PidAlive(long pid) { return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM); }

// The pid in "<prefix><digits>...", or -1.
long PidAfter(const std::string& name, const std::string& prefix) {
  if (name.rfind(prefix, 0) != 0) return -1;
  size_t end = prefix.size();
  while (end < name.size() && std::isdigit(static_cast<unsigned char>(name[end]))) ++end;
  if (end == prefix.size()) return -1;
  return std::strtol(name.substr(prefix.size(), end - prefix.size()).c_str(), nullptr, 10);
}

// First word of every line of `ip <arguments>` (link lines "7: name@peer: ..." give "name").
std::vector<std::string> ListNames(const std::string& arguments, bool link_format) {
  std::string output;
  std::vector<std::string> names;
  if (RunIp(arguments, &output) != 0) return names;
  std::istringstream lines(output);
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream words(line);
    std::string word;
    if (link_format) words >> word;  // "7:"
    if (!(words >> word)) continue;
    word = word.substr(0, word.find_first_of("@:"));
    names.push_back(word);
  }
  return names;
}

}  // namespace

NetworkNamespaces::NetworkNamespaces() : pid_(static_cast<int>(getpid())) {
  subnet_octet3_ = pid_ % 256;
  client_octet2_ = 128 + (pid_ / 256) % 64;
  peer_octet2_ = 192 + (pid_ / 256) % 64;
}

NetworkNamespaces::~NetworkNamespaces() { RemoveAll(); }

bool NetworkNamespaces::Available(std::string* why) {
  if (geteuid() != 0) {
    *why = "network namespaces need root (euid " + std::to_string(geteuid()) + ")";
    return false;
  }
  if (IpPath().empty()) {
    *why = "no `ip` binary (iproute2) in /usr/sbin, /sbin, /usr/bin or /bin";
    return false;
  }
  const std::string probe = std::string(kNamespacePrefix) + std::to_string(getpid()) + "-probe";
  std::string output;
  if (RunIp("netns add " + probe, &output) != 0) {
    *why = "`ip netns add` failed: " + output;
    return false;
  }
  RunIp("netns del " + probe);
  return true;
}

void NetworkNamespaces::RemoveLeftovers() {
  if (IpPath().empty()) return;
  for (const std::string& name : ListNames("netns list", /*link_format=*/false)) {
    const long pid = PidAfter(name, kNamespacePrefix);
    if (pid > 0 && !PidAlive(pid)) RunIp("netns del " + name);
  }
  // Deleting a namespace deletes its veth pairs; bridges (and any link left in the root
  // namespace) go here.
  for (const std::string& name : ListNames("-o link show", /*link_format=*/true)) {
    const long pid = PidAfter(name, kLinkPrefix);
    if (pid > 0 && !PidAlive(pid)) RunIp("link del " + name);
  }
}

std::string NetworkNamespaces::Namespace(int member) const {
  return kNamespacePrefix + std::to_string(pid_) + "-m" + std::to_string(member);
}
std::string NetworkNamespaces::ClientLink(int member) const {
  return kLinkPrefix + std::to_string(pid_) + "c" + std::to_string(member);
}
std::string NetworkNamespaces::PeerLink(int member) const {
  return kLinkPrefix + std::to_string(pid_) + "p" + std::to_string(member);
}
std::string NetworkNamespaces::Bridge(int side) const {
  return kLinkPrefix + std::to_string(pid_) + "b" + std::to_string(side);
}

std::string NetworkNamespaces::ClientIp(int member) const {
  return "10." + std::to_string(client_octet2_) + "." + std::to_string(subnet_octet3_) + "." +
         std::to_string(4 * member + 2);
}

std::string NetworkNamespaces::PeerIp(int member) const {
  return "10." + std::to_string(peer_octet2_) + "." + std::to_string(subnet_octet3_) + "." +
         std::to_string(member + 1);
}

std::vector<std::string> NetworkNamespaces::ExecPrefix(int member) const {
  return {IpPath(), "netns", "exec", Namespace(member)};
}

bool NetworkNamespaces::EnsureBridge(int side, std::string* error) {
  if (std::find(bridges_.begin(), bridges_.end(), side) != bridges_.end()) return true;
  // STP off: a port forwards as soon as it joins (no listening/learning delay after a heal).
  if (!RunIpOrSay("link add name " + Bridge(side) + " type bridge stp_state 0", error) ||
      !RunIpOrSay("link set " + Bridge(side) + " up", error)) {
    return false;
  }
  bridges_.push_back(side);
  return true;
}

bool NetworkNamespaces::Create(int members, std::string* error) {
  if (members < 1 || members > kMembersMax) {
    *error = "NetworkNamespaces supports 1.." + std::to_string(kMembersMax) + " members";
    return false;
  }
  members_ = members;
  member_side_.assign(members, 0);
  if (!EnsureBridge(0, error)) return false;
  const std::string client_net =
      "10." + std::to_string(client_octet2_) + "." + std::to_string(subnet_octet3_) + ".";
  for (int i = 0; i < members; ++i) {
    const std::string ns = Namespace(i);
    if (!RunIpOrSay("netns add " + ns, error)) return false;
    made_members_.push_back(i);
    const std::string in_ns = "-n " + ns + " ";
    const std::string client_inside = "client" + std::to_string(i);
    const std::string peer_inside = "peer" + std::to_string(i);
    if (!RunIpOrSay(in_ns + "link set lo up", error) ||
        !RunIpOrSay(
            "link add " + ClientLink(i) + " type veth peer name " + client_inside + " netns " + ns,
            error) ||
        !RunIpOrSay(
            "addr add " + client_net + std::to_string(4 * i + 1) + "/30 dev " + ClientLink(i),
            error) ||
        !RunIpOrSay("link set " + ClientLink(i) + " up", error) ||
        !RunIpOrSay(in_ns + "addr add " + ClientIp(i) + "/30 dev " + client_inside, error) ||
        !RunIpOrSay(in_ns + "link set " + client_inside + " up", error) ||
        !RunIpOrSay(
            "link add " + PeerLink(i) + " type veth peer name " + peer_inside + " netns " + ns,
            error) ||
        !RunIpOrSay("link set " + PeerLink(i) + " master " + Bridge(0), error) ||
        !RunIpOrSay("link set " + PeerLink(i) + " up", error) ||
        !RunIpOrSay(in_ns + "addr add " + PeerIp(i) + "/24 dev " + peer_inside, error) ||
        !RunIpOrSay(in_ns + "link set " + peer_inside + " up", error)) {
      return false;
    }
  }
  return true;
}

bool NetworkNamespaces::Partition(const std::vector<std::vector<int>>& sides, std::string* error) {
  std::vector<int> target(members_, 0);
  for (size_t side = 0; side < sides.size(); ++side) {
    for (int member : sides[side]) {
      if (member < 0 || member >= members_) {
        *error = "no member " + std::to_string(member);
        return false;
      }
      target[member] = static_cast<int>(side);
    }
  }
  for (int i = 0; i < members_; ++i) {
    if (target[i] == member_side_[i]) continue;
    if (!EnsureBridge(target[i], error) ||
        !RunIpOrSay("link set " + PeerLink(i) + " master " + Bridge(target[i]), error)) {
      return false;
    }
    member_side_[i] = target[i];
  }
  return true;
}

bool NetworkNamespaces::Heal(std::string* error) { return Partition({}, error); }

std::string NetworkNamespaces::Describe() const {
  std::ostringstream out;
  for (int i = 0; i < members_; ++i) {
    out << " m" << i << "@bridge" << member_side_[i] << " (client " << ClientIp(i) << ", peer "
        << PeerIp(i) << ")";
  }
  return out.str();
}

void NetworkNamespaces::RemoveAll() {
  // REQUIRES: no process left in the namespaces (the harness kills its members first); a
  // namespace with a process in it outlives `netns del` until the process exits.
  // The root-side ends go first, explicitly: `netns del` returns before the kernel destroys
  // the namespace's devices (and with them their veth peers here), so the next cluster of this
  // process, which reuses the names, could find them still there ("File exists"). Deleting one
  // end of a veth pair deletes both before `ip` returns.
  for (int member : made_members_) {
    RunIp("link del " + ClientLink(member));
    RunIp("link del " + PeerLink(member));
    RunIp("netns del " + Namespace(member));
  }
  made_members_.clear();
  for (int side : bridges_) RunIp("link del " + Bridge(side));
  bridges_.clear();
}

}  // namespace cairn::cluster_test
