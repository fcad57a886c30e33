// TLS and mutual TLS between the services (issue 8 item 5; docs/security.md): a throw-away CA,
// one server certificate for the router and the ledger, client certificates for the gateway and
// tollgatectl. Every gRPC listener requires a client certificate from the CA; the test shows the
// whole request path and the control plane working over mTLS, and plaintext, certificate-less
// and wrong-CA clients refused.

#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "gtest/gtest.h"
#include "tests/testing/certs.h"
#include "tests/testing/http_client.h"
#include "tests/testing/suite.h"

namespace tollgate::testing {
namespace {

using Clock = std::chrono::steady_clock;

class GrpcTlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    const std::string d = dir_->path();
    ASSERT_TRUE(MakeCa(d, "ca", "Tollgate Services CA").ok());
    ASSERT_TRUE(MakeLeafCert(d, "ca", "service", CertUse::kServer).ok());
    ASSERT_TRUE(MakeLeafCert(d, "ca", "gateway", CertUse::kClient).ok());
    ASSERT_TRUE(MakeLeafCert(d, "ca", "operator", CertUse::kClient).ok());
    ASSERT_TRUE(MakeCa(d, "rogue-ca", "Someone Else's CA").ok());
    ASSERT_TRUE(MakeLeafCert(d, "rogue-ca", "rogue", CertUse::kClient).ok());

    const std::vector<std::string> server_tls = {
        "--tls_cert_file=" + d + "/service.pem", "--tls_key_file=" + d + "/service.key",
        "--tls_ca_file=" + d + "/ca.pem", "--tls_require_client_cert"};
    SuiteOptions options;
    options.router_flags = server_tls;
    options.ledger_flags = server_tls;
    options.gateway_flags = {"--tls_cert_file=" + d + "/gateway.pem",
                             "--tls_key_file=" + d + "/gateway.key",
                             "--tls_ca_file=" + d + "/ca.pem"};
    auto suite = Suite::Start(options);
    ASSERT_TRUE(suite.ok()) << suite.status();
    suite_ = suite->release();
  }

  static void TearDownTestSuite() {
    delete suite_;
    delete dir_;
  }

  // tollgatectl with the given client certificate ("" = none) trusting `ca` ("" = plaintext).
  static CommandResult Ctl(const std::string& cert, const std::string& ca,
                           std::vector<std::string> args) {
    const std::string d = dir_->path();
    if (!ca.empty()) args.push_back("--tls_ca_file=" + d + "/" + ca + ".pem");
    if (!cert.empty()) {
      args.push_back("--tls_cert_file=" + d + "/" + cert + ".pem");
      args.push_back("--tls_key_file=" + d + "/" + cert + ".key");
    }
    return suite_->Ctl(args);
  }

  static Suite* suite_;
  static TempDir* dir_;
};

Suite* GrpcTlsTest::suite_ = nullptr;
TempDir* GrpcTlsTest::dir_ = nullptr;

TEST_F(GrpcTlsTest, RequestsAndUsageFlowOverMutualTls) {
  // Gateway -> router (Route, Watch, outcomes) and gateway -> ledger (Ingest) are all mTLS.
  auto r = HttpCall(suite_->gateway_port(), "POST", "/v1/chat/completions",
                    R"({"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]})",
                    {{"authorization", std::string("Bearer ") + Suite::kAlphaKey}});
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->status, 200) << r->body << suite_->Logs();
  const std::string request_id = r->header("x-tollgate-request-id");
  std::string count;
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  while (Clock::now() < deadline) {
    absl::StatusOr<std::string> out = suite_->Sql(absl::StrCat(
        "SELECT count(*) FROM usage_events WHERE event_id = '", request_id, "'"));
    count = out.ok() ? std::string(absl::StripAsciiWhitespace(*out)) : "";
    if (count == "1") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(count, "1") << "the usage event never reached the ledger over mTLS\n" << suite_->Logs();
}

TEST_F(GrpcTlsTest, OperatorsNeedACertificateFromTheCa) {
  CommandResult ok = Ctl("operator", "ca", {"spend", "--since", "1h", "--format=csv"});
  EXPECT_EQ(ok.exit_code, 0) << ok.output;
  CommandResult catalog = Ctl("operator", "ca", {"catalog"});
  EXPECT_EQ(catalog.exit_code, 0) << catalog.output;

  // Plaintext against a TLS listener, TLS without a client certificate, and a client
  // certificate from another CA: all refused, with the gRPC status on one line.
  for (const auto& [cert, ca] : std::vector<std::pair<std::string, std::string>>{
           {"", ""}, {"", "ca"}, {"rogue", "ca"}}) {
    CommandResult refused = Ctl(cert, ca, {"spend", "--since", "1h", "--timeout=3s"});
    EXPECT_NE(refused.exit_code, 0) << "cert '" << cert << "' ca '" << ca << "'";
    EXPECT_TRUE(absl::StrContains(refused.output, "UNAVAILABLE")) << refused.output;
  }
  // A client that does not trust the servers' CA refuses them.
  CommandResult untrusted = Ctl("operator", "rogue-ca", {"catalog", "--timeout=3s"});
  EXPECT_NE(untrusted.exit_code, 0);
}

TEST_F(GrpcTlsTest, MisconfiguredTlsFailsAtStartWithAClearError) {
  const std::string d = dir_->path();
  struct Case {
    std::vector<std::string> flags;
    std::string message;
  };
  for (const Case& c : std::vector<Case>{
           {{"--tls_cert_file=" + d + "/service.pem"}, "must be given together"},
           {{"--tls_cert_file=" + d + "/service.pem", "--tls_key_file=" + d + "/service.key",
             "--tls_require_client_cert"},
            "--tls_require_client_cert needs"},
           {{"--tls_cert_file=" + d + "/missing.pem", "--tls_key_file=" + d + "/service.key"},
            "--tls_cert_file: cannot read"},
           {{"--tls_cert_file=" + d + "/service.cnf", "--tls_key_file=" + d + "/service.key"},
            "is not PEM"}}) {
    std::vector<std::string> argv = {Suite::Binary("tollgate-router"),
                                     "--catalog=" + suite_->catalog_path(),
                                     "--listen=127.0.0.1:0", "--admin_listen=127.0.0.1:0",
                                     "--metrics_listen=127.0.0.1:0"};
    argv.insert(argv.end(), c.flags.begin(), c.flags.end());
    CommandResult r = RunCommand(argv);
    EXPECT_NE(r.exit_code, 0) << c.message;
    EXPECT_TRUE(absl::StrContains(r.output, c.message)) << r.output;
  }
}

}  // namespace
}  // namespace tollgate::testing
