#include "services/gateway/http_server.h"

#include <sys/socket.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "boost/asio/post.hpp"
#include "boost/asio/steady_timer.hpp"
#include "boost/asio/write.hpp"
#include "boost/beast/core/bind_handler.hpp"
#include "boost/beast/core/string.hpp"
#include "boost/beast/http/error.hpp"
#include "boost/beast/http/read.hpp"
#include "boost/beast/http/write.hpp"
#include "services/common/logging.h"
#include "services/gateway/openai_dialect.h"

namespace tollgate::gateway {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

using ReusePort = asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;

constexpr size_t kFirstReadBytes = 4096;
constexpr std::chrono::seconds kLingerTimeout{2};
constexpr size_t kLingerMaxBytes = 1024 * 1024;

bool IsHttpParseError(const beast::error_code& ec) {
  return ec.category() == http::make_error_code(http::error::bad_version).category() &&
         ec != http::error::end_of_stream && ec != http::error::partial_message;
}

}  // namespace

absl::StatusOr<std::pair<std::string, uint16_t>> SplitHostPort(std::string_view address) {
  std::string_view host;
  std::string_view port;
  if (!address.empty() && address.front() == '[') {
    const size_t close = address.find(']');
    if (close == std::string_view::npos || close + 1 >= address.size() ||
        address[close + 1] != ':') {
      return absl::InvalidArgumentError(
          absl::StrCat("address '", std::string(address), "' must be [ipv6]:port"));
    }
    host = address.substr(1, close - 1);
    port = address.substr(close + 2);
  } else {
    const size_t colon = address.rfind(':');
    if (colon == std::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("address '", std::string(address), "' must be host:port"));
    }
    host = address.substr(0, colon);
    port = address.substr(colon + 1);
  }
  uint32_t number = 0;
  if (host.empty() || !absl::SimpleAtoi(absl::string_view(port.data(), port.size()), &number) ||
      number > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("address '", std::string(address), "' must be host:port"));
  }
  return std::make_pair(std::string(host), static_cast<uint16_t>(number));
}

// ---------------------------------------------------------------------------------------------
// HttpSession

HttpSession::HttpSession(tcp::socket&& socket, HttpServer* server, int worker)
    : stream_(std::move(socket)), server_(server), worker_(worker) {
  HttpServer::Worker& w = *server_->workers_[worker_];
  {
    absl::MutexLock lock(&w.sessions_mu);
    w.sessions.insert(this);
  }
  if (server_->metrics_ != nullptr) server_->metrics_->ConnectionOpened();
}

HttpSession::~HttpSession() {
  RequestDone();
  HttpServer::Worker& w = *server_->workers_[worker_];
  {
    absl::MutexLock lock(&w.sessions_mu);
    w.sessions.erase(this);
  }
  if (server_->metrics_ != nullptr) server_->metrics_->ConnectionClosed();
}

WorkerState* HttpSession::worker_state() { return server_->workers_[worker_]->state.get(); }

const HttpServerOptions& HttpSession::options() const { return server_->options_; }

bool HttpSession::draining() const { return server_->draining(); }

void HttpSession::Start() { DoReadRequest(/*first=*/true); }

void HttpSession::DoReadRequest(bool first) {
  if (server_->draining()) {
    DoClose();
    return;
  }
  parser_.emplace();
  parser_->body_limit(server_->options_.max_body_bytes);
  parser_->header_limit(static_cast<std::uint32_t>(server_->options_.max_header_bytes));
  if (buffer_.size() == 0) {
    // Wait for the first byte of the next request: the idle timeout applies to a keep-alive
    // connection between requests, the header timeout to a fresh one.
    state_ = State::kIdle;
    stream_.expires_after(first ? server_->options_.header_timeout
                                : server_->options_.idle_timeout);
    stream_.async_read_some(
        buffer_.prepare(kFirstReadBytes),
        beast::bind_front_handler(&HttpSession::OnFirstBytes, shared_from_this()));
    return;
  }
  ReadHeader();
}

