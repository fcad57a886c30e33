#include "tools/tollgatectl/quota_cmds.h"

#include <algorithm>
#include <functional>
#include <iterator>
#include <optional>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "services/common/quota.h"
#include "tollgate/v1/quota.grpc.pb.h"

namespace tollgate::tools::ctl {
namespace {

absl::Status Invalid(std::string message) { return absl::InvalidArgumentError(std::move(message)); }

bool IsTopic(std::string_view s) { return s == "budgets" || s == "limits"; }

bool IsBoolFlag(std::string_view name) { return name == "org" || name == "soft"; }

absl::StatusOr<bool> ParseBool(const CtlFlag& f) {
  if (f.value == "true") return true;
  if (f.value == "false") return false;
  return Invalid(absl::StrCat("bad --", f.name, " '", f.value, "' (true or false)"));
}

// A limit flag's value in the quota's canonical text, checked as the ledger will check it.
absl::StatusOr<std::string> ParseLimitFlag(const CtlFlag& f, v1::QuotaUnit unit) {
  absl::StatusOr<int64_t> units = ParseQuotaLimit(unit, f.value);
  if (!units.ok()) {
    absl::string_view why = units.status().message();
    absl::ConsumePrefix(&why, "limit: ");
    return Invalid(absl::StrCat("bad --", f.name, " '", f.value, "': ", why));
  }
  return FormatQuotaUnits(unit, *units);
}

absl::StatusOr<std::vector<int32_t>> ParseAlerts(const CtlFlag& f) {
  std::vector<int32_t> out;
  for (absl::string_view part : absl::StrSplit(f.value, ',', absl::SkipWhitespace())) {
    int32_t percent = 0;
    if (!absl::SimpleAtoi(part, &percent) || percent <= 0 || percent > 1000) {
      return Invalid(
          absl::StrCat("bad --alerts '", f.value,
                       "' (comma-separated percentages from 1 to 1000, e.g. 50,80,100)"));
    }
    if (std::find(out.begin(), out.end(), percent) != out.end()) {
      return Invalid(absl::StrCat("bad --alerts '", f.value, "': ", percent, " given twice"));
    }
    out.push_back(percent);
  }
  std::sort(out.begin(), out.end());
  return out;
}

// The flags of `budgets set` / `limits set`, before they are checked together.
struct SetFlags {
  std::optional<std::string> team, key, feature, customer, name;
  std::optional<CtlFlag> usd, tokens, rpm, tpm;
  std::optional<std::string> period;
  std::vector<int32_t> alerts;
  bool org = false;
  bool soft = false;
};

absl::StatusOr<v1::SetQuotaRequest> BuildBudget(const SetFlags& s) {
  v1::Quota q;
  const int scopes = s.key.has_value() + s.feature.has_value() + s.customer.has_value() + s.org;
  if (scopes > 1) return Invalid("give at most one of --key, --feature, --customer and --org");
  if (s.org && s.team) return Invalid("--org is organisation-wide: it takes no --team");
  if (s.key && !s.team) return Invalid("--key needs --team (the key's team)");
  if (!s.team && !s.org && !s.feature && !s.customer) {
    return Invalid("budgets set needs --team T (or --org for an organisation-wide budget)");
  }
  if (s.org) {
    q.set_scope(v1::QUOTA_SCOPE_ORG);
  } else if (s.key) {
    q.set_scope(v1::QUOTA_SCOPE_KEY);
    q.set_subject(*s.key);
  } else if (s.feature) {
    q.set_scope(v1::QUOTA_SCOPE_FEATURE);
    q.set_subject(*s.feature);
  } else if (s.customer) {
    q.set_scope(v1::QUOTA_SCOPE_CUSTOMER);
    q.set_subject(*s.customer);
  } else {
    q.set_scope(v1::QUOTA_SCOPE_TEAM);
  }
  if (s.team) q.set_team(*s.team);

  if (s.usd && s.tokens) return Invalid("give either --usd or --tokens, not both");
  if (!s.usd && !s.tokens) return Invalid("budgets set needs --usd AMOUNT or --tokens N");
  q.set_unit(s.usd ? v1::QUOTA_UNIT_USD : v1::QUOTA_UNIT_TOKENS);
  absl::StatusOr<std::string> limit = ParseLimitFlag(s.usd ? *s.usd : *s.tokens, q.unit());
  if (!limit.ok()) return limit.status();
  q.set_limit(*limit);

  if (!s.period) return Invalid("budgets set needs --period day|week|month");
  const v1::QuotaPeriod period = ParsePeriod(*s.period);
  if (period != v1::QUOTA_PERIOD_DAY && period != v1::QUOTA_PERIOD_WEEK &&
      period != v1::QUOTA_PERIOD_MONTH) {
    return Invalid(absl::StrCat("bad --period '", *s.period,
                                "' (use day, week or month; per-minute limits: tollgatectl "
                                "limits set)"));
  }
  q.set_period(period);
  q.set_hard(!s.soft);
  for (int32_t a : s.alerts) q.add_alert_percents(a);
  if (s.name) q.set_name(*s.name);
  v1::SetQuotaRequest request;
  *request.mutable_quota() = std::move(q);
  return request;
}

absl::StatusOr<std::vector<v1::SetQuotaRequest>> BuildLimits(const SetFlags& s) {
  if (!s.team) return Invalid("limits set needs --team T");
  if (!s.rpm && !s.tpm) return Invalid("limits set needs --rpm N and/or --tpm N");
  std::vector<v1::SetQuotaRequest> out;
  for (const auto& [flag, unit] :
       {std::pair{&s.rpm, v1::QUOTA_UNIT_REQUESTS}, std::pair{&s.tpm, v1::QUOTA_UNIT_TOKENS}}) {
    if (!flag->has_value()) continue;
    absl::StatusOr<std::string> limit = ParseLimitFlag(**flag, unit);
    if (!limit.ok()) return limit.status();
    v1::Quota& q = *out.emplace_back().mutable_quota();
    q.set_scope(s.key ? v1::QUOTA_SCOPE_KEY : v1::QUOTA_SCOPE_TEAM);
    q.set_team(*s.team);
    if (s.key) q.set_subject(*s.key);
    q.set_unit(unit);
    q.set_period(v1::QUOTA_PERIOD_MINUTE);
    q.set_limit(*limit);
    q.set_hard(true);
  }
  return out;
}

absl::Status ParseSetFlag(const CtlFlag& f, bool limits, SetFlags& s) {
  const bool either = f.name == "team" || f.name == "key";
  const bool budget_only = f.name == "feature" || f.name == "customer" || f.name == "name" ||
                           f.name == "usd" || f.name == "tokens" || f.name == "period" ||
                           f.name == "alerts" || f.name == "org" || f.name == "soft";
  const bool limit_only = f.name == "rpm" || f.name == "tpm";
  if (!either && !(limits ? limit_only : budget_only)) {
    return Invalid(
        absl::StrCat("unknown flag --", f.name, " for ", limits ? "limits" : "budgets", " set"));
  }
  if (f.name == "org" || f.name == "soft") {
    absl::StatusOr<bool> b = ParseBool(f);
    if (!b.ok()) return b.status();
    (f.name == "org" ? s.org : s.soft) = *b;
  } else if (f.name == "usd" || f.name == "tokens" || f.name == "rpm" || f.name == "tpm") {
    (f.name == "usd" ? s.usd : f.name == "tokens" ? s.tokens : f.name == "rpm" ? s.rpm : s.tpm) = f;
  } else if (f.name == "alerts") {
    absl::StatusOr<std::vector<int32_t>> alerts = ParseAlerts(f);
    if (!alerts.ok()) return alerts.status();
    s.alerts = std::move(*alerts);
  } else if (f.name == "period") {
    s.period = f.value;
  } else if (f.name == "name") {
    s.name = f.value;
  } else {
    // --team, --key, --feature, --customer: names the ledger matches exactly.
    if (f.value.empty()) return Invalid(absl::StrCat("--", f.name, " must not be empty"));
    (f.name == "team"      ? s.team
     : f.name == "key"     ? s.key
     : f.name == "feature" ? s.feature
                           : s.customer) = f.value;
  }
  return absl::OkStatus();
}

std::string Cell(const std::string& value, bool csv) { return value.empty() && !csv ? "-" : value; }

std::string WindowEnd(int64_t unix_s) {
  if (unix_s == 0) return "";
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::FromUnixSeconds(unix_s), absl::UTCTimeZone());
}

std::string Percents(const google::protobuf::RepeatedField<int32_t>& percents) {
  return absl::StrJoin(percents, ",");
}

// A quota row: id, scope, team, subject, then `rest`.
std::vector<std::string> QuotaRow(const v1::Quota& q, bool csv, std::vector<std::string> rest) {
  std::vector<std::string> row = {q.id(), std::string(ScopeName(q.scope())), Cell(q.team(), csv),
                                  Cell(q.subject(), csv)};
  row.insert(row.end(), std::make_move_iterator(rest.begin()), std::make_move_iterator(rest.end()));
  return row;
}

// CSV, or a table with columns first_right..last_right (numbers) right-aligned and `none` in
// place of a table without rows.
std::string Render(const std::vector<std::vector<std::string>>& rows, size_t first_right,
                   size_t last_right, Format format, std::string_view none) {
  if (format == Format::kCsv) return RenderCsv(rows);
  if (rows.size() == 1) return std::string(none) + "\n";
  std::vector<bool> right(rows[0].size(), false);
  for (size_t c = first_right; c <= last_right; ++c) right[c] = true;
  return RenderAligned(rows, right, 0);
}

// The quotas of a ListQuotas answer that `keep` selects, in the ledger's order: JSON the filtered
// answer; else `header` and per quota QuotaRow(quota, csv, cells(state, csv)), through Render.
std::string RenderStates(
    const v1::ListQuotasResponse& response, bool (*keep)(const v1::Quota&), Format format,
    std::vector<std::string> header,
    const std::function<std::vector<std::string>(const v1::QuotaState&, bool csv)>& cells,
    size_t first_right, size_t last_right, std::string_view none) {
  v1::ListQuotasResponse kept;
  for (const v1::QuotaState& s : response.quotas()) {
    if (keep(s.quota())) *kept.add_quotas() = s;
  }
  if (format == Format::kJson) return ProtoJson(kept);
  const bool csv = format == Format::kCsv;
  std::vector<std::vector<std::string>> rows = {std::move(header)};
  for (const v1::QuotaState& s : kept.quotas()) {
    rows.push_back(QuotaRow(s.quota(), csv, cells(s, csv)));
  }
  return Render(rows, first_right, last_right, format, none);
}

}  // namespace

