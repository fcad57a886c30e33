#pragma once
// MockServer: the network side of tollgate-mock-provider. An HTTP/1.1 server (Boost.Beast) with
// one acceptor and N worker threads, each running its own io_context; accepted connections are
// dealt round-robin to the workers, and each connection stays on its worker. Connections are
// keep-alive with TCP_NODELAY; a fresh parser per request (body limit 32 MiB, 120 s idle read
// timeout); "Expect: 100-continue" is honoured. Every response is a ResponsePlan from MockHandler,
// written step by step with steady_timer waits in between (no thread ever sleeps).
// With MockTlsFiles set the server speaks HTTPS only (OpenSSL through beast::ssl_stream, TLS 1.2+);
// otherwise plain HTTP, whose code path carries no TLS overhead.
//
//   MockOptions options;
//   auto server = MockServer::Start("127.0.0.1:0", /*threads=*/2, options);
//   if (!server.ok()) ...;
//   int port = (*server)->port();
//   ...
//   (*server)->Stop();  // also done by the destructor
//
// Thread-safety: Start/Stop/port/handler may be called from any thread; Stop is idempotent and
// must not be called from a worker thread.

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "tools/mock_provider/mock_handler.h"

namespace tollgate::tools::mock {

inline constexpr uint64_t kMockBodyLimit = 32ull * 1024 * 1024;

// PEM files for HTTPS. Both empty: plain HTTP. Exactly one set is an error.
struct MockTlsFiles {
  std::string cert_file;  // certificate chain, leaf first
  std::string key_file;   // the leaf's private key (unencrypted)
};

class MockServer {
 public:
  // Binds `listen` ("host:port" or "[v6]:port"; port 0 picks a free port, for tests) and starts
  // `threads` (>= 1) workers, serving HTTPS when `tls` names a certificate and key. Errors:
  // kInvalidArgument for a malformed address or unloadable/mismatched TLS files, kUnavailable
  // when it cannot be bound.
  static absl::StatusOr<std::unique_ptr<MockServer>> Start(const std::string& listen, int threads,
                                                           MockOptions options,
                                                           const MockTlsFiles& tls = {});

  ~MockServer();
  MockServer(const MockServer&) = delete;
  MockServer& operator=(const MockServer&) = delete;

  // The bound port.
  int port() const;

  // Stops accepting, drops open connections and joins the workers.
  void Stop();

  MockHandler& handler();

 private:
  class Impl;
  explicit MockServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tollgate::tools::mock
