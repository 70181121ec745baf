// One spdlog logger per module ("wal", "storage", "mvcc", "node", ...). Lines carry the
// module name; callers add their own context (segment file, index, term).
//
// Thread-safety: loggers are thread-safe; SetLevel may be called at any time.
#pragma once

#include <spdlog/spdlog.h>

#include <memory>
#include <string>

namespace cairn::log {

// Returns the logger for `module`, creating it on first use (stderr sink, shared level).
std::shared_ptr<spdlog::logger> Get(const std::string& module);

// Sets the level of every existing and future logger: "trace", "debug", "info", "warn",
// "error", "off". Returns false for an unknown level name.
bool SetLevel(const std::string& level);

}  // namespace cairn::log
