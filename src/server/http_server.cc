#include "src/server/http_server.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "src/base/logging.h"

namespace cairn::server {

namespace {

const char* Reason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    default:
      return "Unknown";
  }
}

void SetNonBlocking(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL, 0) | O_NONBLOCK); }

// Splits "host:port" / "[v6]:port".
bool SplitHostPort(const std::string& address, std::string* host, std::string* port) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos) return false;
  *host = address.substr(0, colon);
  *port = address.substr(colon + 1);
  if (host->size() >= 2 && host->front() == '[' && host->back() == ']') {
    *host = host->substr(1, host->size() - 2);
  }
  return !port->empty();
}

Result<int> Listen(const std::string& address, int* bound_port) {
  std::string host, port;
  if (!SplitHostPort(address, &host, &port)) {
    return Status::InvalidArgument("not a host:port address: " + address);
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* found = nullptr;
  if (getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &found) != 0 ||
      found == nullptr) {
    return Status::Unavailable("cannot listen on " + address + ": unknown host");
  }
  int fd = socket(found->ai_family, found->ai_socktype | SOCK_CLOEXEC, found->ai_protocol);
  int one = 1;
  if (fd >= 0) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (fd < 0 || bind(fd, found->ai_addr, found->ai_addrlen) != 0 || listen(fd, 64) != 0) {
    const std::string error = std::strerror(errno);
    if (fd >= 0) close(fd);
    freeaddrinfo(found);
    return Status::Unavailable("cannot listen on " + address + ": " + error);
  }
  freeaddrinfo(found);
  sockaddr_storage bound{};
  socklen_t length = sizeof(bound);
  getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &length);
  *bound_port = bound.ss_family == AF_INET6
                    ? ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port)
                    : ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  SetNonBlocking(fd);
  return fd;
}

}  // namespace

HttpServer::HttpServer(std::map<std::string, Handler> routes, const Options& options)
    : routes_(std::move(routes)), options_(options) {}

Result<std::unique_ptr<HttpServer>> HttpServer::Start(const std::vector<std::string>& addresses,
                                                      std::map<std::string, Handler> routes,
                                                      const Options& options) {
  std::unique_ptr<HttpServer> server(new HttpServer(std::move(routes), options));
  for (const std::string& address : addresses) {
    int port = 0;
    Result<int> fd = Listen(address, &port);
    if (!fd.ok()) return fd.status();  // the destructor closes the others
    server->listen_fds_.push_back(*fd);
    server->addresses_.push_back(address.substr(0, address.rfind(':') + 1) + std::to_string(port));
  }
  if (pipe2(server->wake_fds_, O_CLOEXEC | O_NONBLOCK) != 0) {
    return Status::Internal(std::string("http: pipe: ") + std::strerror(errno));
  }
  server->thread_ = std::thread([s = server.get()] { s->Loop(); });
  return server;
}

HttpServer::~HttpServer() { Stop(); }

void HttpServer::Stop() {
  if (thread_.joinable()) {
    const char byte = 0;
    (void)!write(wake_fds_[1], &byte, 1);
    thread_.join();
  }
  for (int fd : listen_fds_) close(fd);
  listen_fds_.clear();
  for (int& fd : wake_fds_) {
    if (fd >= 0) close(fd);
    fd = -1;
  }
}

void HttpServer::Loop() {
  std::vector<pollfd> fds;
  fds.push_back({wake_fds_[0], POLLIN, 0});
  for (int fd : listen_fds_) fds.push_back({fd, POLLIN, 0});
  while (true) {
    if (poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      log::Get("http")->error("poll: {}", std::strerror(errno));
      return;
    }
    if (fds[0].revents != 0) return;
    for (size_t i = 1; i < fds.size(); ++i) {
      if (fds[i].revents == 0) continue;
      const int connection = accept4(fds[i].fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (connection < 0) continue;  // EAGAIN, ECONNABORTED, EMFILE: try again later
      Serve(connection);
      close(connection);
    }
  }
}

void HttpServer::Serve(int fd) {
  using Clock = std::chrono::steady_clock;
  const Clock::time_point deadline =
      Clock::now() + std::chrono::milliseconds(options_.request_timeout_ms);
  // Waits until `fd` is ready for `events`; false on timeout, Stop or error.
  auto wait = [&](short events) {
    while (true) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) return false;
      pollfd fds[2] = {{fd, events, 0}, {wake_fds_[0], POLLIN, 0}};
      const int ready = poll(fds, 2, static_cast<int>(left.count()));
      if (ready < 0 && errno == EINTR) continue;
      if (ready <= 0 || fds[1].revents != 0) return false;
      return true;
    }
  };

  std::string head;
  Response response;
  bool head_only = false;
  bool answered = false;
  char buffer[2048];
  while (!answered) {
    const size_t end = head.find("\r\n\r\n");
    if (end != std::string::npos) {
      head.resize(end);
      response = Answer(head, &head_only);
      answered = true;
      break;
    }
    if (head.size() > options_.request_head_bytes_max) {
      response = {431, "text/plain; charset=utf-8", "request head too large\n"};
      answered = true;
      break;
    }
    if (!wait(POLLIN)) return;
    const ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (n <= 0) return;  // closed or reset before a whole head arrived
    head.append(buffer, static_cast<size_t>(n));
  }

  std::string out = "HTTP/1.1 " + std::to_string(response.status) + " " + Reason(response.status) +
                    "\r\nContent-Type: " + response.content_type +
                    "\r\nContent-Length: " + std::to_string(response.body.size()) +
                    "\r\nConnection: close\r\n";
  if (response.status == 405) out += "Allow: GET, HEAD\r\n";
  out += "\r\n";
  if (!head_only) out += response.body;
  size_t sent = 0;
  while (sent < out.size()) {
    const ssize_t n = send(fd, out.data() + sent, out.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      if (!wait(POLLOUT)) return;
      continue;
    }
    if (n <= 0) return;
    sent += static_cast<size_t>(n);
  }
  shutdown(fd, SHUT_WR);
  // Lingering close: read what the client still sends (bounded) so that closing with unread
  // input does not reset the connection before the client read the answer.
  for (size_t drained = 0; drained < (1u << 20) && wait(POLLIN);) {
    const ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (n <= 0) break;
    drained += static_cast<size_t>(n);
  }
}

HttpServer::Response HttpServer::Answer(const std::string& head, bool* head_only) {
  const std::string line = head.substr(0, head.find("\r\n"));
  const size_t first = line.find(' ');
  const size_t second = first == std::string::npos ? std::string::npos : line.find(' ', first + 1);
  if (second == std::string::npos || line.compare(second + 1, 5, "HTTP/") != 0) {
    return {400, "text/plain; charset=utf-8", "bad request\n"};
  }
  const std::string method = line.substr(0, first);
  std::string target = line.substr(first + 1, second - first - 1);
  target = target.substr(0, target.find('?'));
  if (method != "GET" && method != "HEAD") {
    return {405, "text/plain; charset=utf-8", "method not allowed\n"};
  }
  *head_only = method == "HEAD";
  auto route = routes_.find(target);
  if (route == routes_.end()) return {404, "text/plain; charset=utf-8", "404 page not found\n"};
  return route->second();
}

}  // namespace cairn::server
