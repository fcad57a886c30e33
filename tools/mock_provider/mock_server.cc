#include "tools/mock_provider/mock_server.h"

#include <chrono>
#include <mutex>
#include <optional>
#include <thread>
#include <type_traits>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "boost/asio/dispatch.hpp"
#include "boost/asio/executor_work_guard.hpp"
#include "boost/asio/io_context.hpp"
#include "boost/asio/ip/tcp.hpp"
#include "boost/asio/ssl/context.hpp"
#include "boost/asio/ssl/error.hpp"
#include "boost/asio/steady_timer.hpp"
#include "boost/asio/write.hpp"
#include "boost/beast/core/flat_buffer.hpp"
#include "boost/beast/core/string.hpp"
#include "boost/beast/core/tcp_stream.hpp"
#include "boost/beast/http/parser.hpp"
#include "boost/beast/http/read.hpp"
#include "boost/beast/ssl/ssl_stream.hpp"
#include "services/common/logging.h"
#include "tools/mock_provider/openai_dialect.h"

namespace tollgate::tools::mock {
namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

namespace {

constexpr auto kReadTimeout = std::chrono::seconds(120);
constexpr auto kWriteTimeout = std::chrono::seconds(60);
constexpr auto kHandshakeTimeout = std::chrono::seconds(10);
constexpr auto kTlsShutdownTimeout = std::chrono::seconds(2);

using TlsStream = beast::ssl_stream<beast::tcp_stream>;

// One connection: read a request, execute its ResponsePlan, repeat. All its handlers run on the
// worker that owns its socket, one at a time, so it needs no locking. `Stream` is
// beast::tcp_stream (plain HTTP, the default and the fast path) or TlsStream (--tls_cert_file),
// which first completes a server handshake.
template <typename Stream>
class Session : public std::enable_shared_from_this<Session<Stream>> {
 public:
  static constexpr bool kTls = std::is_same_v<Stream, TlsStream>;

  Session(tcp::socket socket, MockHandler& handler) requires(!kTls)
      : stream_(std::move(socket)), timer_(stream_.get_executor()), handler_(handler) {}
  Session(tcp::socket socket, net::ssl::context& tls, MockHandler& handler) requires(kTls)
      : stream_(std::move(socket), tls), timer_(stream_.get_executor()), handler_(handler) {}

  void Start() {
    net::dispatch(stream_.get_executor(), [self = this->shared_from_this()] {
      if constexpr (kTls) {
        self->Handshake();
      } else {
        self->DoRead();
      }
    });
  }

 private:
  beast::tcp_stream& lowest() { return beast::get_lowest_layer(stream_); }

  void Handshake() {
    lowest().expires_after(kHandshakeTimeout);
    stream_.async_handshake(net::ssl::stream_base::server,
                            [self = this->shared_from_this()](beast::error_code ec) {
                              if (ec) {
                                LogDebug("TLS handshake failed", {{"error", ec.message()}});
                                return self->Close(/*graceful=*/false);
                              }
                              self->DoRead();
                            });
  }

  void DoRead() {
    parser_.emplace();
    parser_->body_limit(kMockBodyLimit);
    parser_->header_limit(64 * 1024);
    lowest().expires_after(kReadTimeout);
    http::async_read_header(stream_, buffer_, *parser_,
                            [self = this->shared_from_this()](beast::error_code ec, size_t) {
                              self->OnReadHeader(ec);
                            });
  }

  void OnReadHeader(beast::error_code ec) {
    if (ec) return Close(/*graceful=*/false);
    const auto& req = parser_->get();
    if (beast::iequals(req[http::field::expect], "100-continue")) {
      static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      lowest().expires_after(kWriteTimeout);
      net::async_write(stream_, net::buffer(kContinue.data(), kContinue.size()),
                       [self = this->shared_from_this()](beast::error_code ec, size_t) {
                         if (ec) return self->Close(/*graceful=*/false);
                         self->ReadBody();
                       });
      return;
    }
    ReadBody();
  }

  void ReadBody() {
    lowest().expires_after(kReadTimeout);
    http::async_read(
        stream_, buffer_, *parser_,
        [self = this->shared_from_this()](beast::error_code ec, size_t) { self->OnRead(ec); });
  }

  void OnRead(beast::error_code ec) {
    if (ec == http::error::body_limit) {
      ApiError error;
      error.status = 413;
      error.message =
          absl::StrCat("Request body too large: the limit is ", kMockBodyLimit, " bytes.");
      plan_ = JsonResponse(413, RenderErrorJson(error), /*keep_alive=*/false);
    } else if (ec) {
      return Close(/*graceful=*/false);
    } else {
      plan_ = handler_.Handle(parser_->get());
    }
    parser_.reset();
    step_ = 0;
    NextStep();
  }