bool IsBudget(const v1::Quota& q) {
  return (q.unit() == v1::QUOTA_UNIT_USD || q.unit() == v1::QUOTA_UNIT_TOKENS) &&
         (q.period() == v1::QUOTA_PERIOD_DAY || q.period() == v1::QUOTA_PERIOD_WEEK ||
          q.period() == v1::QUOTA_PERIOD_MONTH);
}

bool IsRateLimit(const v1::Quota& q) {
  return (q.unit() == v1::QUOTA_UNIT_REQUESTS || q.unit() == v1::QUOTA_UNIT_TOKENS) &&
         q.period() == v1::QUOTA_PERIOD_MINUTE;
}

bool IsQuotaCommand(const std::vector<std::string>& args) {
  return NamesCommand(args, IsBoolFlag, IsTopic);
}

absl::StatusOr<QuotaCommand> ParseQuotaCommand(const std::vector<std::string>& args,
                                               const GetEnv& env) {
  QuotaCommand cmd;
  cmd.global = GlobalOptionsFromEnv(env);
  absl::StatusOr<CtlArgs> parsed = SplitArgs(args, IsBoolFlag);
  if (!parsed.ok()) return parsed.status();
  const std::vector<std::string>& pos = parsed->positional;
  if (pos.empty()) return Invalid("no command given");
  if (pos[0] == "help" || parsed->help) return cmd;
  if (!IsTopic(pos[0])) return Invalid(absl::StrCat("unknown command '", pos[0], "'"));
  cmd.limits = pos[0] == "limits";
  const std::string verb = pos.size() > 1 ? pos[1] : "list";
  const std::string what = absl::StrCat(pos[0], " ", verb);
  if (verb == "set") {
    cmd.kind = QuotaCommand::Kind::kSet;
    if (pos.size() > 2) return Invalid(absl::StrCat(what, " takes flags only (--team T ...)"));
  } else if (verb == "list") {
    cmd.kind = QuotaCommand::Kind::kList;
    if (pos.size() > 2) return Invalid(absl::StrCat(what, " takes flags only (--team T)"));
    cmd.list.set_limits_only(cmd.limits);
    cmd.list.set_include_key_limits(cmd.limits);
  } else if (verb == "delete") {
    cmd.kind = QuotaCommand::Kind::kDelete;
    if (pos.size() != 3) return Invalid(absl::StrCat("usage: tollgatectl ", what, " ID"));
    cmd.remove.set_id(pos[2]);
  } else {
    return Invalid(absl::StrCat("unknown command '", what, "' (", pos[0], " set|list|delete)"));
  }

  SetFlags set;
  const CommonFlagSpec spec{.formats = {Format::kTable, Format::kCsv, Format::kJson},
                            .formats_text = "table, csv, json"};
  const auto own_flag = [&](const CtlFlag& f) -> absl::Status {
    if (cmd.kind == QuotaCommand::Kind::kSet) return ParseSetFlag(f, cmd.limits, set);
    if (cmd.kind == QuotaCommand::Kind::kList && f.name == "team") {
      cmd.list.set_team(f.value);
      return absl::OkStatus();
    }
    return Invalid(absl::StrCat("unknown flag --", f.name, " for ", what));
  };
  const absl::Status flags_status =
      ApplyFlags(parsed->flags, spec, cmd.global, cmd.format, own_flag);
  if (!flags_status.ok()) return flags_status;
  if (cmd.kind == QuotaCommand::Kind::kSet) {
    if (cmd.limits) {
      absl::StatusOr<std::vector<v1::SetQuotaRequest>> limits = BuildLimits(set);
      if (!limits.ok()) return limits.status();
      cmd.set = std::move(*limits);
    } else {
      absl::StatusOr<v1::SetQuotaRequest> budget = BuildBudget(set);
      if (!budget.ok()) return budget.status();
      cmd.set.push_back(std::move(*budget));
    }
  }
  if (cmd.global.token.empty()) {
    return Invalid("no admin token: pass --token or set TOLLGATE_ADMIN_TOKEN");
  }
  return cmd;
}

