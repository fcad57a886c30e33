#pragma once
// The whole Tollgate suite as real processes on loopback, for integration tests and benchmarks:
// a throw-away PostgreSQL, tollgate-ledger, tollgate-router, tollgate-mock-provider and
// tollgate-gateway, each on a free port, with a catalog and client keys written to a temp dir.
//
//   auto suite = tollgate::testing::Suite::Start();
//   ASSERT_TRUE(suite.ok()) << suite.status();
//   HttpCall((*suite)->gateway_port(), "POST", "/v1/chat/completions", body,
//            {{"authorization", "Bearer " + Suite::kAlphaKey}});
//
// Not thread-safe; one owner. Processes are stopped (SIGTERM) by the destructor.

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "tests/testing/postgres.h"
#include "tests/testing/process.h"

namespace tollgate::testing {

struct SuiteOptions {
  // Extra flags for each service. In gateway_flags, "$LEDGER_ADMIN" is replaced by the ledger's
  // admin address (e.g. "--ledger_admin=$LEDGER_ADMIN" for virtual keys, docs/tenancy.md).
  std::vector<std::string> gateway_flags;
  std::vector<std::string> ledger_flags;
  std::vector<std::string> router_flags;
  std::vector<std::string> mock_flags;
  // Catalog YAML replacing the default one; "$MOCK" and "$DEAD" are replaced by the mock's and
  // the dead port, and each key of catalog_vars by its value. Empty: the default catalog.
  std::string catalog_template;
  std::map<std::string, std::string> catalog_vars;
  // Environment variables added to the gateway process's (inherited) environment, e.g.
  // HTTPS_PROXY / NO_PROXY or a provider key; kept across gateway restarts.
  std::map<std::string, std::string> gateway_env;
  // YAML appended to the generated gateway config (after its `keys:` list), e.g. a
  // `guardrails:` section.
  std::string gateway_config_extra;
};

// One control-plane bearer token for the ledger's --admin_tokens_file (docs/tenancy.md).
struct ControlPlaneToken {
  std::string token;  // plaintext; the file holds only its SHA-256
  std::string name;
  std::string role;   // admin, team-admin, viewer, gateway
  std::string team;   // team-admin and viewer only
};

// Writes an --admin_tokens_file at `path` (hashes computed with sha256sum, as an operator would).
absl::Status WriteAdminTokensFile(const std::string& path,
                                  const std::vector<ControlPlaneToken>& tokens);

// The control-plane tokens the tenancy, budget and other integration tests run with.
struct TestTokens {
  static constexpr const char* kAdmin = "admin-token";             // ops, admin
  static constexpr const char* kAlphaLead = "alpha-lead-token";    // team-admin of alpha
  static constexpr const char* kBetaLead = "beta-lead-token";      // team-admin of beta
  static constexpr const char* kAlphaViewer = "alpha-viewer-token";  // viewer of alpha
  static constexpr const char* kGateway = "gateway-token";         // gateway

  // Writes <dir>/tokens.yaml (all five) and <dir>/gateway.token, and adds to `options` what
  // turns tenancy on: the ledger's tokens file with fast key polling and heartbeats, and the
  // gateway's --ledger_admin and token file.
  static absl::Status Enable(const std::string& dir, SuiteOptions& options);
};

class Suite {
 public:
  // Client keys in the gateway's config: key -> (id, team).
  static constexpr const char* kAlphaKey = "tg-test-alpha-key";  // id alpha-key, team alpha
  static constexpr const char* kBetaKey = "tg-test-beta-key";    // id beta-key, team beta

  static absl::StatusOr<std::unique_ptr<Suite>> Start(const SuiteOptions& options = {});
  ~Suite();

  int gateway_port() const { return gateway_port_; }
  int mock_port() const { return mock_port_; }
  std::string router_admin_address() const;
  std::string ledger_admin_address() const;
  PostgresServer& postgres() { return *pg_; }
  const std::string& database() const { return database_; }
  const std::string& dir() const { return dir_.path(); }

  // Runs SQL against the ledger's database and returns psql's unaligned output.
  absl::StatusOr<std::string> Sql(const std::string& sql);

  // Ledger lifecycle, for durability tests.
  void KillLedger();
  void StopLedger();
  absl::Status StartLedger();

  // Gateway lifecycle, for durability tests. The gateway's usage spool is spool_dir(), kept
  // across restarts.
  // Another gateway like the suite's (same config, router, ledger and gateway_flags) on a free
  // port (*port), with its own spool and log (<dir>/<name>.log) and `extra_flags` appended.
  absl::StatusOr<std::unique_ptr<Process>> StartExtraGateway(
      const std::string& name, int* port, const std::vector<std::string>& extra_flags = {});
  void KillGateway();  // SIGKILL
  void StopGateway();  // SIGTERM, graceful
  absl::Status StartGateway();
  std::string spool_dir() const { return dir() + "/spool"; }

  // SIGKILL of the mock provider, for provider-outage tests.
  void KillMock();

  // Router lifecycle, for router-unavailability tests.
  void KillRouter();
  std::string router_address() const;
  // The ledger's data-plane address (Ingest), e.g. for an extra gateway started by a test.
  std::string ledger_address() const;
  std::string catalog_path() const { return dir() + "/catalog.yaml"; }

  // Runs tollgatectl with the suite's admin addresses prepended.
  CommandResult Ctl(const std::vector<std::string>& args);

  // Log tails of every process, for failure messages.
  std::string Logs() const;

  // The default catalog template (SuiteOptions::catalog_template); it ends inside `models:`, so
  // a test may append model entries.
  static std::string DefaultCatalogTemplate();

  // Paths of the built binaries (compile-time definitions).
  static std::string Binary(const std::string& name);

 private:
  Suite() = default;
  absl::Status Boot(const SuiteOptions& options);
  std::vector<std::string> GatewayArgv(int port, const std::string& spool) const;
  absl::Status StartProcess(std::unique_ptr<Process>& slot, const std::string& name,
                            std::vector<std::string> argv, int wait_port,
                            const std::map<std::string, std::string>& env = {});

  TempDir dir_;
  std::unique_ptr<PostgresServer> pg_;
  std::string database_ = "tollgate";
  SuiteOptions options_;
  int ledger_port_ = 0, ledger_admin_port_ = 0, router_port_ = 0, router_admin_port_ = 0;
  int mock_port_ = 0, gateway_port_ = 0, dead_port_ = 0;
  int gateway_restarts_ = 0;
  std::unique_ptr<Process> ledger_, router_, mock_, gateway_;
};

}  // namespace tollgate::testing