  void NextStep() {
    if (step_ == plan_.steps.size()) {
      if (plan_.close) return Close(/*graceful=*/true);
      return DoRead();
    }
    const int64_t delay_ms = plan_.steps[step_].delay_ms;
    if (delay_ms <= 0) return WriteStep();
    timer_.expires_after(std::chrono::milliseconds(delay_ms));
    timer_.async_wait([self = this->shared_from_this()](beast::error_code ec) {
      if (ec) return self->Close(/*graceful=*/false);
      self->WriteStep();
    });
  }

  void WriteStep() {
    const size_t begin = step_ == 0 ? 0 : plan_.steps[step_ - 1].end;
    const size_t end = plan_.steps[step_].end;
    ++step_;
    if (end <= begin) return NextStep();
    lowest().expires_after(kWriteTimeout);
    net::async_write(stream_, net::buffer(plan_.bytes.data() + begin, end - begin),
                     [self = this->shared_from_this()](beast::error_code ec, size_t) {
                       if (ec) return self->Close(/*graceful=*/false);
                       self->NextStep();
                     });
  }

  // Sends FIN after everything written so far; the socket closes when the session is released.
  // Over TLS a graceful close (a plan that ends with Connection: close) first sends close_notify,
  // so clients reading to EOF see a clean end rather than a truncated stream.
  void Close(bool graceful) {
    if constexpr (kTls) {
      if (graceful) {
        lowest().expires_after(kTlsShutdownTimeout);
        stream_.async_shutdown(
            [self = this->shared_from_this()](beast::error_code) { self->CloseSocket(); });
        return;
      }
    }
    CloseSocket();
  }

  void CloseSocket() {
    beast::error_code ec;
    lowest().socket().shutdown(tcp::socket::shutdown_send, ec);
    lowest().close();
  }

  Stream stream_;
  net::steady_timer timer_;
  MockHandler& handler_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  ResponsePlan plan_;
  size_t step_ = 0;
};

absl::StatusOr<tcp::endpoint> ParseListen(const std::string& listen) {
  const size_t colon = listen.rfind(':');
  if (colon == std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("listen address '", listen, "' is not host:port"));
  }
  std::string host = listen.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  int port = 0;
  if (!absl::SimpleAtoi(listen.substr(colon + 1), &port) || port < 0 || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("bad port in listen address '", listen, "'"));
  }
  if (host.empty() || host == "*") host = "0.0.0.0";
  if (host == "localhost") host = "127.0.0.1";
  beast::error_code ec;
  const net::ip::address address = net::ip::make_address(host, ec);
  if (ec) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad host in listen address '", listen, "': ", ec.message()));
  }
  return tcp::endpoint(address, static_cast<uint16_t>(port));
}

}  // namespace

class MockServer::Impl {
 public:
  Impl(int threads, MockOptions options, std::unique_ptr<net::ssl::context> tls)
      : handler_(std::move(options)), tls_(std::move(tls)) {
    for (int i = 0; i < threads; ++i) {
      contexts_.push_back(std::make_unique<net::io_context>(1));
      guards_.emplace_back(contexts_.back()->get_executor());
    }
    acceptor_.emplace(*contexts_.front());
    accept_retry_.emplace(*contexts_.front());
  }

  ~Impl() { Stop(); }

