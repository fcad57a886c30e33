#include "tools/tollgatectl/ctl_lib.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <limits>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "boost/json/array.hpp"
#include "boost/json/object.hpp"
#include "boost/json/serialize.hpp"
#include "boost/json/value.hpp"
#include "google/protobuf/util/json_util.h"
#include "grpcpp/client_context.h"
#include "grpcpp/support/status.h"
#include "services/common/money.h"

namespace tollgate::tools::ctl {
namespace json = boost::json;

namespace {
size_t DisplayWidth(std::string_view s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}
}  // namespace

// Aligned columns separated by two spaces, a dashed rule after the header and before row
// `rule_before` (if non-zero). Right-aligned columns for numbers; no trailing spaces.
std::string RenderAligned(const std::vector<std::vector<std::string>>& rows,
                          const std::vector<bool>& right_aligned, size_t rule_before,
                          bool header_rule) {
  if (rows.empty()) return "";
  const size_t cols = rows.front().size();
  std::vector<size_t> width(cols, 0);
  for (const auto& row : rows) {
    for (size_t c = 0; c < cols; ++c) width[c] = std::max(width[c], DisplayWidth(row[c]));
  }
  size_t total_width = 0;
  for (size_t c = 0; c < cols; ++c) total_width += width[c] + (c > 0 ? 2 : 0);
  const std::string rule(total_width, '-');
  std::string out;
  for (size_t r = 0; r < rows.size(); ++r) {
    if ((header_rule && r == 1) || (rule_before != 0 && r == rule_before)) {
      absl::StrAppend(&out, rule, "\n");
    }
    std::string line;
    for (size_t c = 0; c < cols; ++c) {
      const std::string& cell = rows[r][c];
      const size_t pad = width[c] - DisplayWidth(cell);
      if (c > 0) line += "  ";
      if (right_aligned[c]) line.append(pad, ' ');
      line += cell;
      if (!right_aligned[c]) line.append(pad, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    absl::StrAppend(&out, line, "\n");
  }
  return out;
}

namespace {

absl::Status Invalid(std::string message) { return absl::InvalidArgumentError(std::move(message)); }

std::string NormalizeFlag(std::string_view name) {
  std::string n(name);
  std::replace(n.begin(), n.end(), '_', '-');
  return n;
}

// Display width for alignment: UTF-8 code points, not bytes.
std::string FormatBucket(int64_t unix_s, v1::Bucket bucket) {
  const absl::Time t = absl::FromUnixSeconds(unix_s);
  if (bucket == v1::BUCKET_DAY || bucket == v1::BUCKET_WEEK) {
    return absl::FormatTime("%Y-%m-%d", t, absl::UTCTimeZone());
  }
  if (bucket == v1::BUCKET_MONTH) return absl::FormatTime("%Y-%m", t, absl::UTCTimeZone());
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", t, absl::UTCTimeZone());
}

// Whether the ledger filled the derived columns (an older ledger does not): only then are they
// shown in tables and CSV, so that output from older ledgers keeps its shape.
bool HasDerivedColumns(const v1::SpendResponse& response) {
  auto has = [](const v1::SpendRow& r) {
    return !r.cost_per_request_usd().empty() || !r.share_of_total().empty() ||
           !r.cost_per_1k_tokens_usd().empty();
  };
  if (has(response.total())) return true;
  for (const v1::SpendRow& r : response.rows()) {
    if (has(r)) return true;
  }
  return false;
}

std::vector<std::string> SpendHeader(const v1::SpendResponse& response, v1::Bucket bucket) {
  std::vector<std::string> header;
  if (bucket != v1::BUCKET_NONE) header.push_back("bucket");
  for (const auto& dim : response.group_by()) header.push_back(dim);
  for (const char* c :
       {"requests", "input", "cached_input", "cache_write", "output", "reasoning", "cost_usd"}) {
    header.push_back(c);
  }
  if (HasDerivedColumns(response)) {
    for (const char* c : {"per_1k_tokens", "per_request", "share"}) header.push_back(c);
  }
  if (response.previous_end_unix_s() != 0) {
    for (const char* c : {"previous_cost_usd", "change_usd", "change"}) header.push_back(c);
  }
  return header;
}

// `first_label` replaces the bucket/dimension cells (the TOTAL row).
std::vector<std::string> SpendCells(const v1::SpendRow& row, const v1::SpendResponse& response,
                                    v1::Bucket bucket, const std::string* first_label,
                                    bool show_empty_as_none) {
  std::vector<std::string> cells;
  const size_t label_cols =
      (bucket != v1::BUCKET_NONE ? 1 : 0) + static_cast<size_t>(response.group_by_size());
  if (first_label != nullptr) {
    for (size_t i = 0; i < label_cols; ++i) cells.push_back(i == 0 ? *first_label : "");
  } else {
    if (bucket != v1::BUCKET_NONE) cells.push_back(FormatBucket(row.bucket_start_unix_s(), bucket));
    for (int i = 0; i < response.group_by_size(); ++i) {
      std::string value = i < row.group_values_size() ? row.group_values(i) : "";
      if (value.empty() && show_empty_as_none) value = "(none)";
      cells.push_back(std::move(value));
    }
  }
  const v1::TokenUsage& t = row.tokens();
  cells.push_back(absl::StrCat(row.requests()));
  cells.push_back(absl::StrCat(t.input_tokens()));
  cells.push_back(absl::StrCat(t.cached_input_tokens()));
  cells.push_back(absl::StrCat(t.cache_write_5m_tokens() + t.cache_write_1h_tokens()));
  cells.push_back(absl::StrCat(t.output_tokens()));
  cells.push_back(absl::StrCat(t.reasoning_tokens()));
  cells.push_back(row.cost_usd().empty() ? "0" : row.cost_usd());
  if (HasDerivedColumns(response)) {
    cells.push_back(row.cost_per_1k_tokens_usd());
    cells.push_back(row.cost_per_request_usd());
    cells.push_back(row.share_of_total());
  }
  if (response.previous_end_unix_s() != 0) {
    cells.push_back(row.previous_cost_usd());
    cells.push_back(row.change_usd());
    cells.push_back(row.change_ratio());
  }
  return cells;
}

json::object SpendRowJson(const v1::SpendRow& row, const v1::SpendResponse& response,
                          v1::Bucket bucket, bool is_total) {
  json::object o;
  if (!is_total) {
    if (bucket != v1::BUCKET_NONE) {
      o["bucket_start"] = FormatBucket(row.bucket_start_unix_s(), v1::BUCKET_HOUR);
      o["bucket_start_unix_s"] = row.bucket_start_unix_s();
    }
    for (int i = 0; i < response.group_by_size(); ++i) {
      o[response.group_by(i)] = i < row.group_values_size() ? row.group_values(i) : "";
    }
  }
  const v1::TokenUsage& t = row.tokens();
  o["requests"] = row.requests();
  o["input"] = t.input_tokens();
  o["cached_input"] = t.cached_input_tokens();
  o["cache_write"] = t.cache_write_5m_tokens() + t.cache_write_1h_tokens();
  o["cache_write_5m"] = t.cache_write_5m_tokens();
  o["cache_write_1h"] = t.cache_write_1h_tokens();
  o["output"] = t.output_tokens();
  o["reasoning"] = t.reasoning_tokens();
  o["cost_usd"] = row.cost_usd().empty() ? "0" : row.cost_usd();
  // Exact decimal strings ("" when undefined: no tokens, no requests, zero total).
  o["cost_per_1k_tokens_usd"] = row.cost_per_1k_tokens_usd();
  o["cost_per_request_usd"] = row.cost_per_request_usd();
  o["share_of_total"] = row.share_of_total();
  if (response.previous_end_unix_s() != 0) {
    o["previous_cost_usd"] = row.previous_cost_usd();
    o["previous_requests"] = row.previous_requests();
    o["change_usd"] = row.change_usd();
    o["change_ratio"] = row.change_ratio();
  }
  return o;
}

std::string Price(int64_t pico) { return FormatUsdPerMillionTokens(pico); }

constexpr std::string_view kOverview =
    "tollgatectl: operator CLI for Tollgate's control plane.\n"
    "\n"
    "Usage: tollgatectl [global flags] <command> [flags]\n"
    "\n"
    "Commands:\n"
    "  spend     Spend and token totals from the ledger, grouped by attribution dimensions\n"
    "  catalog   Models, aliases, deployments and prices loaded by the router\n"
    "  help      Show help for a command: tollgatectl help <command>\n"
    "\n"
    "Global flags:\n"
    "  --router_admin=HOST:PORT  RouterAdmin address (env TOLLGATE_ROUTER_ADMIN; 127.0.0.1:7002)\n"
    "  --ledger_admin=HOST:PORT  LedgerAdmin address (env TOLLGATE_LEDGER_ADMIN; 127.0.0.1:7004)\n"
    "  --token=TOKEN             ledger control-plane token (env TOLLGATE_ADMIN_TOKEN)\n"
    "  --timeout=DURATION        RPC deadline, e.g. 500ms, 10s (default 10s)\n"
    "  --tls_ca_file=PEM         TLS to the admin services, verified against this CA bundle\n"
    "                            (env TOLLGATE_TLS_CA_FILE; default plaintext)\n"
    "  --tls_cert_file=PEM, --tls_key_file=PEM\n"
    "                            client certificate for mutual TLS (env TOLLGATE_TLS_CERT_FILE,\n"
    "                            TOLLGATE_TLS_KEY_FILE)\n"
    "  --tls_server_name=NAME    name to verify in the servers' certificates\n"
    "                            (env TOLLGATE_TLS_SERVER_NAME)\n"
    "\n"
    "Exit status: 0 success, 1 RPC failure, 2 usage error.\n";

constexpr std::string_view kSpendHelp =
    "Usage: tollgatectl spend [flags]\n"
    "\n"
    "Queries LedgerAdmin.QuerySpend. Rows are ordered by cost, highest first; a TOTAL row\n"
    "covers every matching event.\n"
    "\n"
    "Flags:\n"
    "  --group-by=DIM[,DIM...]  Dimensions to group by (repeatable): team, feature, customer,\n"
    "                           api_key_id, environment, requested_model, served_deployment,\n"
    "                           provider, upstream_model, region, endpoint, tag:<key>\n"
    "  --since=WHEN             Start, inclusive: a duration back from now (30m, 24h, 7d),\n"
    "                           an RFC 3339 time, or a date YYYY-MM-DD (UTC). Default: all time\n"
    "  --until=WHEN             End, exclusive (same forms, or 'now'). Default: now\n"
    "  --bucket=hour|day|week|month|none  Split rows into UTC time buckets (default none;\n"
    "                           weeks start Monday)\n"
    "  --filter=DIM=VALUE       Only events whose dimension equals VALUE (repeatable)\n"
    "  --limit=N, --top=N       At most N rows, highest cost first (default 0: all)\n"
    "  --compare                Also show the previous period of equal length and the change\n"
    "                           (needs --since)\n"
    "  --page-size=N            At most N rows per page; prints next_page_token to continue\n"
    "  --page-token=TOKEN       Continue from a previous page\n"
    "  --format=table|json|csv  Output format (default table)\n"
    "\n"
    "Columns: [bucket] [dimensions] requests input cached_input cache_write output reasoning\n"
    "cost_usd per_1k_tokens per_request share [previous_cost_usd change_usd change]. Token\n"
    "columns are counts (cached_input and cache_write are part of input; reasoning is part of\n"
    "output); cost_usd is exact, in USD; per_1k_tokens (per 1000 input+output tokens) and\n"
    "per_request are rounded to 12 decimals, share and change (ratios) to 6.\n"
    "\n"
    "Example: tollgatectl spend --group-by team,feature --since 7d --bucket day\n";

constexpr std::string_view kCatalogHelp =
    "Usage: tollgatectl catalog [--format=table|json]\n"
    "\n"
    "Queries RouterAdmin.ListCatalog: providers, models with their aliases and deployments in\n"
    "priority order, and deployments with provider, upstream model, region and prices in USD per\n"
    "million tokens.\n";

}  // namespace

// ---------------------------------------------------------------------------------------------

absl::StatusOr<absl::Duration> ParseDuration(std::string_view text) {
  if (text.empty()) return Invalid("empty duration");
  const std::string original(text);
  absl::Duration total = absl::ZeroDuration();
  while (!text.empty()) {
    size_t digits = 0;
    while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
    if (digits == 0) {
      return Invalid(absl::StrCat("bad duration '", original,
                                  "': expected <number><unit> with unit ms, s, m, h, d or w"));
    }
    int64_t n = 0;
    if (!ParseInt64(text.substr(0, digits), n) || n > 1'000'000'000) {
      return Invalid(absl::StrCat("bad duration '", original, "': number too large"));
    }
    text.remove_prefix(digits);
    size_t unit_len = 0;
    while (unit_len < text.size() && text[unit_len] >= 'a' && text[unit_len] <= 'z') ++unit_len;
    const std::string_view unit = text.substr(0, unit_len);
    text.remove_prefix(unit_len);
    if (unit == "ms") {
      total += absl::Milliseconds(n);
    } else if (unit == "s") {
      total += absl::Seconds(n);
    } else if (unit == "m") {
      total += absl::Minutes(n);
    } else if (unit == "h") {
      total += absl::Hours(n);
    } else if (unit == "d") {
      total += absl::Hours(24 * n);
    } else if (unit == "w") {
      total += absl::Hours(24 * 7 * n);
    } else {
      return Invalid(absl::StrCat("bad duration '", original, "': unit '", std::string(unit),
                                  "' is not one of ms, s, m, h, d, w"));
    }
  }
  return total;
}

absl::StatusOr<int64_t> ParseTimeSpec(std::string_view text, absl::Time now) {
  if (text == "now") return absl::ToUnixSeconds(now);
  const std::string s(text);
  absl::Time t;
  std::string err;
  if (absl::ParseTime(absl::RFC3339_full, s, &t, &err)) return absl::ToUnixSeconds(t);
  if (s.size() == 10 && absl::ParseTime("%Y-%m-%d", s, absl::UTCTimeZone(), &t, &err)) {
    return absl::ToUnixSeconds(t);
  }
  auto d = ParseDuration(text);
  if (d.ok()) return absl::ToUnixSeconds(now - *d);
  return Invalid(absl::StrCat("bad time '", s,
                              "': expected a duration (30m, 24h, 7d), an RFC 3339 time "
                              "(2024-05-01T12:00:00Z), a date (2024-05-01) or 'now'"));
}

const std::vector<std::string>& SpendDimensions() {
  static const auto* dims = new std::vector<std::string>{
      "team",           "feature",         "customer",          "api_key_id",
      "environment",    "requested_model", "served_deployment", "provider",
      "upstream_model", "region",          "endpoint"};
  return *dims;
}

namespace {
absl::Status CheckDimension(const std::string& dim) {
  const auto& dims = SpendDimensions();
  // Free tags ("tag:<key>") are open-ended; the ledger validates the key.
  if (absl::StartsWith(dim, "tag:") && dim.size() > 4) return absl::OkStatus();
  if (std::find(dims.begin(), dims.end(), dim) == dims.end()) {
    return Invalid(
        absl::StrCat("unknown dimension '", dim, "' (known: ", absl::StrJoin(dims, ", "), ")"));
  }
  return absl::OkStatus();
}
}  // namespace

absl::StatusOr<std::vector<std::string>> ParseGroupBy(const std::vector<std::string>& values) {
  std::vector<std::string> out;
  for (const auto& value : values) {
    for (absl::string_view piece : absl::StrSplit(value, ',')) {
      std::string dim(absl::StripAsciiWhitespace(piece));
      if (dim.empty()) return Invalid(absl::StrCat("empty dimension in --group-by '", value, "'"));
      if (absl::Status st = CheckDimension(dim); !st.ok()) return st;
      if (std::find(out.begin(), out.end(), dim) != out.end()) {
        return Invalid(absl::StrCat("dimension '", dim, "' given twice in --group-by"));
      }
      out.push_back(std::move(dim));
    }
  }
  return out;
}

absl::StatusOr<std::pair<std::string, std::string>> ParseFilter(std::string_view text) {
  const size_t eq = text.find('=');
  if (eq == std::string_view::npos) {
    return Invalid(absl::StrCat("bad --filter '", std::string(text), "': expected DIM=VALUE"));
  }
  std::string dim(text.substr(0, eq));
  if (absl::Status st = CheckDimension(dim); !st.ok()) return st;
  return std::make_pair(std::move(dim), std::string(text.substr(eq + 1)));
}

absl::StatusOr<CtlArgs> SplitArgs(const std::vector<std::string>& args,
                                  const std::function<bool(std::string_view)>& is_bool) {
  CtlArgs out;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "-h" || arg == "--help" || arg == "-help") {
      out.help = true;
      continue;
    }
    if (arg.size() < 2 || arg[0] != '-') {
      out.positional.push_back(arg);
      continue;
    }
    std::string_view body(arg);
    body.remove_prefix(body.starts_with("--") ? 2 : 1);
    const size_t eq = body.find('=');
    CtlFlag flag{NormalizeFlag(body.substr(0, eq)), "", false};
    if (flag.name.empty()) return Invalid(absl::StrCat("bad flag '", arg, "'"));
    if (eq != std::string_view::npos) {
      flag.value = std::string(body.substr(eq + 1));
      flag.has_value = true;
    } else if (is_bool(flag.name)) {
      flag.value = "true";
    } else if (i + 1 < args.size()) {
      flag.value = args[++i];
      flag.has_value = true;
    } else {
      return Invalid(absl::StrCat("flag --", flag.name, " needs a value"));
    }
    out.flags.push_back(std::move(flag));
  }
  return out;
}

bool ParseInt64(std::string_view text, int64_t& out) {
  if (text.empty()) return false;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && ptr == text.data() + text.size();
}

bool NamesCommand(const std::vector<std::string>& args,
                  const std::function<bool(std::string_view)>& is_bool,
                  const std::function<bool(std::string_view)>& is_topic) {
  absl::StatusOr<CtlArgs> split = SplitArgs(args, is_bool);
  if (!split.ok() || split->positional.empty()) return false;
  const std::vector<std::string>& positional = split->positional;
  if (is_topic(positional[0])) return true;
  return positional[0] == "help" && positional.size() == 2 && is_topic(positional[1]);
}

absl::StatusOr<Command> ParseCommandLine(const std::vector<std::string>& args, const GetEnv& env,
                                         absl::Time now) {
  Command cmd;
  cmd.global = GlobalOptionsFromEnv(env);

  absl::StatusOr<CtlArgs> split =
      SplitArgs(args, [](std::string_view name) { return name == "compare"; });
  if (!split.ok()) return split.status();
  const std::vector<CtlFlag>& flags = split->flags;
  const std::vector<std::string>& positional = split->positional;
  const bool help = split->help;

  const std::string command = positional.empty() ? "" : positional.front();
  if (command == "help") {
    if (positional.size() > 2) return Invalid("help takes at most one command");
    cmd.kind = Command::Kind::kHelp;
    cmd.help_topic = positional.size() == 2 ? positional[1] : "";
    if (!cmd.help_topic.empty() && cmd.help_topic != "spend" && cmd.help_topic != "catalog") {
      return Invalid(absl::StrCat("unknown command '", cmd.help_topic, "'"));
    }
    return cmd;
  }
  if (command.empty()) {
    if (help) return cmd;
    return Invalid("no command given");
  }
  if (command != "spend" && command != "catalog") {
    return Invalid(absl::StrCat("unknown command '", command, "'"));
  }
  if (positional.size() > 1) {
    return Invalid(absl::StrCat("unexpected argument '", positional[1], "'"));
  }
  if (help) {
    cmd.kind = Command::Kind::kHelp;
    cmd.help_topic = command;
    return cmd;
  }
  cmd.kind = command == "spend" ? Command::Kind::kSpend : Command::Kind::kCatalog;

  std::vector<std::string> group_by;
  std::optional<int64_t> since, until;
  const bool spend = cmd.kind == Command::Kind::kSpend;
  CommonFlagSpec spec{.formats = {Format::kTable, Format::kJson}, .command = command};
  if (spend) spec.formats.push_back(Format::kCsv);
  const auto own_flag = [&](const CtlFlag& f) -> absl::Status {
    if (spend && f.name == "group-by") {
      group_by.push_back(f.value);
    } else if (spend && (f.name == "since" || f.name == "until")) {
      absl::StatusOr<int64_t> t = ParseTimeFlag(f, now);
      if (!t.ok()) return t.status();
      (f.name == "since" ? since : until) = *t;
    } else if (spend && f.name == "bucket") {
      if (f.value == "hour") {
        cmd.spend_query.set_bucket(v1::BUCKET_HOUR);
      } else if (f.value == "day") {
        cmd.spend_query.set_bucket(v1::BUCKET_DAY);
      } else if (f.value == "week") {
        cmd.spend_query.set_bucket(v1::BUCKET_WEEK);
      } else if (f.value == "month") {
        cmd.spend_query.set_bucket(v1::BUCKET_MONTH);
      } else if (f.value == "none") {
        cmd.spend_query.set_bucket(v1::BUCKET_NONE);
      } else {
        return Invalid(
            absl::StrCat("bad --bucket '", f.value, "' (use hour, day, week, month or none)"));
      }
    } else if (spend && f.name == "compare") {
      if (f.value != "true" && f.value != "false") {
        return Invalid(absl::StrCat("bad --compare '", f.value, "' (true or false)"));
      }
      cmd.spend_query.set_compare_previous(f.value == "true");
    } else if (spend && f.name == "page-size") {
      int64_t n = 0;
      if (!ParseInt64(f.value, n) || n < 0 || n > std::numeric_limits<int32_t>::max()) {
        return Invalid(absl::StrCat("bad --page-size '", f.value, "' (a non-negative integer)"));
      }
      cmd.spend_query.set_page_size(static_cast<int32_t>(n));
    } else if (spend && f.name == "page-token") {
      cmd.spend_query.set_page_token(f.value);
    } else if (spend && f.name == "filter") {
      auto filter = ParseFilter(f.value);
      if (!filter.ok()) return filter.status();
      (*cmd.spend_query.mutable_filters())[filter->first] = filter->second;
    } else if (spend && (f.name == "limit" || f.name == "top")) {
      int64_t n = 0;
      if (!ParseInt64(f.value, n) || n < 0 || n > std::numeric_limits<int32_t>::max()) {
        return Invalid(absl::StrCat("bad --limit '", f.value, "' (a non-negative integer)"));
      }
      cmd.spend_query.set_limit(static_cast<int32_t>(n));
    } else {
      return Invalid(absl::StrCat("unknown flag --", f.name, " for ", command));
    }
    return absl::OkStatus();
  };
  const absl::Status flags_status = ApplyFlags(flags, spec, cmd.global, cmd.format, own_flag);
  if (!flags_status.ok()) return flags_status;
  if (cmd.kind == Command::Kind::kSpend) {
    auto dims = ParseGroupBy(group_by);
    if (!dims.ok()) return dims.status();
    for (auto& d : *dims) cmd.spend_query.add_group_by(std::move(d));
    if (since) cmd.spend_query.set_start_unix_s(*since);
    if (until) cmd.spend_query.set_end_unix_s(*until);
    if (since && until && *since >= *until) return Invalid("--since must be before --until");
    if (cmd.spend_query.compare_previous() && !since) return Invalid("--compare needs --since");
  }
  return cmd;
}

GlobalOptions GlobalOptionsFromEnv(const GetEnv& env) {
  GlobalOptions global;
  if (auto v = env("TOLLGATE_ROUTER_ADMIN"); v && !v->empty()) global.router_admin = *v;
  if (auto v = env("TOLLGATE_LEDGER_ADMIN"); v && !v->empty()) global.ledger_admin = *v;
  if (auto v = env("TOLLGATE_ADMIN_TOKEN"); v && !v->empty()) global.token = *v;
  if (auto v = env("TOLLGATE_TLS_CA_FILE"); v && !v->empty()) global.tls.ca_file = *v;
  if (auto v = env("TOLLGATE_TLS_CERT_FILE"); v && !v->empty()) global.tls.cert_file = *v;
  if (auto v = env("TOLLGATE_TLS_KEY_FILE"); v && !v->empty()) global.tls.key_file = *v;
  if (auto v = env("TOLLGATE_TLS_SERVER_NAME"); v && !v->empty()) global.tls.server_name = *v;
  return global;
}

namespace {
std::string_view FormatName(Format format) {
  switch (format) {
    case Format::kJson:
      return "json";
    case Format::kCsv:
      return "csv";
    case Format::kTable:
      break;
  }
  return "table";
}
}  // namespace

absl::StatusOr<bool> ApplyCommonFlag(const CtlFlag& flag, const CommonFlagSpec& spec,
                                     GlobalOptions& global, Format& format) {
  if (flag.name == "router-admin" || flag.name == "ledger-admin") {
    const bool router = flag.name == "router-admin";
    // Named as documented (--ledger_admin), not in the normalized spelling.
    if (flag.value.empty()) {
      return Invalid(
          absl::StrCat("--", router ? "router_admin" : "ledger_admin", " must not be empty"));
    }
    (router ? global.router_admin : global.ledger_admin) = flag.value;
  } else if (flag.name == "token" && spec.token) {
    global.token = flag.value;
  } else if (flag.name == "tls-ca-file") {
    global.tls.ca_file = flag.value;
  } else if (flag.name == "tls-cert-file") {
    global.tls.cert_file = flag.value;
  } else if (flag.name == "tls-key-file") {
    global.tls.key_file = flag.value;
  } else if (flag.name == "tls-server-name") {
    global.tls.server_name = flag.value;
  } else if (flag.name == "timeout") {
    absl::StatusOr<absl::Duration> d = ParseDuration(flag.value);
    if (!d.ok()) return Invalid(absl::StrCat("--timeout: ", d.status().message()));
    if (*d <= absl::ZeroDuration()) return Invalid("--timeout must be positive");
    global.timeout = *d;
  } else if (flag.name == "format" && !spec.formats.empty()) {
    std::vector<std::string> allowed;
    for (Format f : spec.formats) {
      if (flag.value == FormatName(f)) {
        format = f;
        return true;
      }
      allowed.emplace_back(FormatName(f));
    }
    std::string list = spec.formats_text;
    if (list.empty()) {
      const std::string last = allowed.back();
      allowed.pop_back();
      list = allowed.empty() ? last : absl::StrCat(absl::StrJoin(allowed, ", "), " or ", last);
    }
    return Invalid(absl::StrCat("bad --format '", flag.value, "'",
                                spec.command.empty() ? "" : absl::StrCat(" for ", spec.command),
                                " (use ", list, ")"));
  } else {
    return false;
  }
  return true;
}

absl::Status ApplyFlags(const std::vector<CtlFlag>& flags, const CommonFlagSpec& spec,
                        GlobalOptions& global, Format& format,
                        const std::function<absl::Status(const CtlFlag&)>& own) {
  for (const CtlFlag& f : flags) {
    absl::StatusOr<bool> common = ApplyCommonFlag(f, spec, global, format);
    if (!common.ok()) return common.status();
    if (*common) continue;
    if (absl::Status st = own(f); !st.ok()) return st;
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> ParseTimeFlag(const CtlFlag& flag, absl::Time now) {
  absl::StatusOr<int64_t> t = ParseTimeSpec(flag.value, now);
  if (!t.ok()) return Invalid(absl::StrCat("--", flag.name, ": ", t.status().message()));
  return *t;
}

void SetDeadline(grpc::ClientContext& context, absl::Duration timeout) {
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::microseconds(absl::ToInt64Microseconds(timeout)));
}

int PrintError(std::ostream& err, const absl::Status& status) {
  err << "tollgatectl: " << status.message() << "\n";
  return 2;
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> AdminChannel(const std::string& address,
                                                            const GlobalOptions& global) {
  absl::StatusOr<GrpcTls> tls = GrpcTls::Load(global.tls);
  if (!tls.ok()) return tls.status();
  return grpc::CreateCustomChannel(address, tls->ChannelCredentials(), tls->ChannelArgs());
}

void PrepareContext(grpc::ClientContext& context, const GlobalOptions& global) {
  SetDeadline(context, global.timeout);
  if (!global.token.empty()) context.AddMetadata("authorization", "Bearer " + global.token);
}

int PrintRpcError(std::ostream& err, std::string_view service, std::string_view address,
                  const grpc::Status& status) {
  err << RpcErrorLine(service, address, status.error_code(), status.error_message()) << "\n";
  return 1;
}

int PrintUsageError(std::ostream& err, const absl::Status& status, std::string_view usage) {
  PrintError(err, status);
  err << "\n" << usage;
  return 2;
}

std::string ProtoJson(const google::protobuf::Message& message) {
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  // Serialising a valid message cannot fail; an error would leave `out` empty.
  (void)google::protobuf::util::MessageToJsonString(message, &out, options);
  return out + "\n";
}

std::string RenderCsv(const std::vector<std::vector<std::string>>& rows) {
  std::string out;
  for (const auto& row : rows) AppendCsvLine(row, out);
  return out;
}

std::string Usage(std::string_view topic) {
  if (topic == "spend") return std::string(kSpendHelp);
  if (topic == "catalog") return std::string(kCatalogHelp);
  return std::string(kOverview);
}

// ---------------------------------------------------------------------------------------------

std::string CsvField(std::string_view value) {
  if (value.find_first_of(",\"\r\n") == std::string_view::npos) return std::string(value);
  std::string out = "\"";
  for (char c : value) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
  return out;
}

std::string RenderSpendTable(const v1::SpendResponse& response, v1::Bucket bucket) {
  std::vector<std::vector<std::string>> rows;
  rows.push_back(SpendHeader(response, bucket));
  for (const auto& row : response.rows()) {
    rows.push_back(SpendCells(row, response, bucket, nullptr, /*show_empty_as_none=*/true));
  }
  const std::string total_label = "TOTAL";
  const size_t total_index = rows.size();
  rows.push_back(SpendCells(response.total(), response, bucket, &total_label, true));
  const size_t label_cols =
      (bucket != v1::BUCKET_NONE ? 1 : 0) + static_cast<size_t>(response.group_by_size());
  std::vector<bool> right(rows.front().size(), true);
  for (size_t c = 0; c < label_cols; ++c) right[c] = false;
  if (label_cols == 0) {
    // Only numbers: the TOTAL row needs a label column of its own.
    for (size_t r = 0; r < rows.size(); ++r) {
      rows[r].insert(rows[r].begin(), r == total_index ? total_label : "");
    }
    right.insert(right.begin(), false);
  }
  std::string out = RenderAligned(rows, right, total_index);
  if (!response.next_page_token().empty()) {
    absl::StrAppend(&out, "more rows: --page-token=", response.next_page_token(), "\n");
  }
  return out;
}

std::string RenderSpendCsv(const v1::SpendResponse& response, v1::Bucket bucket) {
  std::string out;
  AppendCsvLine(SpendHeader(response, bucket), out);
  for (const auto& row : response.rows()) {
    AppendCsvLine(SpendCells(row, response, bucket, nullptr, /*show_empty_as_none=*/false), out);
  }
  return out;
}

std::string RenderSpendJson(const v1::SpendResponse& response, v1::Bucket bucket) {
  json::object root;
  json::array group_by;
  for (const auto& dim : response.group_by()) group_by.emplace_back(dim);
  root["group_by"] = std::move(group_by);
  if (bucket != v1::BUCKET_NONE) {
    root["bucket"] = bucket == v1::BUCKET_HOUR   ? "hour"
                     : bucket == v1::BUCKET_DAY  ? "day"
                     : bucket == v1::BUCKET_WEEK ? "week"
                                                 : "month";
  }
  if (!response.next_page_token().empty()) root["next_page_token"] = response.next_page_token();
  if (response.previous_end_unix_s() != 0) {
    root["previous_start_unix_s"] = response.previous_start_unix_s();
    root["previous_end_unix_s"] = response.previous_end_unix_s();
  }
  json::array rows;
  for (const auto& row : response.rows())
    rows.emplace_back(SpendRowJson(row, response, bucket, false));
  root["rows"] = std::move(rows);
  root["total"] = SpendRowJson(response.total(), response, bucket, true);
  return json::serialize(root) + "\n";
}

std::string RenderSpend(const v1::SpendResponse& response, v1::Bucket bucket, Format format) {
  switch (format) {
    case Format::kJson:
      return RenderSpendJson(response, bucket);
    case Format::kCsv:
      return RenderSpendCsv(response, bucket);
    case Format::kTable:
      break;
  }
  return RenderSpendTable(response, bucket);
}

std::string RenderCatalogTable(const v1::ListCatalogResponse& response) {
  std::string out =
      absl::StrCat("catalog_version: ", response.catalog_version(), "\n\nPROVIDERS\n");
  {
    std::vector<std::vector<std::string>> rows = {{"name", "dialect", "base_url", "api_key_env"}};
    for (const auto& p : response.providers()) {
      rows.push_back(
          {p.name(), p.dialect(), p.base_url(), p.api_key_env().empty() ? "-" : p.api_key_env()});
    }
    absl::StrAppend(&out, RenderAligned(rows, std::vector<bool>(4, false), 0));
  }
  absl::StrAppend(&out, "\nMODELS\n");
  {
    std::vector<std::vector<std::string>> rows = {
        {"model", "owned_by", "aliases", "deployments (priority order)"}};
    for (const auto& m : response.models()) {
      rows.push_back({m.id(), m.owned_by().empty() ? "-" : m.owned_by(),
                      m.aliases().empty() ? "-" : absl::StrJoin(m.aliases(), ","),
                      absl::StrJoin(m.deployment_ids(), " > ")});
    }
    absl::StrAppend(&out, RenderAligned(rows, std::vector<bool>(4, false), 0));
  }
  absl::StrAppend(&out, "\nDEPLOYMENTS (prices in USD per 1M tokens)\n");
  {
    std::vector<std::vector<std::string>> rows = {
        {"id", "provider", "upstream_model", "region", "input", "cached_input", "cache_write_5m",
         "cache_write_1h", "output", "reasoning", "price_card"}};
    for (const auto& d : response.deployments()) {
      const v1::UnitPrices& p = d.prices();
      rows.push_back({d.id(), d.provider(), d.upstream_model(),
                      d.region().empty() ? "-" : d.region(), Price(p.input_pico()),
                      Price(p.cached_input_pico()), Price(p.cache_write_5m_pico()),
                      Price(p.cache_write_1h_pico()), Price(p.output_pico()),
                      p.reasoning_pico() == 0 ? "=output" : Price(p.reasoning_pico()),
                      p.price_card_version().empty() ? "-" : p.price_card_version()});
    }
    std::vector<bool> right(11, false);
    for (size_t c = 4; c <= 9; ++c) right[c] = true;
    absl::StrAppend(&out, RenderAligned(rows, right, 0));
  }
  return out;
}

std::string RenderCatalogJson(const v1::ListCatalogResponse& response) {
  json::object root;
  root["catalog_version"] = response.catalog_version();
  json::array providers;
  for (const auto& p : response.providers()) {
    providers.emplace_back(json::object{{"name", p.name()},
                                        {"dialect", p.dialect()},
                                        {"base_url", p.base_url()},
                                        {"api_key_env", p.api_key_env()}});
  }
  root["providers"] = std::move(providers);
  json::array models;
  for (const auto& m : response.models()) {
    json::array aliases, deployments;
    for (const auto& a : m.aliases()) aliases.emplace_back(a);
    for (const auto& d : m.deployment_ids()) deployments.emplace_back(d);
    models.emplace_back(json::object{{"id", m.id()},
                                     {"owned_by", m.owned_by()},
                                     {"created", m.created()},
                                     {"aliases", std::move(aliases)},
                                     {"deployments", std::move(deployments)}});
  }
  root["models"] = std::move(models);
  json::array deployments;
  for (const auto& d : response.deployments()) {
    const v1::UnitPrices& p = d.prices();
    json::array caps;
    for (const auto& c : d.capabilities()) caps.emplace_back(c);
    deployments.emplace_back(
        json::object{{"id", d.id()},
                     {"provider", d.provider()},
                     {"dialect", d.dialect()},
                     {"base_url", d.base_url()},
                     {"api_key_env", d.api_key_env()},
                     {"upstream_model", d.upstream_model()},
                     {"region", d.region()},
                     {"capabilities", std::move(caps)},
                     {"context_window", d.context_window()},
                     {"max_output_tokens", d.max_output_tokens()},
                     {"prices_usd_per_million_tokens",
                      json::object{{"input", Price(p.input_pico())},
                                   {"cached_input", Price(p.cached_input_pico())},
                                   {"cache_write_5m", Price(p.cache_write_5m_pico())},
                                   {"cache_write_1h", Price(p.cache_write_1h_pico())},
                                   {"output", Price(p.output_pico())},
                                   {"reasoning", Price(p.reasoning_pico())}}},
                     {"price_card_version", p.price_card_version()}});
  }
  root["deployments"] = std::move(deployments);
  return json::serialize(root) + "\n";
}

std::string RpcErrorLine(std::string_view service, std::string_view address, int grpc_code,
                         std::string_view message) {
  std::string msg(message);
  std::replace(msg.begin(), msg.end(), '\n', ' ');
  return absl::StrCat("tollgatectl: ", std::string(service), " at ", std::string(address), ": ",
                      absl::StatusCodeToString(static_cast<absl::StatusCode>(grpc_code)), ": ",
                      msg);
}

}  // namespace tollgate::tools::ctl
