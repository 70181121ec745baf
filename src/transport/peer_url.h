// Peer URLs as etcd's flags spell them (--initial-advertise-peer-urls, --initial-cluster:
// "http://10.0.0.1:2380") to the host:port address a gRPC channel dials.
//
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>

#include "src/base/result.h"

namespace cairn::transport {

// "http://host:port" (an optional trailing '/') → "host:port"; IPv6 hosts stay bracketed
// ("http://[::1]:2380" → "[::1]:2380"). https:// (TLS) and anything else is InvalidArgument.
Result<std::string> PeerUrlToAddress(std::string_view url);

}  // namespace cairn::transport