std::string QuotaUsage() {
  return R"(Budget and rate-limit commands (ledger Quotas; docs/budgets.md):
  tollgatectl budgets set --team T [--key ID | --feature F | --customer C | --org]
                          --usd AMOUNT | --tokens N  --period day|week|month
                          [--soft] [--alerts 50,80,100] [--name TEXT]
      --team alone: the team's budget; --key: that key's (of team T); --feature/--customer:
      requests with that feature/customer (of team T if given); --org: every request (no
      --team). Hard (429 once spent) unless --soft; each alert fires once per window. Windows
      are UTC calendar days, ISO weeks (from Monday) and months. Setting the same scope, unit
      and period again replaces the budget.
  tollgatectl budgets list [--team T]        limit, spent, committed, remaining, used % now
  tollgatectl budgets delete ID              e.g. q-1a2b3c4d
  tollgatectl limits set --team T [--key ID] [--rpm N] [--tpm N]
      requests / tokens per UTC minute for the team (or the key); always hard
  tollgatectl limits list [--team T]         also the keys' own limits (keys create --rpm/--tpm,
                                             ids k-<key id>-rpm / -tpm)
  tollgatectl limits delete ID
Flags: --token TOKEN (env TOLLGATE_ADMIN_TOKEN), --format table|csv|json,
       --ledger_admin HOST:PORT (env TOLLGATE_LEDGER_ADMIN), --timeout DURATION.
)";
}

