// CAIRN_CHECK(cond): always-on assertion for programmer errors. On failure it prints the
// condition with file:line to stderr and aborts. Operating errors (bad input, I/O failure,
// lost leader) are never CHECKs: they return Status.
#pragma once

#include "src/base/status.h"

namespace cairn::internal {
[[noreturn]] void CheckFailed(const char* condition, const char* file, int line,
                              const char* message);
}  // namespace cairn::internal

#define CAIRN_CHECK(cond)                                                 \
  do {                                                                    \
    if (!(cond)) [[unlikely]] {                                           \
      ::cairn::internal::CheckFailed(#cond, __FILE__, __LINE__, nullptr); \
    }                                                                     \
  } while (0)

#define CAIRN_CHECK_MSG(cond, msg)                                    \
  do {                                                                \
    if (!(cond)) [[unlikely]] {                                       \
      ::cairn::internal::CheckFailed(#cond, __FILE__, __LINE__, msg); \
    }                                                                 \
  } while (0)

#define CAIRN_CHECK_OK(status_expr)                                           \
  do {                                                                        \
    const ::cairn::Status& cairn_check_status_ = (status_expr);               \
    if (!cairn_check_status_.ok()) [[unlikely]] {                             \
      ::cairn::internal::CheckFailed(#status_expr, __FILE__, __LINE__,        \
                                     cairn_check_status_.ToString().c_str()); \
    }                                                                         \
  } while (0)
