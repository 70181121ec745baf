// NetworkNamespaces: one Linux network namespace per cluster member, for partition tests with
// real processes, built from `ip` alone (no iptables, no netem).
//
// Member i lives in namespace "cairnpt-<pid>-m<i>" with two links:
//   - a client link: a veth pair straight to the root namespace (root side 10.C.D.4i+1/30,
//     member side 10.C.D.4i+2/30). The test process, in the root namespace, reaches every
//     member's client port over it whatever the partition; members cannot reach each other
//     over it (no routes, no forwarding between the /30s).
//   - a peer link: a veth pair whose root side is a port of a bridge in the root namespace
//     (member side 10.P.Q.i+1/24, the bridge has no address). Every peer link starts on
//     bridge 0; a partition moves root-side ends to other bridges ("side" k on bridge k), and
//     healing moves them all back. Packets across sides are dropped silently (no RST, no ICMP),
//     as in a real network split: TCP connections stall and time out, they are not refused.
//
// Names carry the test's pid (namespaces "cairnpt-<pid>-m<i>", links and bridges
// "cpt<pid>{c,p,b}<n>"), so concurrent test processes do not collide; RemoveLeftovers() deletes
// what a dead process (crash, SIGKILL) left behind. The destructor removes everything this
// object created. The subnets are derived from the pid too (10.128-191.x for clients,
// 10.192-255.x for peers).
//
// REQUIRES: root (CAP_NET_ADMIN, CAP_SYS_ADMIN) and the `ip` tool; Create() fails otherwise.
// Thread-safety: not thread-safe; drive it from the test's main thread.
#pragma once

#include <string>
#include <vector>

namespace cairn::cluster_test {

class NetworkNamespaces {
 public:
  NetworkNamespaces();
  ~NetworkNamespaces();
  NetworkNamespaces(const NetworkNamespaces&) = delete;
  NetworkNamespaces& operator=(const NetworkNamespaces&) = delete;

  // Whether namespaces can be made here: root, an `ip` binary, and a probe namespace that can
  // be added and deleted. When not, *why says so (for GTEST_SKIP).
  static bool Available(std::string* why);
  // Deletes namespaces, bridges and links with this class's prefix whose owning pid is no
  // longer alive.
  static void RemoveLeftovers();

  // Makes `members` namespaces with their links, all peer links on bridge 0. Returns false
  // (and says which command failed in *error).
  bool Create(int members, std::string* error);

  int size() const { return members_; }
  // The member's client address (reachable from the root namespace) and peer address.
  std::string ClientIp(int member) const;
  std::string PeerIp(int member) const;
  // argv prefix that runs a command inside member's namespace: {ip, netns, exec, <name>}. `ip
  // netns exec` execs the command in place, so the child's pid is the command's pid.
  std::vector<std::string> ExecPrefix(int member) const;

  // Puts side k's members' peer links on bridge k; members in no side go to bridge 0 (so they
  // are with sides[0]). Members on different bridges cannot exchange a packet.
  bool Partition(const std::vector<std::vector<int>>& sides, std::string* error);
  // Every peer link back on bridge 0.
  bool Heal(std::string* error);
  // One line per member: which bridge its peer link is on.
  std::string Describe() const;

 private:
  std::string Namespace(int member) const;
  std::string ClientLink(int member) const;
  std::string PeerLink(int member) const;
  std::string Bridge(int side) const;
  bool EnsureBridge(int side, std::string* error);
  void RemoveAll();

  const int pid_;
  int members_ = 0;
  int client_octet2_ = 0;  // 10.<client_octet2_>.<subnet_octet3_>.0/24 holds the client /30s
  int peer_octet2_ = 0;    // 10.<peer_octet2_>.<subnet_octet3_>.0/24 is the peer network
  int subnet_octet3_ = 0;
  std::vector<int> bridges_;       // Sides whose bridge exists.
  std::vector<int> member_side_;   // The bridge each member's peer link is on.
  std::vector<int> made_members_;  // Namespaces made (for cleanup).
};

}  // namespace cairn::cluster_test