std::string RenderQuotas(const std::vector<v1::Quota>& quotas, Format format) {
  if (format == Format::kJson) {
    std::string out;
    for (const v1::Quota& q : quotas) out += ProtoJson(q);
    return out;
  }
  const bool csv = format == Format::kCsv;
  std::vector<std::vector<std::string>> rows = {
      {"id", "scope", "team", "subject", "unit", "period", "limit", "mode", "alerts", "name"}};
  for (const v1::Quota& q : quotas) {
    rows.push_back(QuotaRow(q, csv,
                            {std::string(UnitName(q.unit())), std::string(PeriodName(q.period())),
                             q.limit(), q.hard() ? "hard" : "soft",
                             Cell(Percents(q.alert_percents()), csv), Cell(q.name(), csv)}));
  }
  return Render(rows, 6, 6, format, "no quotas");
}

std::string RenderBudgets(const v1::ListQuotasResponse& response, Format format) {
  const bool csv = format == Format::kCsv;
  return RenderStates(
      response, &IsBudget, format,
      {"id", "scope", "team", "subject", "unit", "period", "limit", "spent", "committed",
       "remaining", csv ? "used_percent" : "used", "mode", "alerts_fired", "window_end"},
      [](const v1::QuotaState& s, bool csv) -> std::vector<std::string> {
        const v1::Quota& q = s.quota();
        return {std::string(UnitName(q.unit())),
                std::string(PeriodName(q.period())),
                q.limit(),
                Cell(s.spent(), csv),
                Cell(s.committed(), csv),
                Cell(s.remaining(), csv),
                csv ? absl::StrCat(s.used_percent()) : absl::StrCat(s.used_percent(), "%"),
                q.hard() ? "hard" : "soft",
                Cell(Percents(s.alerts_fired()), csv),
                Cell(WindowEnd(s.window_end_unix_s()), csv)};
      },
      6, 10, "no budgets");
}

