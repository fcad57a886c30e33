// tollgate-mock-provider: a fast, deterministic simulator of LLM provider APIs (OpenAI Chat
// Completions, Azure OpenAI, Anthropic Messages, Gemini generateContent) for tests, the local demo
// and benchmarks. Behaviour: mock_handler.h; content rules: mock_logic.h; wire formats: the
// *_dialect.h headers.

#include <csignal>
#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "boost/asio/io_context.hpp"
#include "boost/asio/signal_set.hpp"
#include "services/common/logging.h"
#include "tools/mock_provider/mock_server.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:9090", "Address to serve HTTP on, host:port.");
ABSL_FLAG(int, threads, 2, "Worker threads, each with its own event loop.");
ABSL_FLAG(int64_t, latency_ms, 0,
          "Default delay of non-stream responses (directive latency_ms overrides).");
ABSL_FLAG(int64_t, ttft_ms, 0,
          "Default delay before the first chunk of a stream (directive ttft_ms overrides).");
ABSL_FLAG(int64_t, inter_token_ms, 0,
          "Default delay between streamed content chunks (directive inter_token_ms overrides).");
ABSL_FLAG(std::string, require_key, "",
          "If set, every API route requires this key in its dialect's header, else that "
          "provider's auth error: OpenAI 'Authorization: Bearer', Azure 'api-key', Anthropic "
          "'x-api-key', Gemini 'x-goog-api-key' or ?key=.");
ABSL_FLAG(std::string, log_level, "warn", "Minimum log level: trace|debug|info|warn|error.");
ABSL_FLAG(std::string, tls_cert_file, "",
          "PEM certificate chain (leaf first). With --tls_key_file, the mock serves HTTPS only "
          "(TLS 1.2+) on --listen; without both, plain HTTP. For TLS tests of the gateway.");
ABSL_FLAG(std::string, tls_key_file, "",
          "PEM private key (unencrypted) of --tls_cert_file; both or neither must be set.");

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Mock LLM provider speaking the OpenAI, Azure OpenAI, Anthropic and Gemini dialects.\n"
      "  tollgate-mock-provider --listen=127.0.0.1:9090 [--threads=2] [--ttft_ms=N] ...\n"
      "  [--tls_cert_file=cert.pem --tls_key_file=key.pem]   (HTTPS instead of HTTP)\n"
      "Routes: POST /v1/chat/completions, /openai/deployments/{d}/chat/completions?api-version=,\n"
      "/openai/v1/chat/completions, /v1/messages, /v1beta/models/{m}:generateContent,\n"
      "/v1beta/models/{m}:streamGenerateContent?alt=sse.\n"
      "Directives: put \"[[mock: status=429 retry_after=2 tokens=5 ...]]\" in the last user\n"
      "message or send x-mock-<name> headers. Stats: GET /_mock/stats, POST /_mock/reset.");
  absl::ParseCommandLine(argc, argv);
  tollgate::InitLogging("mock-provider", absl::GetFlag(FLAGS_log_level));

  tollgate::tools::mock::MockOptions options;
  options.latency_ms = absl::GetFlag(FLAGS_latency_ms);
  options.ttft_ms = absl::GetFlag(FLAGS_ttft_ms);
  options.inter_token_ms = absl::GetFlag(FLAGS_inter_token_ms);
  options.require_key = absl::GetFlag(FLAGS_require_key);
  if (options.latency_ms < 0 || options.ttft_ms < 0 || options.inter_token_ms < 0) {
    std::fprintf(stderr, "tollgate-mock-provider: delays must not be negative\n");
    return 1;
  }

  // Installed before the workers start so a signal during start-up is not lost.
  boost::asio::io_context main_context(1);
  boost::asio::signal_set signals(main_context, SIGINT, SIGTERM);
  signals.async_wait([](const boost::system::error_code&, int) {});

  const std::string listen = absl::GetFlag(FLAGS_listen);
  tollgate::tools::mock::MockTlsFiles tls;
  tls.cert_file = absl::GetFlag(FLAGS_tls_cert_file);
  tls.key_file = absl::GetFlag(FLAGS_tls_key_file);
  if (tls.cert_file.empty() != tls.key_file.empty()) {
    std::fprintf(stderr,
                 "tollgate-mock-provider: --tls_cert_file and --tls_key_file go together\n");
    return 1;
  }
  auto server =
      tollgate::tools::mock::MockServer::Start(listen, absl::GetFlag(FLAGS_threads), options, tls);
  if (!server.ok()) {
    std::fprintf(stderr, "tollgate-mock-provider: %s\n",
                 std::string(server.status().message()).c_str());
    return 1;
  }
  tollgate::LogInfo("listening", {{"listen", listen},
                                  {"port", absl::StrCat((*server)->port())},
                                  {"scheme", tls.cert_file.empty() ? "http" : "https"},
                                  {"threads", absl::StrCat(absl::GetFlag(FLAGS_threads))}});
  main_context.run();  // returns once the signal handler has run
  tollgate::LogInfo("stopping");
  (*server)->Stop();
  return 0;
}