void HttpSession::OnFirstBytes(beast::error_code ec, size_t bytes) {
  if (ec) {
    DoClose();
    return;
  }
  buffer_.commit(bytes);
  ReadHeader();
}

void HttpSession::ReadHeader() {
  state_ = State::kReadingHeader;
  stream_.expires_after(server_->options_.header_timeout);
  http::async_read_header(
      stream_, buffer_, *parser_,
      [self = shared_from_this()](beast::error_code ec, size_t) { self->OnHeader(ec); });
}

void HttpSession::OnHeader(beast::error_code ec) {
  if (ec == http::error::body_limit) {
    Reject(413, "request_too_large",
           absl::StrCat("The request body exceeds the limit of ", server_->options_.max_body_bytes,
                        " bytes."));
    return;
  }
  if (ec == http::error::header_limit) {
    Reject(431, "request_header_fields_too_large", "The request headers are too large.");
    return;
  }
  if (ec) {
    if (IsHttpParseError(ec)) {
      Reject(400, "invalid_http_request", absl::StrCat("Malformed HTTP request: ", ec.message()));
    } else {
      DoClose();  // EOF, timeout, reset: nothing to answer
    }
    return;
  }
  if (parser_->is_done()) {
    Dispatch();
    return;
  }
  if (beast::iequals(parser_->get()[http::field::expect], "100-continue")) {
    continue_ = "HTTP/1.1 100 Continue\r\n\r\n";
    stream_.expires_after(server_->options_.idle_timeout);
    asio::async_write(stream_, asio::buffer(continue_),
                      [self = shared_from_this()](beast::error_code ec, size_t) {
                        if (ec) {
                          self->DoClose();
                        } else {
                          self->ReadBody();
                        }
                      });
    return;
  }
  ReadBody();
}

void HttpSession::ReadBody() {
  state_ = State::kReadingBody;
  stream_.expires_after(server_->options_.idle_timeout);
  http::async_read(stream_, buffer_, *parser_,
                   [self = shared_from_this()](beast::error_code ec, size_t) { self->OnBody(ec); });
}

void HttpSession::OnBody(beast::error_code ec) {
  if (ec == http::error::body_limit) {
    Reject(413, "request_too_large",
           absl::StrCat("The request body exceeds the limit of ", server_->options_.max_body_bytes,
                        " bytes."));
    return;
  }
  if (ec) {
    if (IsHttpParseError(ec)) {
      Reject(400, "invalid_http_request", absl::StrCat("Malformed HTTP request: ", ec.message()));
    } else {
      DoClose();
    }
    return;
  }
  Dispatch();
}

void HttpSession::Dispatch() {
  state_ = State::kHandling;
  stream_.expires_never();
  request_start_ = std::chrono::steady_clock::now();
  in_request_ = true;
  server_->in_flight_.fetch_add(1, std::memory_order_acq_rel);
  HttpRequest request = parser_->release();
  parser_.reset();
  server_->handler_->Handle(shared_from_this(), std::move(request));
}

void HttpSession::Reply(HttpResponse&& response) {
  state_ = State::kWriting;
  if (server_->draining()) response.keep_alive(false);
  response.prepare_payload();
  const bool keep_alive = response.keep_alive();
  response_ = std::make_unique<HttpResponse>(std::move(response));
  stream_.expires_after(server_->options_.idle_timeout);
  http::async_write(stream_, *response_,
                    [self = shared_from_this(), keep_alive](beast::error_code ec, size_t) {
                      self->OnWrite(keep_alive, ec);
                    });
}

void HttpSession::Reject(int status, std::string_view code, std::string_view message) {
  std::string target;
  if (parser_ && parser_->is_header_done()) target = std::string(parser_->get().target());
  server_->handler_->OnRejected(target, status);
  HttpResponse response(static_cast<http::status>(status), 11);
  response.set(http::field::content_type, "application/json");
  response.body() = ErrorBody(message, "invalid_request_error", "", code);
  response.keep_alive(false);
  response.prepare_payload();
  response_ = std::make_unique<HttpResponse>(std::move(response));
  state_ = State::kWriting;
  stream_.expires_after(server_->options_.idle_timeout);
  http::async_write(stream_, *response_, [self = shared_from_this()](beast::error_code ec, size_t) {
    self->response_.reset();
    self->state_ = State::kClosed;
    if (ec) return;
    beast::error_code ignored;
    self->stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    self->stream_.expires_after(kLingerTimeout);
    self->Linger(0);
  });
}