  absl::Status Listen(const tcp::endpoint& endpoint) {
    beast::error_code ec;
    acceptor_->open(endpoint.protocol(), ec);
    if (!ec) acceptor_->set_option(net::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_->bind(endpoint, ec);
    if (!ec) acceptor_->listen(net::socket_base::max_listen_connections, ec);
    if (ec) {
      return absl::UnavailableError(absl::StrCat("cannot listen on ",
                                                 endpoint.address().to_string(), ":",
                                                 endpoint.port(), ": ", ec.message()));
    }
    port_ = acceptor_->local_endpoint().port();
    return absl::OkStatus();
  }

  void Run() {
    net::dispatch(acceptor_->get_executor(), [this] { DoAccept(); });
    for (auto& ctx : contexts_) {
      threads_.emplace_back([ctx = ctx.get()] { ctx->run(); });
    }
  }

  void Stop() {
    std::lock_guard<std::mutex> lock(stop_mu_);
    if (stopped_) return;
    stopped_ = true;
    for (auto& guard : guards_) guard.reset();
    for (auto& ctx : contexts_) ctx->stop();
    for (auto& t : threads_) {
      if (t.joinable()) t.join();
    }
    // No worker runs any more: the acceptor can be closed from this thread.
    beast::error_code ec;
    acceptor_->close(ec);
  }

  int port() const { return port_; }
  MockHandler& handler() { return handler_; }

 private:
  void DoAccept() {
    net::io_context& worker = *contexts_[next_++ % contexts_.size()];
    acceptor_->async_accept(worker, [this](beast::error_code ec, tcp::socket socket) {
      if (ec == net::error::operation_aborted || !acceptor_->is_open()) return;
      if (ec) {
        // E.g. EMFILE: back off briefly instead of spinning.
        LogWarn("accept failed", {{"error", ec.message()}});
        accept_retry_->expires_after(std::chrono::milliseconds(50));
        accept_retry_->async_wait([this](beast::error_code wait_ec) {
          if (!wait_ec) DoAccept();
        });
        return;
      }
      beast::error_code opt_ec;
      socket.set_option(tcp::no_delay(true), opt_ec);
      if (tls_ != nullptr) {
        std::make_shared<Session<TlsStream>>(std::move(socket), *tls_, handler_)->Start();
      } else {
        std::make_shared<Session<beast::tcp_stream>>(std::move(socket), handler_)->Start();
      }
      DoAccept();
    });
  }

  // Declaration order matters for destruction: the acceptor and timer before their io_context,
  // the io_contexts (and the sessions their pending handlers own) before the handler.
  MockHandler handler_;
  // Null for plain HTTP. Read-only once the workers run (OpenSSL contexts are safe to share then).
  const std::unique_ptr<net::ssl::context> tls_;
  std::vector<std::unique_ptr<net::io_context>> contexts_;
  std::vector<net::executor_work_guard<net::io_context::executor_type>> guards_;
  std::optional<tcp::acceptor> acceptor_;
  std::optional<net::steady_timer> accept_retry_;
  std::vector<std::thread> threads_;
  size_t next_ = 0;  // only used on the acceptor's thread
  int port_ = 0;
  std::mutex stop_mu_;
  bool stopped_ ABSL_GUARDED_BY(stop_mu_) = false;
};

namespace {

absl::StatusOr<std::unique_ptr<net::ssl::context>> MakeServerTls(const MockTlsFiles& files) {
  if (files.cert_file.empty() != files.key_file.empty()) {
    return absl::InvalidArgumentError("TLS needs both a certificate file and a private key file");
  }
  if (files.cert_file.empty()) return std::unique_ptr<net::ssl::context>();
  auto tls = std::make_unique<net::ssl::context>(net::ssl::context::tls_server);
  beast::error_code ec;
  tls->set_options(net::ssl::context::default_workarounds | net::ssl::context::no_sslv2 |
                       net::ssl::context::no_sslv3 | net::ssl::context::no_tlsv1 |
                       net::ssl::context::no_tlsv1_1,
                   ec);
  if (!ec) tls->use_certificate_chain_file(files.cert_file, ec);
  if (ec) {
    return absl::InvalidArgumentError(absl::StrCat("cannot load the TLS certificate chain '",
                                                   files.cert_file, "': ", ec.message()));
  }
  tls->use_private_key_file(files.key_file, net::ssl::context::pem, ec);
  if (ec) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot load the TLS private key '", files.key_file, "': ", ec.message()));
  }
  return tls;
}

}  // namespace

absl::StatusOr<std::unique_ptr<MockServer>> MockServer::Start(const std::string& listen,
                                                              int threads, MockOptions options,
                                                              const MockTlsFiles& tls_files) {
  if (threads < 1) return absl::InvalidArgumentError("threads must be >= 1");
  auto endpoint = ParseListen(listen);
  if (!endpoint.ok()) return endpoint.status();
  auto tls = MakeServerTls(tls_files);
  if (!tls.ok()) return tls.status();
  auto impl = std::make_unique<Impl>(threads, std::move(options), std::move(*tls));
  if (absl::Status st = impl->Listen(*endpoint); !st.ok()) return st;
  impl->Run();
  return std::unique_ptr<MockServer>(new MockServer(std::move(impl)));
}

MockServer::MockServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
MockServer::~MockServer() = default;
int MockServer::port() const { return impl_->port(); }
void MockServer::Stop() { impl_->Stop(); }
MockHandler& MockServer::handler() { return impl_->handler(); }

}  // namespace tollgate::tools::mock
