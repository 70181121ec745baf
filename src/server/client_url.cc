#include "src/server/client_url.h"

namespace cairn::server {

namespace {

Status BadUrl(std::string_view url, std::string_view why) {
  return Status::InvalidArgument("invalid client URL \"" + std::string(url) +
                                 "\": " + std::string(why));
}

}  // namespace

Result<std::string> ClientUrlToAddress(std::string_view url) {
  constexpr std::string_view kHttp = "http://";
  if (url.starts_with("https://")) return BadUrl(url, "TLS (https) is not supported yet");
  if (!url.starts_with(kHttp)) return BadUrl(url, "expected http://host:port");
  std::string_view address = url.substr(kHttp.size());
  if (!address.empty() && address.back() == '/') address.remove_suffix(1);
  const size_t colon = address.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return BadUrl(url, "expected host:port");
  const std::string_view port = address.substr(colon + 1);
  if (port.empty() || port.size() > 5 ||
      port.find_first_not_of("0123456789") != std::string_view::npos ||
      std::stoi(std::string(port)) > 65535) {
    return BadUrl(url, "the port must be a number from 0 to 65535");
  }
  if (address.find('/') != std::string_view::npos) return BadUrl(url, "unexpected path");
  return std::string(address);
}

Result<std::vector<std::string>> ClientUrlsToAddresses(std::string_view urls) {
  std::vector<std::string> addresses;
  while (!urls.empty()) {
    const size_t comma = urls.find(',');
    std::string_view url = urls.substr(0, comma);
    urls = comma == std::string_view::npos ? std::string_view() : urls.substr(comma + 1);
    if (url.empty()) continue;
    CAIRN_ASSIGN_OR_RETURN(std::string address, ClientUrlToAddress(url));
    addresses.push_back(std::move(address));
  }
  if (addresses.empty()) return Status::InvalidArgument("no client URL given");
  return addresses;
}

}  // namespace cairn::server
