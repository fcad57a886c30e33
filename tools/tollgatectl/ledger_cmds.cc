#include "tools/tollgatectl/ledger_cmds.h"

#include <algorithm>
#include <fstream>
#include <map>
#include <sstream>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "boost/json/array.hpp"
#include "boost/json/object.hpp"
#include "boost/json/parse.hpp"
#include "boost/json/serialize.hpp"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "services/common/money.h"
#include "tollgate/v1/ledger.grpc.pb.h"

namespace tollgate::tools::ctl {
namespace json = boost::json;
namespace {

absl::Status Invalid(std::string message) { return absl::InvalidArgumentError(std::move(message)); }

bool IsBoolFlag(std::string_view name) { return name == "dry-run"; }

bool IsLedgerTopic(std::string_view name) {
  return name == "reprice" || name == "export" || name == "reconcile" || name == "anomalies";
}

constexpr std::string_view kAnomaliesHelp =
    "Usage: tollgatectl anomalies [--since T] [--until T] [--limit N] [--format table|json]\n"
    "\n"
    "Lists the spend anomalies the ledger recorded (LedgerAdmin.ListAnomalies), newest first: an\n"
    "hour whose spend for a team, feature or requested model exceeded the ledger's ratio times\n"
    "the same hour of week's baseline, with expected and actual amounts and the top contributing\n"
    "(team, feature, model, deployment) combinations.\n";

constexpr std::string_view kReconcileHelp =
    "Usage: tollgatectl reconcile --provider P --invoice FILE.csv [--ledger_admin ...]\n"
    "\n"
    "Compares a provider's usage export with the ledger, by UTC day and upstream model, and lists\n"
    "every difference (tokens and cost, exact). The invoice CSV has the header\n"
    "  date,model,input_tokens,cached_input_tokens,output_tokens,cost_usd\n"
    "with date YYYY-MM-DD (UTC), model the provider's model name (the ledger's upstream_model),\n"
    "input_tokens including cached ones, cost_usd a decimal string. Exit status 0 when both "
    "agree,\n"
    "3 when there are differences, 1 on RPC failure, 2 on a usage or file error.\n";

constexpr std::string_view kExportHelp =
    "Usage: tollgatectl export focus --since T [--until T] [--filter DIM=VALUE]... > usage.csv\n"
    "\n"
    "Writes the ledger's usage as FOCUS 1.2 CSV (LedgerAdmin.ExportFocus, streamed one UTC day\n"
    "at a time): one row per hour x attribution/routing key x unit price x meter (input,\n"
    "cached_input, cache_write_5m, cache_write_1h, output, reasoning). BilledCost =\n"
    "EffectiveCost = ListCost = ListUnitPrice x PricingQuantity, exact; costs sum to spend.\n"
    "Columns and rules: docs/ledger.md.\n"
    "\n"
    "Flags: --since (required), --until (default now), --filter, --ledger_admin, --timeout\n"
    "(default 10m for exports).\n";

constexpr std::string_view kRepriceHelp =
    "Usage: tollgatectl reprice --since T [--until T] --deployment D [price flags] [--dry-run]\n"
    "\n"
    "Recomputes the cost of stored usage events of deployment D from their token counts under\n"
    "corrected unit prices (LedgerAdmin.Reprice). History is never edited: every event whose\n"
    "cost changes gets a correction record (old, new, delta), and spend queries afterwards\n"
    "return the repriced cost. Prints the difference per deployment.\n"
    "\n"
    "Flags:\n"
    "  --since T, --until T     range of event times: 'now', a duration back ('30d'), RFC 3339,\n"
    "                           or a date (00:00 UTC); --until defaults to now\n"
    "  --deployment D           the served deployment to reprice (required)\n"
    "  --input X, --cached-input X, --cache-write-5m X, --cache-write-1h X, --output X,\n"
    "  --reasoning X            corrected prices in USD per million tokens; omitted ones keep\n"
    "                           the stored price (--reasoning 0: billed at the output price)\n"
    "  --filter DIM=VALUE       only events with this attribution/routing value (repeatable)\n"
    "  --price-card-version V   recorded on the corrections\n"
    "  --reason TEXT            recorded on the corrections\n"
    "  --dry-run                compute and print the difference; write nothing\n"
    "  --format table|json      output format (default table)\n"
    "  --ledger_admin HOST:PORT (env TOLLGATE_LEDGER_ADMIN, default 127.0.0.1:7004), --timeout\n";

// Aligned columns without rules: the first `left_columns` left-aligned, the rest (numbers) right.
std::string Table(const std::vector<std::vector<std::string>>& rows, size_t left_columns) {
  if (rows.empty()) return "";
  std::vector<bool> right(rows.front().size(), true);
  for (size_t c = 0; c < left_columns && c < right.size(); ++c) right[c] = false;
  return RenderAligned(rows, right, /*rule_before=*/0, /*header_rule=*/false);
}

// The common flags of `export focus` and `reconcile` (no --format: CSV and lines only); --format
// table|json for the others. --router_admin is taken for symmetry and not used.
const CommonFlagSpec kNoFormat;
const CommonFlagSpec kTableOrJson{.formats = {Format::kTable, Format::kJson}};

absl::StatusOr<LedgerCommand> ParseExport(const CtlArgs& parsed, const GetEnv&, absl::Time now,
                                          LedgerCommand cmd) {
  cmd.kind = LedgerCommand::Kind::kExportFocus;
  cmd.global.timeout = absl::Minutes(10);
  bool since = false;
  const auto own_flag = [&](const CtlFlag& f) -> absl::Status {
    if (f.name == "since" || f.name == "until") {
      absl::StatusOr<int64_t> t = ParseTimeFlag(f, now);
      if (!t.ok()) return t.status();
      if (f.name == "since") {
        cmd.focus.set_start_unix_s(*t);
        since = true;
      } else {
        cmd.focus.set_end_unix_s(*t);
      }
    } else if (f.name == "filter") {
      absl::StatusOr<std::pair<std::string, std::string>> filter = ParseFilter(f.value);
      if (!filter.ok()) return filter.status();
      (*cmd.focus.mutable_filters())[filter->first] = filter->second;
    } else {
      return Invalid(absl::StrCat("unknown flag --", f.name, " for export focus"));
    }
    return absl::OkStatus();
  };
  const absl::Status flags_status =
      ApplyFlags(parsed.flags, kNoFormat, cmd.global, cmd.format, own_flag);
  if (!flags_status.ok()) return flags_status;
  if (!since || cmd.focus.start_unix_s() <= 0) return Invalid("export focus needs --since");
  if (cmd.focus.end_unix_s() != 0 && cmd.focus.end_unix_s() <= cmd.focus.start_unix_s()) {
    return Invalid("--until must be after --since");
  }
  return cmd;
}

}  // namespace

void AppendFocusCsv(const v1::FocusChunk& chunk, std::string& out) {
  if (chunk.columns_size() > 0) AppendCsvLine(chunk.columns(), out);
  for (const v1::FocusRecord& r : chunk.records()) AppendCsvLine(r.values(), out);
}

namespace {

// Splits one CSV line (RFC 4180 quotes; no embedded newlines).
std::vector<std::string> CsvSplit(std::string_view line) {
  std::vector<std::string> out(1);
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        out.back() += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        out.back() += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      out.emplace_back();
    } else {
      out.back() += c;
    }
  }
  return out;
}

}  // namespace

