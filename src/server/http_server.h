// HttpServer: a tiny, bounded HTTP/1.1 server for cairnd's /metrics, /health and /readyz.
//
// One thread serves every listening address, one connection at a time: it reads a request
// head (at most Options::request_head_bytes_max, within Options::request_timeout_ms), answers
// GET or HEAD for a registered path, and closes the connection (Connection: close). Anything
// else gets 400 (malformed), 404 (unknown path), 405 (other methods) or 431 (head too
// large); a client that stalls is dropped at the timeout. Request bodies are never read.
//
// Thread-safety: handlers run on the server's thread. Stop is idempotent and may be called
// from any thread (not concurrently with the destructor).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "src/base/result.h"

namespace cairn::server {

class HttpServer {
 public:
  struct Response {
    int status = 200;
    std::string content_type = "text/plain; charset=utf-8";
    std::string body;
  };
  using Handler = std::function<Response()>;

  struct Options {
    // Largest request line plus headers. Default: 8 KiB.
    size_t request_head_bytes_max = 8192;
    // How long one connection may take to send its request and receive the answer.
    // Default: 2 s.
    int request_timeout_ms = 2000;
  };

  // Binds every host:port in `addresses` (port 0 = any free port; IPv6 hosts bracketed) and
  // starts serving `routes` (exact paths; a query string is ignored).
  // Errors: Unavailable naming the address when one cannot be bound.
  static Result<std::unique_ptr<HttpServer>> Start(const std::vector<std::string>& addresses,
                                                   std::map<std::string, Handler> routes,
                                                   const Options& options);
  static Result<std::unique_ptr<HttpServer>> Start(const std::vector<std::string>& addresses,
                                                   std::map<std::string, Handler> routes) {
    return Start(addresses, std::move(routes), Options());
  }
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // host:port with the bound port.
  const std::vector<std::string>& addresses() const { return addresses_; }

  void Stop();

 private:
  HttpServer(std::map<std::string, Handler> routes, const Options& options);
  void Loop();
  void Serve(int fd);
  Response Answer(const std::string& head, bool* head_only);

  const std::map<std::string, Handler> routes_;
  const Options options_;
  std::vector<int> listen_fds_;
  int wake_fds_[2] = {-1, -1};
  std::vector<std::string> addresses_;
  std::thread thread_;
};

}  // namespace cairn::server
