#include "tests/testing/suite.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "services/common/status.h"

namespace tollgate::testing {
namespace {

// Prices mirror PROVIDERS.md §5 list prices (USD per million tokens).
constexpr const char* kCatalogTemplate = R"yaml(
providers:
  - name: mock
    dialect: openai
    base_url: http://127.0.0.1:$MOCK/v1
  - name: dead
    dialect: openai
    base_url: http://127.0.0.1:$DEAD/v1
  - name: mock-anthropic
    dialect: anthropic
    base_url: http://127.0.0.1:$MOCK/v1
  - name: mock-gemini
    dialect: gemini
    base_url: http://127.0.0.1:$MOCK/v1beta
  - name: mock-azure
    dialect: azure_openai
    base_url: http://127.0.0.1:$MOCK
    options: {api_version: "2024-10-21"}
deployments:
  - id: mock-gpt-4o-mini
    provider: mock
    upstream_model: gpt-4o-mini
    region: local
    prices: {input: "0.15", cached_input: "0.075", output: "0.60"}
    capabilities: [chat, stream, tools, json]
  - id: mock-gpt-4o
    provider: mock
    upstream_model: gpt-4o
    region: local
    prices: {input: "2.50", cached_input: "1.25", output: "10.00"}
    capabilities: [chat, stream, tools, json]
  - id: dead-gpt-4o-mini
    provider: dead
    upstream_model: gpt-4o-mini
    region: local
    prices: {input: "0.15", cached_input: "0.075", output: "0.60"}
  - id: mock-claude-sonnet-4
    provider: mock-anthropic
    upstream_model: claude-sonnet-4-20250514
    region: local
    prices: {input: "3.00", cached_input: "0.30", cache_write_5m: "3.75", cache_write_1h: "6.00",
             output: "15.00"}
    capabilities: [chat, stream, tools, vision, json, json_schema]
  - id: mock-gemini-2.5-flash
    provider: mock-gemini
    upstream_model: gemini-2.5-flash
    region: local
    prices: {input: "0.30", cached_input: "0.03", output: "2.50"}
    capabilities: [chat, stream, tools, vision, json, json_schema]
  - id: mock-azure-gpt-4o
    provider: mock-azure
    upstream_model: gpt-4o
    region: local
    prices: {input: "2.50", cached_input: "1.25", output: "10.00"}
    capabilities: [chat, stream, tools, json, json_schema]
  - id: mock-gemini-embedding-001
    provider: mock-gemini
    upstream_model: gemini-embedding-001
    region: local
    prices: {input: "0.15", output: "0"}
    capabilities: [embeddings]
  - id: mock-text-embedding-3-small
    provider: mock
    upstream_model: text-embedding-3-small
    region: local
    prices: {input: "0.02", output: "0"}
    capabilities: [embeddings]
models:
  - name: claude-sonnet-4
    owned_by: anthropic
    deployments: [mock-claude-sonnet-4]
  - name: gemini-2.5-flash
    owned_by: google
    deployments: [mock-gemini-2.5-flash]
  - name: azure-gpt-4o
    owned_by: openai
    deployments: [mock-azure-gpt-4o]
  - name: text-embedding-3-small
    owned_by: openai
    deployments: [mock-text-embedding-3-small]
  - name: gemini-embedding-001
    owned_by: google
    deployments: [mock-gemini-embedding-001]
  - name: gpt-4o-mini
    aliases: [mini]
    owned_by: openai
    deployments: [mock-gpt-4o-mini]
  - name: gpt-4o
    owned_by: openai
    deployments: [mock-gpt-4o]
  - name: resilient
    deployments: [dead-gpt-4o-mini, mock-gpt-4o-mini]
)yaml";

constexpr const char* kGatewayConfig = R"yaml(
keys:
  - key: tg-test-alpha-key
    id: alpha-key
    team: alpha
    environment: test
  - key: tg-test-beta-key
    id: beta-key
    team: beta
)yaml";

}  // namespace

std::string Suite::Binary(const std::string& name) {
  if (name == "tollgate-gateway") return TOLLGATE_GATEWAY_BIN;
  if (name == "tollgate-router") return TOLLGATE_ROUTER_BIN;
  if (name == "tollgate-ledger") return TOLLGATE_LEDGER_BIN;
  if (name == "tollgate-mock-provider") return TOLLGATE_MOCK_BIN;
  if (name == "tollgatectl") return TOLLGATECTL_BIN;
  return name;
}

absl::StatusOr<std::unique_ptr<Suite>> Suite::Start(const SuiteOptions& options) {
  std::unique_ptr<Suite> suite(new Suite());
  absl::Status st = suite->Boot(options);
  if (!st.ok()) {
    return absl::Status(st.code(), absl::StrCat(st.message(), "\n--- logs ---\n", suite->Logs()));
  }
  return suite;
}