absl::StatusOr<std::vector<InvoiceLine>> ParseInvoiceCsv(std::string_view text) {
  std::map<std::pair<std::string, std::string>, InvoiceLine> lines;
  size_t line_no = 0;
  bool header = true;
  while (!text.empty()) {
    const size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;
    std::vector<std::string> f = CsvSplit(line);
    if (header) {
      header = false;
      const std::vector<std::string> expected = {
          "date", "model", "input_tokens", "cached_input_tokens", "output_tokens", "cost_usd"};
      if (f != expected) {
        return Invalid(
            "invoice header must be date,model,input_tokens,cached_input_tokens,output_tokens,"
            "cost_usd");
      }
      continue;
    }
    auto bad = [&](std::string_view what) {
      return Invalid(absl::StrCat("invoice line ", line_no, ": ", std::string(what)));
    };
    if (f.size() != 6) return bad("expected 6 fields");
    absl::Time day;
    std::string error;
    if (!absl::ParseTime("%Y-%m-%d", f[0], absl::UTCTimeZone(), &day, &error)) {
      return bad("date must be YYYY-MM-DD");
    }
    InvoiceLine& l = lines[{f[0], f[1]}];
    l.date = f[0];
    l.model = f[1];
    int64_t* counts[] = {&l.input_tokens, &l.cached_input_tokens, &l.output_tokens};
    for (int i = 0; i < 3; ++i) {
      int64_t v = 0;
      if (!absl::SimpleAtoi(f[2 + i], &v) || v < 0) return bad("token counts must be integers");
      *counts[i] += v;
    }
    absl::StatusOr<int64_t> cost = ParseUsd(f[5]);
    if (!cost.ok()) return bad(absl::StrCat("cost_usd: ", cost.status().message()));
    l.cost_pico += *cost;
  }
  if (header) return Invalid("invoice is empty");
  std::vector<InvoiceLine> out;
  for (auto& [key, l] : lines) out.push_back(std::move(l));
  return out;
}

