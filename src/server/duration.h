// Go-style durations as etcd's flags take them ("10m", "1h30m", "500ms", "0").
#pragma once

#include <cstdint>
#include <string>

namespace cairn::server {

// The duration in milliseconds (fractions of a millisecond truncated); -1 when malformed.
int64_t ParseDurationMs(const std::string& text);

}  // namespace cairn::server
