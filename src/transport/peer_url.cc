#include "src/transport/peer_url.h"

namespace cairn::transport {

namespace {

Status BadUrl(std::string_view url, std::string_view why) {
  return Status::InvalidArgument("invalid peer URL \"" + std::string(url) +
                                 "\": " + std::string(why));
}

}  // namespace

Result<std::string> PeerUrlToAddress(std::string_view url) {
  constexpr std::string_view kHttp = "http://";
  if (url.starts_with("https://")) return BadUrl(url, "TLS (https) is not supported yet");
  if (!url.starts_with(kHttp)) return BadUrl(url, "expected http://host:port");
  std::string_view address = url.substr(kHttp.size());
  if (!address.empty() && address.back() == '/') address.remove_suffix(1);
  if (address.find('/') != std::string_view::npos) return BadUrl(url, "unexpected path");
  const size_t colon = address.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return BadUrl(url, "expected host:port");
  const std::string_view host = address.substr(0, colon);
  if (host.front() == '[' && host.back() != ']') return BadUrl(url, "unterminated IPv6 host");
  if (host.front() != '[' && host.find(':') != std::string_view::npos) {
    return BadUrl(url, "an IPv6 host must be in brackets");
  }
  const std::string_view port = address.substr(colon + 1);
  uint32_t port_number = 0;
  for (char c : port) {
    if (c < '0' || c > '9') return BadUrl(url, "the port must be a number");
    port_number = port_number * 10 + static_cast<uint32_t>(c - '0');
    if (port_number > 65535) break;
  }
  if (port.empty() || port_number == 0 || port_number > 65535) {
    return BadUrl(url, "the port must be a number from 1 to 65535");
  }
  return std::string(address);
}

}  // namespace cairn::transport