std::vector<std::string> ReconcileDifferences(const std::vector<InvoiceLine>& invoice,
                                              const v1::SpendResponse& ledger) {
  struct Sums {
    int64_t input = 0, cached = 0, output = 0, cost = 0;
  };
  std::map<std::pair<std::string, std::string>, std::pair<Sums, Sums>> both;
  for (const InvoiceLine& l : invoice) {
    Sums& s = both[{l.date, l.model}].first;
    s.input += l.input_tokens;
    s.cached += l.cached_input_tokens;
    s.output += l.output_tokens;
    s.cost += l.cost_pico;
  }
  for (const v1::SpendRow& r : ledger.rows()) {
    const std::string date = absl::FormatTime(
        "%Y-%m-%d", absl::FromUnixSeconds(r.bucket_start_unix_s()), absl::UTCTimeZone());
    Sums& s = both[{date, r.group_values_size() > 0 ? r.group_values(0) : ""}].second;
    s.input += r.tokens().input_tokens();
    s.cached += r.tokens().cached_input_tokens();
    s.output += r.tokens().output_tokens();
    s.cost += ParseUsd(r.cost_usd()).value_or(0);
  }
  std::vector<std::string> out;
  for (const auto& [key, sums] : both) {
    const auto& [inv, led] = sums;
    auto diff = [&](std::string_view field, int64_t a, int64_t b, bool money) {
      if (a == b) return;
      auto fmt = [&](int64_t v) { return money ? FormatPicoUsd(v) : absl::StrCat(v); };
      out.push_back(absl::StrCat(key.first, " ", key.second, " ", std::string(field),
                                 " invoice=", fmt(a), " ledger=", fmt(b), " diff=", fmt(b - a)));
    };
    diff("cached_input_tokens", inv.cached, led.cached, false);
    diff("cost_usd", inv.cost, led.cost, true);
    diff("input_tokens", inv.input, led.input, false);
    diff("output_tokens", inv.output, led.output, false);
  }
  return out;
}

std::string RenderAnomalies(const v1::ListAnomaliesResponse& response, Format format) {
  auto hour = [](int64_t s) {
    return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::FromUnixSeconds(s), absl::UTCTimeZone());
  };
  if (format == Format::kJson) {
    json::array list;
    for (const v1::Anomaly& a : response.anomalies()) {
      json::object o;
      o["hour"] = hour(a.hour_unix_s());
      o["hour_unix_s"] = a.hour_unix_s();
      o["dimension"] = a.dimension();
      o["value"] = a.value();
      o["expected_usd"] = a.expected_usd();
      o["actual_usd"] = a.actual_usd();
      o["baseline_weeks"] = a.baseline_weeks();
      boost::system::error_code ec;
      json::value top = json::parse(a.top_contributors_json(), ec);
      o["top_contributors"] = ec ? json::value(json::array()) : top;
      list.emplace_back(std::move(o));
    }
    json::object root;
    root["anomalies"] = std::move(list);
    return json::serialize(root) + "\n";
  }
  std::vector<std::vector<std::string>> rows = {
      {"hour", "dimension", "value", "expected_usd", "actual_usd", "top_contributors"}};
  for (const v1::Anomaly& a : response.anomalies()) {
    rows.push_back({hour(a.hour_unix_s()), a.dimension(), a.value(), a.expected_usd(),
                    a.actual_usd(), a.top_contributors_json()});
  }
  if (response.anomalies().empty()) return "no anomalies\n";
  return Table(rows, 3);
}

bool IsLedgerCommand(const std::vector<std::string>& args) {
  return NamesCommand(args, IsBoolFlag, IsLedgerTopic);
}

