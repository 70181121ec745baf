#include "src/server/http_server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

namespace cairn::server {
namespace {

int PortOf(const std::string& address) { return std::stoi(address.substr(address.rfind(':') + 1)); }

// Sends `request` raw, half-closes, and returns everything the server answered.
std::string RoundTrip(int port, const std::string& request, bool half_close = true) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
  EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  size_t sent = 0;
  while (sent < request.size()) {
    const ssize_t n = send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;
    sent += static_cast<size_t>(n);
  }
  if (half_close) shutdown(fd, SHUT_WR);
  std::string answer;
  char buffer[4096];
  ssize_t n;
  while ((n = recv(fd, buffer, sizeof(buffer), 0)) > 0) answer.append(buffer, n);
  close(fd);
  return answer;
}

class HttpServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::map<std::string, HttpServer::Handler> routes;
    routes["/metrics"] = [] { return HttpServer::Response{200, "text/plain", "m 1\n"}; };
    routes["/health"] = [] {
      return HttpServer::Response{503, "application/json", "{\"health\":\"false\"}"};
    };
    HttpServer::Options options;
    options.request_timeout_ms = 300;
    auto server = HttpServer::Start({"127.0.0.1:0"}, std::move(routes), options);
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(*server);
    port_ = PortOf(server_->addresses()[0]);
    ASSERT_GT(port_, 0);
  }
  std::unique_ptr<HttpServer> server_;
  int port_ = 0;
};

TEST_F(HttpServerTest, ServesRoutes) {
  const std::string answer = RoundTrip(port_, "GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\n\r\n");
  EXPECT_EQ(answer.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << answer;
  EXPECT_NE(answer.find("Content-Length: 4\r\n"), std::string::npos);
  EXPECT_NE(answer.find("Connection: close\r\n"), std::string::npos);
  EXPECT_EQ(answer.substr(answer.size() - 4), "m 1\n");
  EXPECT_EQ(RoundTrip(port_, "GET /health HTTP/1.0\r\n\r\n").rfind("HTTP/1.1 503", 0), 0u);
}

TEST_F(HttpServerTest, HeadHasNoBody) {
  const std::string answer = RoundTrip(port_, "HEAD /metrics HTTP/1.1\r\n\r\n");
  EXPECT_EQ(answer.rfind("HTTP/1.1 200 OK\r\n", 0), 0u);
  EXPECT_EQ(answer.substr(answer.size() - 4), "\r\n\r\n");
}

TEST_F(HttpServerTest, ErrorsAndGarbage) {
  EXPECT_EQ(RoundTrip(port_, "GET /nope HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 404", 0), 0u);
  const std::string post = RoundTrip(port_, "POST /metrics HTTP/1.1\r\n\r\n");
  EXPECT_EQ(post.rfind("HTTP/1.1 405", 0), 0u);
  EXPECT_NE(post.find("Allow: GET, HEAD"), std::string::npos);
  EXPECT_EQ(RoundTrip(port_, "garbage\r\n\r\n").rfind("HTTP/1.1 400", 0), 0u);
  EXPECT_EQ(RoundTrip(port_, std::string(20000, 'x')).rfind("HTTP/1.1 431", 0), 0u);
  std::string binary;
  for (int i = 0; i < 5000; ++i) binary += static_cast<char>(i * 7919);
  RoundTrip(port_, binary);                                   // whatever the answer, no crash
  RoundTrip(port_, "GET /metrics HTTP/1.1\r\n");              // incomplete, then closed
  RoundTrip(port_, "GET /metrics HT", /*half_close=*/false);  // stalls: dropped at timeout
  EXPECT_EQ(RoundTrip(port_, "GET /metrics HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 200", 0), 0u);
}

TEST(HttpServerStartTest, BusyPortIsUnavailable) {
  auto first = HttpServer::Start({"127.0.0.1:0"}, {});
  ASSERT_TRUE(first.ok());
  auto second = HttpServer::Start({(*first)->addresses()[0]}, {});
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.status().ToString().find("cannot listen on"), std::string::npos);
  (*first)->Stop();
  (*first)->Stop();  // idempotent
}

}  // namespace
}  // namespace cairn::server
