#include "src/storage/engine.h"

#include "src/base/check.h"

namespace cairn::storage {

std::string_view FamilyName(Family family) {
  switch (family) {
    case Family::kMeta:
      return "meta";
    case Family::kKvLatest:
      return "kv_latest";
    case Family::kKvHistory:
      return "kv_history";
    case Family::kLease:
      return "lease";
    case Family::kEvents:
      return "events";
    case Family::kEventIds:
      return "event_ids";
  }
  CAIRN_CHECK_MSG(false, "unknown storage family");
}

}  // namespace cairn::storage
