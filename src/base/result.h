// Result<T>: either a value of type T or a non-OK Status. Errors are values in Cairn; no
// exceptions cross module boundaries.
//
// REQUIRES: value() is called only when ok(); status() may always be called.
#pragma once

#include <optional>
#include <utility>

#include "src/base/check.h"
#include "src/base/status.h"

namespace cairn {

template <typename T>
class [[nodiscard]] Result {
 public:
  // Implicit from a value and from an error Status so that functions can `return value;` or
  // `return Status::NotFound(...)`.
  Result(T value) : value_(std::move(value)) {}         // NOLINT(google-explicit-constructor)
  Result(Status status) : status_(std::move(status)) {  // NOLINT(google-explicit-constructor)
    CAIRN_CHECK(!status_.ok());
  }

  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }

  T& value() & {
    CAIRN_CHECK(ok());
    return *value_;
  }
  const T& value() const& {
    CAIRN_CHECK(ok());
    return *value_;
  }
  T&& value() && {
    CAIRN_CHECK(ok());
    return std::move(*value_);
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  Status status_;
  std::optional<T> value_;
};

}  // namespace cairn

#define CAIRN_CONCAT_INNER_(a, b) a##b
#define CAIRN_CONCAT_(a, b) CAIRN_CONCAT_INNER_(a, b)

// CAIRN_ASSIGN_OR_RETURN(auto x, Function()): assigns the value or returns the error.
#define CAIRN_ASSIGN_OR_RETURN(lhs, expr) \
  CAIRN_ASSIGN_OR_RETURN_IMPL_(CAIRN_CONCAT_(cairn_result_, __LINE__), lhs, expr)
#define CAIRN_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                 \
  if (!tmp.ok()) return tmp.status();                \
  lhs = std::move(tmp).value()
