#pragma once
// The gateway's HTTP/1.1 server (Boost.Beast, after its advanced_server / http_server_fast
// examples): N worker threads, each running its own io_context with its own acceptor on the same
// port (SO_REUSEPORT; the kernel spreads connections across them), so a connection and all work
// for it stay on one thread and need no locks.
//
// Per connection: keep-alive, a fresh request_parser per message with a body limit (413 beyond),
// a header timeout for each request (first byte of a keep-alive request: idle timeout), an idle
// timeout for body reads and response writes, TCP_NODELAY. "Expect: 100-continue" is answered.
// Malformed requests get 400, oversized headers 431, each an OpenAI-shaped JSON error, and the
// connection is closed.
//
//   HttpServer::Create(options, &handler, &metrics, factory) -> server;
//   server->Start();
//   ... SIGTERM ...
//   server->BeginShutdown();                    // stop accepting, close idle connections
//   server->WaitIdle(now + grace);              // in-flight requests finish
//   server->Stop();                             // stop and join the threads
//   server.reset();                             // destroy per-thread state, then io_contexts
//
// Thread-safety: Create/Start/BeginShutdown/WaitIdle/Stop from one controlling thread. Handlers
// run on worker threads; everything about a session happens on its worker's thread.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "boost/asio/any_io_executor.hpp"
#include "boost/asio/io_context.hpp"
#include "boost/asio/ip/tcp.hpp"
#include "boost/beast/core/flat_buffer.hpp"
#include "boost/beast/core/tcp_stream.hpp"
#include "boost/beast/http/message.hpp"
#include "boost/beast/http/parser.hpp"
#include "boost/beast/http/string_body.hpp"
#include "services/gateway/gateway_metrics.h"

namespace tollgate::gateway {

using HttpRequest = boost::beast::http::request<boost::beast::http::string_body>;
using HttpResponse = boost::beast::http::response<boost::beast::http::string_body>;

struct HttpServerOptions {
  std::string listen = "127.0.0.1:8080";  // host:port; [v6]:port
  int threads = 2;
  size_t max_body_bytes = 4 * 1024 * 1024;
  size_t max_header_bytes = 16 * 1024;
  std::chrono::milliseconds header_timeout{10000};
  std::chrono::milliseconds idle_timeout{60000};
};

// Thread-confined state a worker owns for the handler (e.g. the upstream connection pool). It is
// destroyed after the worker's thread has stopped and before its io_context.
class WorkerState {
 public:
  virtual ~WorkerState() = default;
};

class HttpSession;

class HttpHandler {
 public:
  virtual ~HttpHandler() = default;

  // Called on the session's thread for each complete request. From here the handler owns the
  // exchange and must eventually call exactly one of session->Reply() or
  // session->FinishStreamed(); it may keep `session` across asynchronous steps.
  virtual void Handle(std::shared_ptr<HttpSession> session, HttpRequest request) = 0;

  // Called when the server itself answered a request that never reached Handle (400, 413, 431).
  virtual void OnRejected(std::string_view target, int status) {}
};

class HttpServer;

// One client connection. Created and driven by the server; handlers use the public methods below
// on the session's own thread (executor()).
class HttpSession : public std::enable_shared_from_this<HttpSession> {
 public:
  HttpSession(boost::asio::ip::tcp::socket&& socket, HttpServer* server, int worker);
  ~HttpSession();

  HttpSession(const HttpSession&) = delete;
  HttpSession& operator=(const HttpSession&) = delete;

  // Writes a complete response (content-length is set here), then reads the next request or
  // closes the connection (response not keep-alive, or the server is draining).
  void Reply(HttpResponse&& response);

  // For streamed responses: the handler writes header and body on stream() itself (setting
  // expiry with options().idle_timeout before each write), then calls FinishStreamed.
  boost::beast::tcp_stream& stream() { return stream_; }
  void FinishStreamed(bool keep_alive);

