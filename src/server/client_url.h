// Client URLs as etcd's flags spell them ("http://127.0.0.1:2379,http://10.0.0.1:2379") to
// the host:port addresses gRPC listens on.
//
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "src/base/result.h"

namespace cairn::server {

// "http://host:port" → "host:port" (IPv6 hosts stay bracketed). https:// and unix:// are
// refused with InvalidArgument until TLS and unix sockets are supported.
Result<std::string> ClientUrlToAddress(std::string_view url);

// A comma-separated list of URLs → addresses; empty items are skipped, an empty list is an
// error.
Result<std::vector<std::string>> ClientUrlsToAddresses(std::string_view urls);

}  // namespace cairn::server