absl::StatusOr<LedgerCommand> ParseLedgerCommand(const std::vector<std::string>& args,
                                                 const GetEnv& env, absl::Time now) {
  LedgerCommand cmd;
  cmd.global = GlobalOptionsFromEnv(env);
  absl::StatusOr<CtlArgs> parsed = SplitArgs(args, IsBoolFlag);
  if (!parsed.ok()) return parsed.status();
  const std::vector<std::string>& positional = parsed->positional;
  if (positional.empty()) return Invalid("no command given");
  if (positional[0] == "help") {
    cmd.help_topic = positional.size() > 1 ? positional[1] : "";
    return cmd;
  }
  const std::string& command = positional[0];
  if (!IsLedgerTopic(command)) return Invalid(absl::StrCat("unknown command '", command, "'"));
  if (parsed->help) {
    cmd.help_topic = command;
    return cmd;
  }
  if (command == "anomalies") {
    cmd.kind = LedgerCommand::Kind::kAnomalies;
    const auto own_flag = [&](const CtlFlag& f) -> absl::Status {
      if (f.name == "since" || f.name == "until") {
        absl::StatusOr<int64_t> t = ParseTimeFlag(f, now);
        if (!t.ok()) return t.status();
        if (f.name == "since") {
          cmd.anomalies.set_start_unix_s(*t);
        } else {
          cmd.anomalies.set_end_unix_s(*t);
        }
      } else if (f.name == "limit") {
        int32_t n = 0;
        if (!absl::SimpleAtoi(f.value, &n) || n < 0) {
          return Invalid(absl::StrCat("bad --limit '", f.value, "'"));
        }
        cmd.anomalies.set_limit(n);
      } else {
        return Invalid(absl::StrCat("unknown flag --", f.name, " for anomalies"));
      }
      return absl::OkStatus();
    };
    const absl::Status flags_status =
        ApplyFlags(parsed->flags, kTableOrJson, cmd.global, cmd.format, own_flag);
    if (!flags_status.ok()) return flags_status;
    return cmd;
  }
  if (command == "reconcile") {
    cmd.kind = LedgerCommand::Kind::kReconcile;
    const auto own_flag = [&](const CtlFlag& f) -> absl::Status {
      if (f.name == "provider") {
        cmd.provider = f.value;
      } else if (f.name == "invoice") {
        cmd.invoice_path = f.value;
      } else {
        return Invalid(absl::StrCat("unknown flag --", f.name, " for reconcile"));
      }
      return absl::OkStatus();
    };
    const absl::Status flags_status =
        ApplyFlags(parsed->flags, kNoFormat, cmd.global, cmd.format, own_flag);
    if (!flags_status.ok()) return flags_status;
    if (cmd.provider.empty()) return Invalid("reconcile needs --provider");
    if (cmd.invoice_path.empty()) return Invalid("reconcile needs --invoice");
    return cmd;
  }
  if (command == "export") {
    if (positional.size() != 2 || positional[1] != "focus") {
      return Invalid("export needs a format: tollgatectl export focus --since ...");
    }
    return ParseExport(*parsed, env, now, std::move(cmd));
  }
  if (positional.size() > 1) {
    return Invalid(absl::StrCat("unexpected argument '", positional[1], "'"));
  }
  cmd.kind = LedgerCommand::Kind::kReprice;
  v1::RepriceRequest& r = cmd.reprice;
  v1::DeploymentPrices* prices = r.add_prices();
  bool since = false;
  const auto own_flag = [&](const CtlFlag& f) -> absl::Status {
    auto price = [&](std::string* out) -> absl::Status {
      absl::StatusOr<int64_t> pico = ParseUsdPerMillionTokens(f.value);
      if (!pico.ok() || *pico < 0) {
        return Invalid(absl::StrCat("bad --", f.name, " '", f.value,
                                    "' (a non-negative decimal USD per million tokens)"));
      }
      *out = f.value;
      return absl::OkStatus();
    };
    absl::Status st;
    if (f.name == "since" || f.name == "until") {
      absl::StatusOr<int64_t> t = ParseTimeFlag(f, now);
      if (!t.ok()) return t.status();
      if (f.name == "since") {
        r.set_start_unix_s(*t);
        since = true;
      } else {
        r.set_end_unix_s(*t);
      }
    } else if (f.name == "deployment") {
      if (!prices->deployment().empty()) return Invalid("--deployment may be given once");
      prices->set_deployment(f.value);
    } else if (f.name == "input") {
      st = price(prices->mutable_input_usd_per_m());
    } else if (f.name == "cached-input") {
      st = price(prices->mutable_cached_input_usd_per_m());
    } else if (f.name == "cache-write-5m") {
      st = price(prices->mutable_cache_write_5m_usd_per_m());
    } else if (f.name == "cache-write-1h") {
      st = price(prices->mutable_cache_write_1h_usd_per_m());
    } else if (f.name == "output") {
      st = price(prices->mutable_output_usd_per_m());
    } else if (f.name == "reasoning") {
      st = price(prices->mutable_reasoning_usd_per_m());
    } else if (f.name == "filter") {
      absl::StatusOr<std::pair<std::string, std::string>> filter = ParseFilter(f.value);
      if (!filter.ok()) return filter.status();
      (*r.mutable_filters())[filter->first] = filter->second;
    } else if (f.name == "price-card-version") {
      r.set_price_card_version(f.value);
    } else if (f.name == "reason") {
      r.set_reason(f.value);
    } else if (f.name == "dry-run") {
      if (f.has_value && f.value != "true" && f.value != "false") {
        return Invalid(absl::StrCat("bad --dry-run '", f.value, "' (true or false)"));
      }
      r.set_dry_run(!f.has_value || f.value == "true");
    } else {
      return Invalid(absl::StrCat("unknown flag --", f.name, " for ", command));
    }
    return st;
  };
  const absl::Status flags_status =
      ApplyFlags(parsed->flags, kTableOrJson, cmd.global, cmd.format, own_flag);
  if (!flags_status.ok()) return flags_status;
  if (!since) return Invalid("reprice needs --since");
  if (prices->deployment().empty()) return Invalid("reprice needs --deployment");
  if (r.end_unix_s() == 0) r.set_end_unix_s(absl::ToUnixSeconds(now) + 1);
  if (r.end_unix_s() <= r.start_unix_s()) return Invalid("--until must be after --since");
  const bool any_price =
      !prices->input_usd_per_m().empty() || !prices->cached_input_usd_per_m().empty() ||
      !prices->cache_write_5m_usd_per_m().empty() || !prices->cache_write_1h_usd_per_m().empty() ||
      !prices->output_usd_per_m().empty() || !prices->reasoning_usd_per_m().empty();
  if (!any_price) return Invalid("reprice needs at least one price flag (--input, --output, ...)");
  return cmd;
}

