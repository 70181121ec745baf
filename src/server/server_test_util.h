// ServerTestBase: a cairnd Server in a fresh temporary directory, listening on a free
// loopback port, for tests that talk to it over a real gRPC channel. Subclasses adjust
// options_ in SetUp (after calling the base) and create their stubs in MakeStubs.
#pragma once

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <string>

#include "src/server/server.h"

namespace cairn::server {

class ServerTestBase : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "cairn_server_test_XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    options_.data_dir = dir_ + "/data";
    options_.client_addresses = {"127.0.0.1:0"};
  }
  void TearDown() override {
    server_.reset();
    std::filesystem::remove_all(dir_);
  }

  // Creates the stubs the test uses on a channel to the (re)started server.
  virtual void MakeStubs(const std::shared_ptr<grpc::Channel>& channel) = 0;

  void StartServer() {
    auto server = Server::Start(options_);
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(*server);
    MakeStubs(grpc::CreateChannel(server_->addresses()[0], grpc::InsecureChannelCredentials()));
  }
  void RestartServer() {
    ASSERT_TRUE(server_->Shutdown().ok());
    server_.reset();
    StartServer();
  }

  std::string dir_;
  ServerOptions options_;
  std::unique_ptr<Server> server_;
};

}  // namespace cairn::server