absl::Status Suite::Boot(const SuiteOptions& options) {
  options_ = options;
  auto pg = PostgresServer::Start();
  if (!pg.ok()) return pg.status();
  pg_ = std::move(*pg);
  absl::Status st = pg_->CreateDatabase(database_);
  if (!st.ok()) return st;

  ledger_port_ = PickFreePort();
  ledger_admin_port_ = PickFreePort();
  router_port_ = PickFreePort();
  router_admin_port_ = PickFreePort();
  mock_port_ = PickFreePort();
  gateway_port_ = PickFreePort();
  dead_port_ = PickFreePort();  // nothing listens here: connect errors

  std::vector<std::pair<std::string, std::string>> vars = {{"$MOCK", absl::StrCat(mock_port_)},
                                                          {"$DEAD", absl::StrCat(dead_port_)}};
  for (const auto& [key, value] : options.catalog_vars) vars.emplace_back(key, value);
  WriteFile(dir() + "/catalog.yaml",
            absl::StrReplaceAll(options.catalog_template.empty() ? std::string(kCatalogTemplate)
                                                                 : options.catalog_template,
                                vars));
  WriteFile(dir() + "/gateway.yaml", std::string(kGatewayConfig) + options.gateway_config_extra);

  st = StartLedger();
  if (!st.ok()) return st;
  std::vector<std::string> router = {Binary("tollgate-router"),
                                     "--catalog=" + dir() + "/catalog.yaml",
                                     absl::StrCat("--listen=127.0.0.1:", router_port_),
                                     absl::StrCat("--admin_listen=", router_admin_address()),
                                     absl::StrCat("--metrics_listen=127.0.0.1:", PickFreePort())};
  router.insert(router.end(), options.router_flags.begin(), options.router_flags.end());
  st = StartProcess(router_, "router", router, router_port_);
  if (!st.ok()) return st;

  std::vector<std::string> mock = {Binary("tollgate-mock-provider"),
                                   absl::StrCat("--listen=127.0.0.1:", mock_port_)};
  mock.insert(mock.end(), options.mock_flags.begin(), options.mock_flags.end());
  st = StartProcess(mock_, "mock", mock, mock_port_);
  if (!st.ok()) return st;

  return StartGateway();
}

std::vector<std::string> Suite::GatewayArgv(int port, const std::string& spool) const {
  std::vector<std::string> gateway = {Binary("tollgate-gateway"),
                                      "--config=" + dir() + "/gateway.yaml",
                                      absl::StrCat("--listen=127.0.0.1:", port),
                                      absl::StrCat("--router=127.0.0.1:", router_port_),
                                      absl::StrCat("--ledger=127.0.0.1:", ledger_port_),
                                      "--spool_dir=" + spool};
  for (const std::string& flag : options_.gateway_flags) {
    gateway.push_back(absl::StrReplaceAll(flag, {{"$LEDGER_ADMIN", ledger_admin_address()}}));
  }
  return gateway;
}

namespace {

// Loopback upstreams are reached directly even where the environment sets a proxy.
std::map<std::string, std::string> GatewayEnv(const std::map<std::string, std::string>& extra) {
  std::map<std::string, std::string> env = extra;
  env.emplace("no_proxy", "127.0.0.1,localhost,::1");
  env.emplace("NO_PROXY", "127.0.0.1,localhost,::1");
  return env;
}

}  // namespace

std::string Suite::DefaultCatalogTemplate() { return kCatalogTemplate; }

absl::Status Suite::StartGateway() {
  // Each run logs to its own file, so a restart keeps the previous run's log.
  const std::string name =
      gateway_restarts_ == 0 ? std::string("gateway") : absl::StrCat("gateway.", gateway_restarts_);
  ++gateway_restarts_;
  return StartProcess(gateway_, name, GatewayArgv(gateway_port_, spool_dir()), gateway_port_,
                      GatewayEnv(options_.gateway_env));
}

absl::StatusOr<std::unique_ptr<Process>> Suite::StartExtraGateway(
    const std::string& name, int* port, const std::vector<std::string>& extra_flags) {
  *port = PickFreePort();
  std::vector<std::string> argv = GatewayArgv(*port, dir() + "/spool-" + name);
  argv.insert(argv.end(), extra_flags.begin(), extra_flags.end());
  std::unique_ptr<Process> process;
  TOLLGATE_RETURN_IF_ERROR(
      StartProcess(process, name, std::move(argv), *port, GatewayEnv(options_.gateway_env)));
  return process;
}

