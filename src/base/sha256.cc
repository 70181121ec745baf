#include "src/base/sha256.h"

#include <openssl/evp.h>

#include "src/base/check.h"

namespace cairn {

Sha256::Sha256() : context_(EVP_MD_CTX_new()) {
  CAIRN_CHECK(context_ != nullptr && EVP_DigestInit_ex(context_, EVP_sha256(), nullptr) == 1);
}

Sha256::~Sha256() { EVP_MD_CTX_free(context_); }

void Sha256::Update(const char* data, size_t n) {
  CAIRN_CHECK(EVP_DigestUpdate(context_, data, n) == 1);
}

std::string Sha256::Final() {
  std::string digest(kDigestBytes, '\0');
  unsigned int length = 0;
  CAIRN_CHECK(
      EVP_DigestFinal_ex(context_, reinterpret_cast<unsigned char*>(digest.data()), &length) == 1 &&
      length == kDigestBytes);
  return digest;
}

}  // namespace cairn