std::string LedgerUsage(std::string_view topic) {
  if (topic == "export") return std::string(kExportHelp);
  if (topic == "reconcile") return std::string(kReconcileHelp);
  if (topic == "anomalies") return std::string(kAnomaliesHelp);
  return std::string(kRepriceHelp);
}

std::string LedgerCommandsOverview() {
  return "Ledger commands:\n"
         "  reprice        Recompute stored costs under corrected prices (correction records)\n"
         "  export focus   Usage as FOCUS 1.2 CSV, hourly grain\n"
         "  reconcile      Compare a provider invoice CSV with the ledger by day and model\n"
         "  anomalies      Hourly spend anomalies against the same-hour-of-week baseline\n";
}

std::string RenderRepriceTable(const v1::RepriceResponse& response) {
  std::vector<std::vector<std::string>> rows = {
      {"deployment", "events", "changed", "old_cost_usd", "new_cost_usd", "delta_usd"}};
  for (const v1::RepriceDeploymentResult& d : response.deployments()) {
    rows.push_back({d.deployment(), absl::StrCat(d.events()), absl::StrCat(d.changed_events()),
                    d.old_cost_usd(), d.new_cost_usd(), d.delta_usd()});
  }
  rows.push_back({"TOTAL", absl::StrCat(response.events()), absl::StrCat(response.changed_events()),
                  response.old_cost_usd(), response.new_cost_usd(), response.delta_usd()});
  std::string out = Table(rows, 1);
  out += response.dry_run()
             ? "dry run: nothing written\n"
             : absl::StrCat("corrections written: repricing ", response.repricing_id(), "\n");
  return out;
}

std::string RenderRepriceJson(const v1::RepriceResponse& response) {
  json::object root;
  root["repricing_id"] = response.repricing_id();
  root["dry_run"] = response.dry_run();
  root["events"] = response.events();
  root["changed_events"] = response.changed_events();
  root["old_cost_usd"] = response.old_cost_usd();
  root["new_cost_usd"] = response.new_cost_usd();
  root["delta_usd"] = response.delta_usd();
  json::array deployments;
  for (const v1::RepriceDeploymentResult& d : response.deployments()) {
    json::object o;
    o["deployment"] = d.deployment();
    o["events"] = d.events();
    o["changed_events"] = d.changed_events();
    o["old_cost_usd"] = d.old_cost_usd();
    o["new_cost_usd"] = d.new_cost_usd();
    o["delta_usd"] = d.delta_usd();
    deployments.emplace_back(std::move(o));
  }
  root["deployments"] = std::move(deployments);
  return json::serialize(root) + "\n";
}

