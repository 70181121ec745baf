#include "src/base/check.h"

#include <cstdio>
#include <cstdlib>

namespace cairn::internal {

void CheckFailed(const char* condition, const char* file, int line, const char* message) {
  std::fprintf(stderr, "CAIRN_CHECK failed at %s:%d: %s%s%s\n", file, line, condition,
               message ? " — " : "", message ? message : "");
  std::fflush(stderr);
  std::abort();
}

}  // namespace cairn::internal