std::string RenderLimits(const v1::ListQuotasResponse& response, Format format) {
  return RenderStates(
      response, &IsRateLimit, format,
      {"id", "scope", "team", "subject", "kind", "limit", "committed", "remaining", "leases"},
      [](const v1::QuotaState& s, bool csv) -> std::vector<std::string> {
        const v1::Quota& q = s.quota();
        return {q.unit() == v1::QUOTA_UNIT_REQUESTS ? "rpm" : "tpm", q.limit(),
                Cell(s.committed(), csv), Cell(s.remaining(), csv),
                absl::StrCat(s.active_leases())};
      },
      5, 8, "no rate limits");
}

int RunQuotaCommand(const std::vector<std::string>& args, const GetEnv& env, std::ostream& out,
                    std::ostream& err) {
  absl::StatusOr<QuotaCommand> cmd = ParseQuotaCommand(args, env);
  if (!cmd.ok()) return PrintUsageError(err, cmd.status(), QuotaUsage());
  if (cmd->kind == QuotaCommand::Kind::kHelp) {
    out << QuotaUsage();
    return 0;
  }
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
      AdminChannel(cmd->global.ledger_admin, cmd->global);
  if (!channel.ok()) return PrintError(err, channel.status());
  auto stub = v1::Quotas::NewStub(*channel);
  auto failed = [&](const grpc::Status& status) {
    return PrintRpcError(err, "ledger", cmd->global.ledger_admin, status);
  };
  switch (cmd->kind) {
    case QuotaCommand::Kind::kSet: {
      std::vector<v1::Quota> done;
      for (const v1::SetQuotaRequest& request : cmd->set) {
        grpc::ClientContext context;
        PrepareContext(context, cmd->global);
        v1::Quota quota;
        const grpc::Status status = stub->SetQuota(&context, request, &quota);
        if (!status.ok()) {
          if (!done.empty()) out << RenderQuotas(done, cmd->format);
          return failed(status);
        }
        done.push_back(std::move(quota));
      }
      out << RenderQuotas(done, cmd->format);
      return 0;
    }
    case QuotaCommand::Kind::kList: {
      grpc::ClientContext context;
      PrepareContext(context, cmd->global);
      v1::ListQuotasResponse response;
      const grpc::Status status = stub->ListQuotas(&context, cmd->list, &response);
      if (!status.ok()) return failed(status);
      out << (cmd->limits ? RenderLimits(response, cmd->format)
                          : RenderBudgets(response, cmd->format));
      return 0;
    }
    case QuotaCommand::Kind::kDelete: {
      grpc::ClientContext context;
      PrepareContext(context, cmd->global);
      v1::Quota quota;
      const grpc::Status status = stub->DeleteQuota(&context, cmd->remove, &quota);
      if (!status.ok()) return failed(status);
      out << (cmd->format == Format::kTable ? absl::StrCat("deleted ", quota.id(), "\n")
                                            : RenderQuotas({quota}, cmd->format));
      return 0;
    }
    case QuotaCommand::Kind::kHelp:
      break;
  }
  return 0;
}

}  // namespace tollgate::tools::ctl
