#include "tools/tollgatectl/route_cmd.h"

#include <algorithm>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "boost/json/array.hpp"
#include "boost/json/object.hpp"
#include "boost/json/serialize.hpp"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "services/common/money.h"
#include "tollgate/v1/router.grpc.pb.h"

namespace tollgate::tools::ctl {
namespace json = boost::json;
namespace {

absl::Status Invalid(std::string message) { return absl::InvalidArgumentError(std::move(message)); }

bool IsBoolFlag(std::string_view name) { return name == "stream" || name == "tools"; }

// The positional arguments (same rules as ParseRouteCommand; --stream and --tools take no
// value); empty when the command line does not split.
std::vector<std::string> Positional(const std::vector<std::string>& args) {
  absl::StatusOr<CtlArgs> split = SplitArgs(args, IsBoolFlag);
  return split.ok() ? split->positional : std::vector<std::string>();
}

std::string Table(const std::vector<std::vector<std::string>>& rows,
                  const std::vector<bool>& right_aligned) {
  return RenderAligned(rows, right_aligned, /*rule_before=*/0);
}

std::string Ms(int64_t us) {
  return us <= 0 ? "-" : absl::StrFormat("%.1f", static_cast<double>(us) / 1000);
}

std::string CircuitName(v1::CircuitState state) {
  switch (state) {
    case v1::CIRCUIT_OPEN:
      return "open";
    case v1::CIRCUIT_HALF_OPEN:
      return "half-open";
    default:
      return "closed";
  }
}

std::string Left(int64_t until_ms, absl::Time now) {
  const absl::Duration left = absl::FromUnixMillis(until_ms) - now;
  return absl::StrFormat("%.1fs", std::max(0.0, absl::ToDoubleSeconds(left)));
}

std::string Use(int64_t used, int64_t limit) {
  return absl::StrCat(used, "/", limit > 0 ? absl::StrCat(limit) : "-");
}

std::string CircuitCell(const v1::DeploymentHealth& h, absl::Time now) {
  std::string cell = CircuitName(h.circuit());
  if (h.circuit() == v1::CIRCUIT_OPEN && h.circuit_open_until_unix_ms() > 0) {
    absl::StrAppend(&cell, " (", Left(h.circuit_open_until_unix_ms(), now), ")");
  }
  return cell;
}

std::string HealthTable(const std::vector<const v1::DeploymentHealth*>& health,
                        const std::vector<const v1::Deployment*>& deployments, absl::Time now) {
  std::vector<std::vector<std::string>> rows = {
      {"id", "provider", "upstream_model", "region", "circuit", "available", "failures",
       "latency_ms", "ttft_ms", "error_rate", "cooldown", "rpm", "tpm", "near_limit"}};
  for (size_t i = 0; i < health.size(); ++i) {
    const v1::DeploymentHealth& h = *health[i];
    const v1::Deployment* d = i < deployments.size() ? deployments[i] : nullptr;
    rows.push_back({h.deployment_id(), d != nullptr ? d->provider() : "-",
                    d != nullptr ? d->upstream_model() : "-", d != nullptr ? d->region() : "-",
                    CircuitCell(h, now), h.available() ? "yes" : "no",
                    absl::StrCat(h.consecutive_failures()), Ms(h.latency_ewma_us()),
                    Ms(h.ttft_ewma_us()), absl::StrFormat("%.3f", h.error_rate()),
                    h.cooldown_until_unix_ms() > 0 ? Left(h.cooldown_until_unix_ms(), now) : "-",
                    Use(h.rpm_used(), h.rpm_limit()), Use(h.tpm_used(), h.tpm_limit()),
                    h.near_limit() ? "yes" : "no"});
  }
  std::vector<bool> right(rows.front().size(), false);
  for (size_t c = 6; c <= 12; ++c) right[c] = true;
  return Table(rows, right);
}

json::object HealthJson(const v1::DeploymentHealth& h) {
  return json::object{{"circuit", CircuitName(h.circuit())},
                      {"available", h.available()},
                      {"consecutive_failures", h.consecutive_failures()},
                      {"latency_ewma_us", h.latency_ewma_us()},
                      {"ttft_ewma_us", h.ttft_ewma_us()},
                      {"error_rate", h.error_rate()},
                      {"outcomes", h.outcomes()},
                      {"circuit_open_until_unix_ms", h.circuit_open_until_unix_ms()},
                      {"cooldown_until_unix_ms", h.cooldown_until_unix_ms()},
                      {"rpm_used", h.rpm_used()},
                      {"rpm_limit", h.rpm_limit()},
                      {"tpm_used", h.tpm_used()},
                      {"tpm_limit", h.tpm_limit()},
                      {"near_limit", h.near_limit()}};
}

constexpr std::string_view kRouteHelp =
    "Usage: tollgatectl route explain --model=M [flags]\n"
    "\n"
    "Asks RouterAdmin.ExplainRoute how the router would route a request now, without side\n"
    "effects: the request class, the policy (and the rules that chose it), the candidates in\n"
    "order with their scores (estimated cost, latency and TTFT EWMAs, quality, weight) and\n"
    "reasons, and every deployment removed with the filter that removed it.\n"
    "\n"
    "Flags:\n"
    "  --model=M               Model or alias, as a client would ask (required)\n"
    "  --team=T --feature=F --customer=C --environment=E --api-key-id=K\n"
    "                          Attribution, as the gateway would send it\n"
    "  --tag=K=V               Attribution tag (repeatable)\n"
    "  --prompt-tokens=N       Estimated input tokens (default 0)\n"
    "  --max-tokens=N          Max output tokens (default 0: not given)\n"
    "  --stream                A streaming request (needs the stream capability)\n"
    "  --tools                 The request offers tools\n"
    "  --capability=C          Required capability (repeatable): tools, vision, json_schema, ...\n"
    "  --marker=M              Content marker (repeatable): code, reasoning, math\n"
    "  --class=C               Explicit class hint: simple, general, code, reasoning, tools, long\n"
    "  --format=table|json     Output format (default table)\n"
    "\n"
    "Example: tollgatectl route explain --model auto --team research --prompt-tokens 3000 "
    "--marker code\n";

constexpr std::string_view kDeploymentsHelp =
    "Usage: tollgatectl deployments [--format=table|json]\n"
    "\n"
    "Queries RouterAdmin.ListDeployments: every deployment of the live catalog with its health\n"
    "as the router sees it from the gateways' outcome reports: circuit (closed, open with the\n"
    "time left, half-open), availability, consecutive failures, latency and TTFT EWMAs (ms),\n"
    "error rate, 429 cooldown left, and requests/tokens over the last 60 s against the limits.\n";

}  // namespace

bool IsRouteCommand(const std::vector<std::string>& args) {
  return NamesCommand(args, IsBoolFlag,
                      [](std::string_view s) { return s == "route" || s == "deployments"; });
}

absl::StatusOr<RouteCommand> ParseRouteCommand(const std::vector<std::string>& args,
                                               const GetEnv& env) {
  RouteCommand cmd;
  cmd.global = GlobalOptionsFromEnv(env);
  absl::StatusOr<CtlArgs> split = SplitArgs(args, IsBoolFlag);
  if (!split.ok()) return split.status();
  const std::vector<CtlFlag>& flags = split->flags;
  const std::vector<std::string>& positional = split->positional;
  const bool help = split->help;
  if (positional.empty()) return Invalid("no command given");
  if (positional[0] == "help") {
    if (positional.size() != 2) return Invalid("help takes one command");
    cmd.kind = RouteCommand::Kind::kHelp;
    cmd.help_topic = positional[1];
    return cmd;
  }
  const std::string& command = positional[0];
  if (command == "route") {
    if (positional.size() < 2) {
      if (help) {
        cmd.help_topic = "route";
        return cmd;
      }
      return Invalid("route needs a subcommand: explain");
    }
    if (positional[1] != "explain") {
      return Invalid(absl::StrCat("unknown route subcommand '", positional[1], "' (use explain)"));
    }
    if (positional.size() > 2)
      return Invalid(absl::StrCat("unexpected argument '", positional[2], "'"));
    cmd.kind = RouteCommand::Kind::kExplain;
  } else if (command == "deployments") {
    if (positional.size() > 1)
      return Invalid(absl::StrCat("unexpected argument '", positional[1], "'"));
    cmd.kind = RouteCommand::Kind::kDeployments;
  } else {
    return Invalid(absl::StrCat("unknown command '", command, "'"));
  }
  if (help) {
    cmd.help_topic = command;
    cmd.kind = RouteCommand::Kind::kHelp;
    return cmd;
  }
  const bool explain = cmd.kind == RouteCommand::Kind::kExplain;
  v1::RouteRequest& r = cmd.request;
  r.set_request_id("tollgatectl-explain");
  // --ledger_admin is taken for symmetry with the other commands and not used; --token is not
  // taken (RouterAdmin has no token).
  const CommonFlagSpec spec{
      .formats = {Format::kTable, Format::kJson}, .command = command, .token = false};
  const auto own_flag = [&](const CtlFlag& f) -> absl::Status {
    auto count = [&](const char* what, int64_t& out) -> absl::Status {
      if (!ParseInt64(f.value, out) || out < 0) {
        return Invalid(absl::StrCat("bad --", what, " '", f.value, "' (a non-negative integer)"));
      }
      return absl::OkStatus();
    };
    auto boolean = [&](bool& out) -> absl::Status {
      if (!f.has_value || f.value == "true") {
        out = true;
      } else if (f.value == "false") {
        out = false;
      } else {
        return Invalid(absl::StrCat("bad --", f.name, " '", f.value, "' (true or false)"));
      }
      return absl::OkStatus();
    };
    if (explain && f.name == "model") {
      r.set_model(f.value);
    } else if (explain && f.name == "team") {
      r.mutable_attribution()->set_team(f.value);
    } else if (explain && f.name == "feature") {
      r.mutable_attribution()->set_feature(f.value);
    } else if (explain && f.name == "customer") {
      r.mutable_attribution()->set_customer(f.value);
    } else if (explain && f.name == "environment") {
      r.mutable_attribution()->set_environment(f.value);
    } else if (explain && f.name == "api-key-id") {
      r.mutable_attribution()->set_api_key_id(f.value);
    } else if (explain && f.name == "tag") {
      const size_t eq = f.value.find('=');
      if (eq == std::string::npos || eq == 0) {
        return Invalid(absl::StrCat("bad --tag '", f.value, "': expected KEY=VALUE"));
      }
      (*r.mutable_attribution()->mutable_tags())[f.value.substr(0, eq)] = f.value.substr(eq + 1);
    } else if (explain && f.name == "prompt-tokens") {
      int64_t n = 0;
      if (absl::Status st = count("prompt-tokens", n); !st.ok()) return st;
      r.set_estimated_input_tokens(n);
    } else if (explain && f.name == "max-tokens") {
      int64_t n = 0;
      if (absl::Status st = count("max-tokens", n); !st.ok()) return st;
      r.set_max_output_tokens(n);
    } else if (explain && f.name == "stream") {
      bool b = false;
      if (absl::Status st = boolean(b); !st.ok()) return st;
      r.set_stream(b);
    } else if (explain && f.name == "tools") {
      bool b = false;
      if (absl::Status st = boolean(b); !st.ok()) return st;
      r.set_has_tools(b);
    } else if (explain && f.name == "capability") {
      r.add_required_capabilities(f.value);
    } else if (explain && f.name == "marker") {
      r.add_content_markers(f.value);
    } else if (explain && f.name == "class") {
      r.set_class_hint(f.value);
    } else {
      return Invalid(
          absl::StrCat("unknown flag --", f.name, " for ", command, explain ? " explain" : ""));
    }
    return absl::OkStatus();
  };
  const absl::Status flags_status = ApplyFlags(flags, spec, cmd.global, cmd.format, own_flag);
  if (!flags_status.ok()) return flags_status;
  if (explain && r.model().empty()) return Invalid("route explain needs --model");
  return cmd;
}

std::string RouteUsage(std::string_view topic) {
  if (topic == "deployments") return std::string(kDeploymentsHelp);
  return std::string(kRouteHelp);
}

std::string RouteCommandsOverview() {
  return "Routing commands:\n"
         "  route explain  Why the router would route a request the way it does (ExplainRoute)\n"
         "  deployments    Deployments with their health: circuit, EWMAs, cooldowns, RPM/TPM\n";
}

std::string RenderExplainTable(const v1::ExplainRouteResponse& response, absl::Time now) {
  const v1::RouteResponse& d = response.decision();
  std::string out;
  absl::StrAppend(&out, "model:    ", d.model().empty() ? "-" : d.model(), "\n");
  absl::StrAppend(
      &out, "class:    ", response.request_class().empty() ? "-" : response.request_class(), "\n");
  absl::StrAppend(&out, "policy:   ", response.policy_path().empty() ? "-" : response.policy_path(),
                  "\n");
  absl::StrAppend(&out, "rules:    ",
                  response.rules().empty() ? "-" : absl::StrJoin(response.rules(), ", "), "\n");
  if (response.error_code() != 0) {
    absl::StrAppend(&out, "result:   Route fails with ",
                    absl::StatusCodeToString(static_cast<absl::StatusCode>(response.error_code())),
                    ": ", response.error(), "\n");
  } else {
    std::string cache = d.cache_ttl_ms() > 0 ? absl::StrCat(d.cache_ttl_ms(), " ms") : "off";
    if (d.draw_weighted()) absl::StrAppend(&cache, ", gateway draws the first by weight");
    absl::StrAppend(&out, "cache:    ", cache, "\n");
  }
  absl::StrAppend(&out, "catalog:  ", response.catalog_version(), "\n");
  if (d.candidates_size() > 0) {
    absl::StrAppend(&out, "\nCANDIDATES (in the order the gateway tries them)\n");
    std::vector<std::vector<std::string>> rows = {{"#", "deployment", "provider", "region",
                                                   "est_cost_usd", "latency_ms", "ttft_ms",
                                                   "quality", "weight", "reason"}};
    for (int i = 0; i < d.candidates_size(); ++i) {
      const v1::Candidate& c = d.candidates(i);
      rows.push_back({absl::StrCat(i + 1), c.deployment().id(), c.deployment().provider(),
                      c.deployment().region(), FormatPicoUsd(c.estimated_cost_pico()),
                      Ms(c.latency_ewma_us()), Ms(c.ttft_ewma_us()),
                      c.quality() < 0 ? "-" : absl::StrCat(c.quality()), absl::StrCat(c.weight()),
                      c.reason()});
    }
    std::vector<bool> right(rows.front().size(), false);
    right[0] = true;
    for (size_t col = 4; col <= 8; ++col) right[col] = true;
    absl::StrAppend(&out, Table(rows, right));
  }
  if (response.removed_size() > 0) {
    absl::StrAppend(&out, "\nREMOVED\n");
    std::vector<std::vector<std::string>> rows = {{"deployment", "filter", "detail"}};
    for (const v1::RemovedDeployment& r : response.removed()) {
      rows.push_back({r.deployment_id(), r.filter(), r.detail()});
    }
    absl::StrAppend(&out, Table(rows, std::vector<bool>(3, false)));
  }
  if (response.health_size() > 0) {
    absl::StrAppend(&out, "\nHEALTH\n");
    std::vector<const v1::DeploymentHealth*> health;
    for (const v1::DeploymentHealth& h : response.health()) health.push_back(&h);
    std::vector<const v1::Deployment*> deployments;
    for (const v1::DeploymentHealth& h : response.health()) {
      const v1::Deployment* found = nullptr;
      for (const v1::Candidate& c : d.candidates()) {
        if (c.deployment().id() == h.deployment_id()) found = &c.deployment();
      }
      deployments.push_back(found);
    }
    absl::StrAppend(&out, HealthTable(health, deployments, now));
  }
  return out;
}

std::string RenderExplainJson(const v1::ExplainRouteResponse& response) {
  const v1::RouteResponse& d = response.decision();
  json::object root;
  root["model"] = d.model();
  root["request_class"] = response.request_class();
  root["policy"] = response.policy();
  root["policy_path"] = response.policy_path();
  json::array rules;
  for (const std::string& rule : response.rules()) rules.emplace_back(rule);
  root["rules"] = std::move(rules);
  root["error_code"] = response.error_code();
  root["error"] = response.error();
  root["cache_ttl_ms"] = d.cache_ttl_ms();
  root["draw_weighted"] = d.draw_weighted();
  json::array candidates;
  for (const v1::Candidate& c : d.candidates()) {
    candidates.emplace_back(
        json::object{{"deployment", c.deployment().id()},
                     {"provider", c.deployment().provider()},
                     {"region", c.deployment().region()},
                     {"reason", c.reason()},
                     {"weight", c.weight()},
                     {"estimated_cost_usd", FormatPicoUsd(c.estimated_cost_pico())},
                     {"latency_ewma_us", c.latency_ewma_us()},
                     {"ttft_ewma_us", c.ttft_ewma_us()},
                     {"quality", c.quality()},
                     {"probe", c.probe()},
                     {"near_limit", c.near_limit()}});
  }
  root["candidates"] = std::move(candidates);
  json::array removed;
  for (const v1::RemovedDeployment& r : response.removed()) {
    removed.emplace_back(json::object{
        {"deployment", r.deployment_id()}, {"filter", r.filter()}, {"detail", r.detail()}});
  }
  root["removed"] = std::move(removed);
  root["catalog_version"] = response.catalog_version();
  return json::serialize(root) + "\n";
}

std::string RenderDeploymentsTable(const v1::ListDeploymentsResponse& response, absl::Time now) {
  std::vector<const v1::DeploymentHealth*> health;
  std::vector<const v1::Deployment*> deployments;
  for (int i = 0; i < response.health_size(); ++i) {
    health.push_back(&response.health(i));
    deployments.push_back(i < response.deployments_size() ? &response.deployments(i) : nullptr);
  }
  return absl::StrCat("catalog_version: ", response.catalog_version(), "\n\n",
                      HealthTable(health, deployments, now));
}

std::string RenderDeploymentsJson(const v1::ListDeploymentsResponse& response) {
  json::object root;
  root["catalog_version"] = response.catalog_version();
  json::array deployments;
  for (int i = 0; i < response.health_size(); ++i) {
    json::object o = HealthJson(response.health(i));
    o["id"] = response.health(i).deployment_id();
    if (i < response.deployments_size()) {
      const v1::Deployment& d = response.deployments(i);
      o["provider"] = d.provider();
      o["upstream_model"] = d.upstream_model();
      o["region"] = d.region();
    }
    deployments.emplace_back(std::move(o));
  }
  root["deployments"] = std::move(deployments);
  return json::serialize(root) + "\n";
}

int RunRouteCommand(const std::vector<std::string>& args, const GetEnv& env, std::ostream& out,
                    std::ostream& err) {
  absl::StatusOr<RouteCommand> cmd = ParseRouteCommand(args, env);
  if (!cmd.ok()) {
    const std::vector<std::string> positional = Positional(args);
    return PrintUsageError(err, cmd.status(),
                           RouteUsage(positional.empty() ? "" : positional.back()));
  }
  if (cmd->kind == RouteCommand::Kind::kHelp) {
    out << RouteUsage(cmd->help_topic);
    return 0;
  }
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
      AdminChannel(cmd->global.router_admin, cmd->global);
  if (!channel.ok()) return PrintError(err, channel.status());
  auto stub = v1::RouterAdmin::NewStub(*channel);
  grpc::ClientContext context;
  SetDeadline(context, cmd->global.timeout);  // RouterAdmin takes no token
  grpc::Status status;
  if (cmd->kind == RouteCommand::Kind::kExplain) {
    v1::ExplainRouteResponse response;
    status = stub->ExplainRoute(&context, cmd->request, &response);
    if (status.ok()) {
      out << (cmd->format == Format::kJson ? RenderExplainJson(response)
                                           : RenderExplainTable(response, absl::Now()));
    }
  } else {
    v1::ListDeploymentsResponse response;
    status = stub->ListDeployments(&context, v1::ListDeploymentsRequest(), &response);
    if (status.ok()) {
      out << (cmd->format == Format::kJson ? RenderDeploymentsJson(response)
                                           : RenderDeploymentsTable(response, absl::Now()));
    }
  }
  if (!status.ok()) return PrintRpcError(err, "router", cmd->global.router_admin, status);
  return 0;
}

}  // namespace tollgate::tools::ctl
