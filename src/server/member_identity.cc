#include "src/server/member_identity.h"

#include <string>

namespace cairn::server {

namespace {

// FNV-1a, 64 bit: stable across platforms and releases (unlike std::hash).
uint64_t Fnv1a64(std::string_view data) {
  uint64_t hash = 0xcbf29ce484222325ull;
  for (unsigned char c : data) {
    hash ^= c;
    hash *= 0x100000001b3ull;
  }
  return hash;
}

// etcd treats id 0 as "none"; never hand it out.
uint64_t NonZero(uint64_t id) { return id == 0 ? 1 : id; }

}  // namespace

MemberIdentity::MemberIdentity(std::string_view name, std::string_view cluster_token) {
  std::string token(cluster_token);
  cluster_id_ = NonZero(Fnv1a64("cairn/cluster/" + token));
  member_id_ = MemberIdFor(name, cluster_token);
}

uint64_t MemberIdentity::MemberIdFor(std::string_view name, std::string_view cluster_token) {
  return NonZero(Fnv1a64("cairn/member/" + std::string(cluster_token) + "/" + std::string(name)));
}

void MemberIdentity::FillHeader(etcdserverpb::ResponseHeader* header) const {
  header->set_cluster_id(cluster_id_);
  header->set_member_id(member_id_);
  header->set_raft_term(raft_term());
}

}  // namespace cairn::server