int RunLedgerCommand(const std::vector<std::string>& args, const GetEnv& env, std::ostream& out,
                     std::ostream& err) {
  absl::StatusOr<LedgerCommand> cmd = ParseLedgerCommand(args, env, absl::Now());
  if (!cmd.ok()) {
    std::string topic = "reprice";
    for (const char* t : {"export", "reconcile", "anomalies"}) {
      if (std::find(args.begin(), args.end(), t) != args.end()) topic = t;
    }
    return PrintUsageError(err, cmd.status(), LedgerUsage(topic));
  }
  if (cmd->kind == LedgerCommand::Kind::kHelp) {
    out << LedgerUsage(cmd->help_topic);
    return 0;
  }
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
      AdminChannel(cmd->global.ledger_admin, cmd->global);
  if (!channel.ok()) return PrintError(err, channel.status());
  auto stub = v1::LedgerAdmin::NewStub(*channel);
  grpc::ClientContext context;
  PrepareContext(context, cmd->global);
  if (cmd->kind == LedgerCommand::Kind::kAnomalies) {
    v1::ListAnomaliesResponse response;
    const grpc::Status status = stub->ListAnomalies(&context, cmd->anomalies, &response);
    if (!status.ok()) return PrintRpcError(err, "ledger", cmd->global.ledger_admin, status);
    out << RenderAnomalies(response, cmd->format);
    return 0;
  }
  if (cmd->kind == LedgerCommand::Kind::kReconcile) {
    std::ifstream in(cmd->invoice_path, std::ios::binary);
    if (!in) {
      err << "tollgatectl: cannot read " << cmd->invoice_path << "\n";
      return 2;
    }
    std::stringstream text;
    text << in.rdbuf();
    absl::StatusOr<std::vector<InvoiceLine>> invoice = ParseInvoiceCsv(text.str());
    if (!invoice.ok()) {
      err << "tollgatectl: " << cmd->invoice_path << ": " << invoice.status().message() << "\n";
      return 2;
    }
    v1::SpendQuery q;
    q.add_group_by("upstream_model");
    q.set_bucket(v1::BUCKET_DAY);
    (*q.mutable_filters())["provider"] = cmd->provider;
    if (!invoice->empty()) {
      absl::Time first, last;
      std::string error;
      absl::ParseTime("%Y-%m-%d", invoice->front().date, absl::UTCTimeZone(), &first, &error);
      last = first;
      for (const InvoiceLine& l : *invoice) {
        absl::Time t;
        absl::ParseTime("%Y-%m-%d", l.date, absl::UTCTimeZone(), &t, &error);
        first = std::min(first, t);
        last = std::max(last, t);
      }
      q.set_start_unix_s(absl::ToUnixSeconds(first));
      q.set_end_unix_s(absl::ToUnixSeconds(last) + 86400);
    }
    v1::SpendResponse spend;
    const grpc::Status status = stub->QuerySpend(&context, q, &spend);
    if (!status.ok()) return PrintRpcError(err, "ledger", cmd->global.ledger_admin, status);
    const std::vector<std::string> differences = ReconcileDifferences(*invoice, spend);
    for (const std::string& d : differences) out << d << "\n";
    out << (differences.empty() ? "invoice and ledger agree\n"
                                : absl::StrCat(differences.size(), " differences\n"));
    return differences.empty() ? 0 : 3;
  }
  if (cmd->kind == LedgerCommand::Kind::kExportFocus) {
    std::unique_ptr<grpc::ClientReader<v1::FocusChunk>> reader =
        stub->ExportFocus(&context, cmd->focus);
    v1::FocusChunk chunk;
    std::string text;
    while (reader->Read(&chunk)) {
      text.clear();
      AppendFocusCsv(chunk, text);
      out << text;
    }
    const grpc::Status status = reader->Finish();
    out.flush();
    if (!status.ok()) return PrintRpcError(err, "ledger", cmd->global.ledger_admin, status);
    return 0;
  }
  v1::RepriceResponse response;
  const grpc::Status status = stub->Reprice(&context, cmd->reprice, &response);
  if (!status.ok()) return PrintRpcError(err, "ledger", cmd->global.ledger_admin, status);
  out << (cmd->format == Format::kJson ? RenderRepriceJson(response)
                                       : RenderRepriceTable(response));
  return 0;
}

}  // namespace tollgate::tools::ctl