  boost::asio::any_io_executor executor() { return stream_.get_executor(); }
  WorkerState* worker_state();
  int worker_index() const { return worker_; }
  const HttpServerOptions& options() const;
  // The server is shutting down: responses should carry "Connection: close".
  bool draining() const;

  // When the request being handled was fully read.
  std::chrono::steady_clock::time_point request_start() const { return request_start_; }

 private:
  friend class HttpServer;

  enum class State { kIdle, kReadingHeader, kReadingBody, kHandling, kWriting, kClosed };

  void Start();
  void DoReadRequest(bool first);
  void ReadHeader();
  void OnFirstBytes(boost::beast::error_code ec, size_t bytes);
  void OnHeader(boost::beast::error_code ec);
  void ReadBody();
  void OnBody(boost::beast::error_code ec);
  void Dispatch();
  void Reject(int status, std::string_view code, std::string_view message);
  void OnWrite(bool keep_alive, boost::beast::error_code ec);
  void DoClose();
  void Linger(size_t drained);
  void RequestDone();
  // Called on the worker thread when the server starts draining.
  void OnDrain();

  boost::beast::tcp_stream stream_;
  boost::beast::flat_buffer buffer_;
  HttpServer* const server_;
  const int worker_;
  std::optional<boost::beast::http::request_parser<boost::beast::http::string_body>> parser_;
  std::unique_ptr<HttpResponse> response_;
  std::string continue_;  // "100 Continue" being written; scratch space when lingering
  State state_ = State::kIdle;
  bool in_request_ = false;
  std::chrono::steady_clock::time_point request_start_;
};

class HttpServer {
 public:
  using WorkerStateFactory =
      std::function<std::unique_ptr<WorkerState>(int worker, boost::asio::io_context& ioc)>;

  // Binds the listening sockets (so bind errors surface here) and creates the workers. Errors:
  // kInvalidArgument (bad options), kUnavailable (cannot bind/listen).
  static absl::StatusOr<std::unique_ptr<HttpServer>> Create(HttpServerOptions options,
                                                            HttpHandler* handler,
                                                            GatewayMetrics* metrics,
                                                            WorkerStateFactory factory);
  ~HttpServer();

  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  uint16_t port() const { return port_; }
  const HttpServerOptions& options() const { return options_; }

  void Start();
  // Stops accepting, closes idle keep-alive connections; requests in flight complete and their
  // connections close afterwards.
  void BeginShutdown();
  // Waits until no request is in flight; false when `deadline` passed first.
  bool WaitIdle(std::chrono::steady_clock::time_point deadline);
  // Stops every io_context and joins the threads. Unfinished requests are abandoned.
  void Stop();

  bool draining() const { return draining_.load(std::memory_order_acquire); }
  int in_flight() const { return in_flight_.load(std::memory_order_acquire); }

 private:
  friend class HttpSession;

  struct Worker {
    int index = 0;
    std::unique_ptr<boost::asio::io_context> ioc;
    std::unique_ptr<boost::asio::ip::tcp::acceptor> acceptor;
    std::unique_ptr<WorkerState> state;
    std::thread thread;
    absl::Mutex sessions_mu;
    std::unordered_set<HttpSession*> sessions ABSL_GUARDED_BY(sessions_mu);
  };

  HttpServer(HttpServerOptions options, HttpHandler* handler, GatewayMetrics* metrics);
  void DoAccept(Worker& worker);

  const HttpServerOptions options_;
  HttpHandler* const handler_;
  GatewayMetrics* const metrics_;
  std::vector<std::unique_ptr<Worker>> workers_;
  uint16_t port_ = 0;
  std::atomic<bool> draining_{false};
  std::atomic<int> in_flight_{0};
  bool started_ = false;
  bool stopped_ = false;
};

// Splits "host:port" / "[v6]:port". Errors: kInvalidArgument.
absl::StatusOr<std::pair<std::string, uint16_t>> SplitHostPort(std::string_view address);

}  // namespace tollgate::gateway