absl::Status TestTokens::Enable(const std::string& dir, SuiteOptions& options) {
  TOLLGATE_RETURN_IF_ERROR(WriteAdminTokensFile(
      dir + "/tokens.yaml", {{kAdmin, "ops", "admin", ""},
                             {kAlphaLead, "alpha-lead", "team-admin", "alpha"},
                             {kBetaLead, "beta-lead", "team-admin", "beta"},
                             {kAlphaViewer, "alpha-viewer", "viewer", "alpha"},
                             {kGateway, "gateways", "gateway", ""}}));
  WriteFile(dir + "/gateway.token", std::string(kGateway) + "\n");
  for (std::string flag : {"--admin_tokens_file=" + dir + "/tokens.yaml",
                           std::string("--key_poll_ms=200"), std::string("--key_heartbeat_ms=500")}) {
    options.ledger_flags.push_back(std::move(flag));
  }
  options.gateway_flags.push_back("--ledger_admin=$LEDGER_ADMIN");
  options.gateway_flags.push_back("--control_plane_token_file=" + dir + "/gateway.token");
  return absl::OkStatus();
}

absl::Status WriteAdminTokensFile(const std::string& path,
                                  const std::vector<ControlPlaneToken>& tokens) {
  std::string yaml = "tokens:\n";
  for (const ControlPlaneToken& t : tokens) {
    CommandResult hash =
        RunCommand({"/bin/sh", "-c", absl::StrCat("printf %s '", t.token, "' | sha256sum")});
    if (hash.exit_code != 0 || hash.output.size() < 64) {
      return absl::InternalError(absl::StrCat("sha256sum failed: ", hash.output));
    }
    absl::StrAppend(&yaml, "  - name: ", t.name, "\n    role: ", t.role,
                    "\n    sha256: ", hash.output.substr(0, 64), "\n");
    if (!t.team.empty()) absl::StrAppend(&yaml, "    team: ", t.team, "\n");
  }
  WriteFile(path, yaml);
  return absl::OkStatus();
}

void Suite::KillGateway() {
  if (gateway_) gateway_->Kill();
}

void Suite::StopGateway() {
  if (gateway_) gateway_->Stop();
}

absl::Status Suite::StartProcess(std::unique_ptr<Process>& slot, const std::string& name,
                                 std::vector<std::string> argv, int wait_port,
                                 const std::map<std::string, std::string>& env) {
  auto p = Process::Start(argv, dir() + "/" + name + ".log", env);
  if (!p.ok()) return p.status();
  slot = std::move(*p);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline) {
    if (!slot->Running()) {
      return absl::InternalError(absl::StrCat(name, " exited at start:\n", slot->LogTail()));
    }
    if (WaitForPort(wait_port, std::chrono::milliseconds(100)).ok()) return absl::OkStatus();
  }
  return absl::DeadlineExceededError(absl::StrCat(name, " did not listen on ", wait_port));
}

absl::Status Suite::StartLedger() {
  std::vector<std::string> ledger = {Binary("tollgate-ledger"),
                                     "--database_url=" + pg_->url(database_),
                                     absl::StrCat("--listen=127.0.0.1:", ledger_port_),
                                     absl::StrCat("--admin_listen=", ledger_admin_address()),
                                     absl::StrCat("--metrics_listen=127.0.0.1:", PickFreePort())};
  ledger.insert(ledger.end(), options_.ledger_flags.begin(), options_.ledger_flags.end());
  return StartProcess(ledger_, "ledger", ledger, ledger_port_);
}

void Suite::KillLedger() {
  if (ledger_) ledger_->Kill();
}

void Suite::KillRouter() {
  if (router_) router_->Kill();
}

void Suite::KillMock() {
  if (mock_) mock_->Kill();
}

std::string Suite::router_address() const { return absl::StrCat("127.0.0.1:", router_port_); }
std::string Suite::ledger_address() const { return absl::StrCat("127.0.0.1:", ledger_port_); }

void Suite::StopLedger() {
  if (ledger_) ledger_->Stop();
}

Suite::~Suite() {
  // Front to back, so nothing is left waiting on a dead dependency.
  if (gateway_) gateway_->Stop();
  if (mock_) mock_->Stop();
  if (router_) router_->Stop();
  if (ledger_) ledger_->Stop();
}

std::string Suite::router_admin_address() const {
  return absl::StrCat("127.0.0.1:", router_admin_port_);
}
std::string Suite::ledger_admin_address() const {
  return absl::StrCat("127.0.0.1:", ledger_admin_port_);
}

absl::StatusOr<std::string> Suite::Sql(const std::string& sql) { return pg_->Query(sql, database_); }

CommandResult Suite::Ctl(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {Binary("tollgatectl"), "--router_admin=" + router_admin_address(),
                                   "--ledger_admin=" + ledger_admin_address()};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunCommand(argv);
}

std::string Suite::Logs() const {
  std::string out;
  for (const auto* p : {&ledger_, &router_, &mock_, &gateway_}) {
    if (*p) absl::StrAppend(&out, "== ", (*p)->log_path(), "\n", (*p)->LogTail(3000), "\n");
  }
  return out;
}

}  // namespace tollgate::testing