// After an error response to a request whose body was not read, keep reading (and discarding)
// for a short while before closing: closing with unread input would reset the connection and
// the client could lose the response.
void HttpSession::Linger(size_t drained) {
  if (drained > kLingerMaxBytes) return;
  continue_.resize(4096);
  stream_.async_read_some(asio::buffer(continue_.data(), continue_.size()),
                          [self = shared_from_this(), drained](beast::error_code ec, size_t n) {
                            if (!ec) self->Linger(drained + n);
                          });
}

void HttpSession::OnWrite(bool keep_alive, beast::error_code ec) {
  response_.reset();
  RequestDone();
  if (ec || !keep_alive) {
    DoClose();
    return;
  }
  DoReadRequest(/*first=*/false);
}

void HttpSession::FinishStreamed(bool keep_alive) {
  RequestDone();
  if (!keep_alive || server_->draining()) {
    DoClose();
    return;
  }
  DoReadRequest(/*first=*/false);
}

void HttpSession::RequestDone() {
  if (!in_request_) return;
  in_request_ = false;
  server_->in_flight_.fetch_sub(1, std::memory_order_acq_rel);
}

void HttpSession::DoClose() {
  state_ = State::kClosed;
  beast::error_code ec;
  stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
}

void HttpSession::OnDrain() {
  if (state_ == State::kIdle || (state_ == State::kReadingHeader && buffer_.size() == 0)) {
    stream_.cancel();
  }
}

// ---------------------------------------------------------------------------------------------
// HttpServer

HttpServer::HttpServer(HttpServerOptions options, HttpHandler* handler, GatewayMetrics* metrics)
    : options_(std::move(options)), handler_(handler), metrics_(metrics) {}

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Create(HttpServerOptions options,
                                                               HttpHandler* handler,
                                                               GatewayMetrics* metrics,
                                                               WorkerStateFactory factory) {
  if (options.threads < 1 || options.threads > 1024) {
    return absl::InvalidArgumentError("--threads must be between 1 and 1024");
  }
  auto host_port = SplitHostPort(options.listen);
  if (!host_port.ok()) return host_port.status();
  const auto& [host, port] = *host_port;

  tcp::endpoint endpoint;
  boost::system::error_code ec;
  const asio::ip::address address = asio::ip::make_address(host, ec);
  if (!ec) {
    endpoint = tcp::endpoint(address, port);
  } else {
    asio::io_context resolver_context;
    tcp::resolver resolver(resolver_context);
    auto results = resolver.resolve(host, std::to_string(port), ec);
    if (ec || results.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot resolve listen address ", options.listen, ": ", ec.message()));
    }
    endpoint = results.begin()->endpoint();
  }

  // SO_REUSEPORT would let this process silently share a port another server (say, a stale
  // gateway) already listens on. A probe bind without it fails in that case.
  if (port != 0) {
    asio::io_context probe_context;
    tcp::acceptor probe(probe_context);
    probe.open(endpoint.protocol(), ec);
    if (!ec) probe.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) probe.bind(endpoint, ec);
    if (ec) {
      return absl::UnavailableError(
          absl::StrCat("cannot listen on ", options.listen, ": ", ec.message()));
    }
  }

  std::unique_ptr<HttpServer> server(new HttpServer(options, handler, metrics));
  for (int i = 0; i < options.threads; ++i) {
    auto worker = std::make_unique<Worker>();
    worker->index = i;
    worker->ioc = std::make_unique<asio::io_context>(1);
    worker->acceptor = std::make_unique<tcp::acceptor>(*worker->ioc);
    tcp::acceptor& acceptor = *worker->acceptor;
    // Every worker binds the same resolved port (the first one's, if the port was 0).
    if (i > 0) endpoint.port(server->port_);
    auto fail = [&](const char* what) {
      return absl::UnavailableError(
          absl::StrCat("cannot listen on ", options.listen, ": ", what, ": ", ec.message()));
    };
    acceptor.open(endpoint.protocol(), ec);
    if (ec) return fail("open");
    acceptor.set_option(asio::socket_base::reuse_address(true), ec);
    if (ec) return fail("SO_REUSEADDR");
    acceptor.set_option(ReusePort(true), ec);
    if (ec) return fail("SO_REUSEPORT");
    acceptor.bind(endpoint, ec);
    if (ec) return fail("bind");
    acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) return fail("listen");
    if (i == 0) server->port_ = acceptor.local_endpoint().port();
    if (factory) worker->state = factory(i, *worker->ioc);
    server->workers_.push_back(std::move(worker));
  }
  return server;
}

