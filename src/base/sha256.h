// Sha256: incremental SHA-256 (OpenSSL's EVP), for the snapshot stream's trailer and the event
// store's hash chain. One object per digest; not thread-safe.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

struct evp_md_ctx_st;

namespace cairn {

class Sha256 {
 public:
  static constexpr size_t kDigestBytes = 32;

  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void Update(const char* data, size_t n);
  void Update(std::string_view bytes) { Update(bytes.data(), bytes.size()); }
  // The digest (kDigestBytes raw bytes). Call once.
  std::string Final();

 private:
  evp_md_ctx_st* context_;
};

}  // namespace cairn
