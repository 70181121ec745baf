// LeaseIndex: what the KV state machine needs from the lease state machine, without depending
// on it (src/lease implements this; mvcc sits below it).
//
// Every call happens on the apply thread, inside a KvState Apply* call, and reads and writes
// only through `batch`: a command that fails is rolled back with the batch's save point, so
// an implementation must keep no in-memory state that a rollback would not undo.
#pragma once

#include <cstdint>
#include <string_view>

#include "src/base/result.h"
#include "src/storage/engine.h"

namespace cairn::mvcc {

class LeaseIndex {
 public:
  virtual ~LeaseIndex() = default;
  // Whether lease `lease` (!= 0) exists as of `batch`.
  virtual Result<bool> Exists(storage::WriteBatch* batch, int64_t lease) = 0;
  // `key` now carries lease `lease` (!= 0). REQUIRES: Exists(batch, lease).
  virtual void Attach(storage::WriteBatch* batch, int64_t lease, std::string_view key) = 0;
  // `key` no longer carries lease `lease` (!= 0): it was deleted or put with another lease.
  virtual void Detach(storage::WriteBatch* batch, int64_t lease, std::string_view key) = 0;
};

}  // namespace cairn::mvcc