HttpServer::~HttpServer() {
  Stop();
  // Thread-confined state first (it may own sockets of its io_context), then each io_context,
  // which destroys the handlers of anything unfinished (sessions included).
  for (auto& worker : workers_) worker->state.reset();
  for (auto& worker : workers_) {
    worker->acceptor.reset();
    worker->ioc.reset();
  }
}

void HttpServer::Start() {
  if (started_) return;
  started_ = true;
  for (auto& w : workers_) {
    Worker* worker = w.get();
    DoAccept(*worker);
    worker->thread = std::thread([worker] {
      while (true) {
        try {
          worker->ioc->run();
          return;
        } catch (const std::exception& e) {
          // Handlers do not throw by design; if one does, keep serving the other connections.
          LogError("unexpected exception in a worker thread",
                   {{"worker", absl::StrCat(worker->index)}, {"error", e.what()}});
        }
      }
    });
  }
}

void HttpServer::DoAccept(Worker& worker) {
  worker.acceptor->async_accept(
      *worker.ioc, [this, &worker](boost::system::error_code ec, tcp::socket socket) {
        if (ec == asio::error::operation_aborted || !worker.acceptor->is_open()) return;
        if (ec) {
          LogWarn("accept failed", {{"error", ec.message()}});
          // Out of descriptors and the like: back off briefly instead of spinning.
          auto timer = std::make_shared<asio::steady_timer>(*worker.ioc);
          timer->expires_after(std::chrono::milliseconds(50));
          timer->async_wait([this, &worker, timer](boost::system::error_code) {
            if (worker.acceptor->is_open()) DoAccept(worker);
          });
          return;
        }
        boost::system::error_code ignored;
        socket.set_option(tcp::no_delay(true), ignored);
        std::make_shared<HttpSession>(std::move(socket), this, worker.index)->Start();
        DoAccept(worker);
      });
}

void HttpServer::BeginShutdown() {
  draining_.store(true, std::memory_order_release);
  for (auto& w : workers_) {
    Worker* worker = w.get();
    asio::post(*worker->ioc, [worker] {
      boost::system::error_code ec;
      worker->acceptor->close(ec);
      std::vector<HttpSession*> sessions;
      {
        absl::MutexLock lock(&worker->sessions_mu);
        sessions.assign(worker->sessions.begin(), worker->sessions.end());
      }
      // Sessions are destroyed only on this thread, and OnDrain completes nothing inline, so
      // the pointers stay valid through this loop.
      for (HttpSession* session : sessions) session->OnDrain();
    });
  }
}

bool HttpServer::WaitIdle(std::chrono::steady_clock::time_point deadline) {
  while (in_flight() > 0) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

void HttpServer::Stop() {
  if (stopped_) return;
  stopped_ = true;
  for (auto& worker : workers_) worker->ioc->stop();
  for (auto& worker : workers_) {
    if (worker->thread.joinable()) worker->thread.join();
  }
}

}  // namespace tollgate::gateway
