#include "tools/tollgatectl/tenancy_cmds.h"

#include <algorithm>
#include <memory>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "tollgate/v1/tenancy.grpc.pb.h"

namespace tollgate::tools::ctl {
namespace {

absl::Status Invalid(std::string message) { return absl::InvalidArgumentError(std::move(message)); }

bool IsTopic(std::string_view s) { return s == "teams" || s == "keys" || s == "audit"; }

bool IsBoolFlag(std::string_view name) { return name == "all"; }

std::vector<std::string> List(const std::string& value) {
  std::vector<std::string> out;
  for (absl::string_view part : absl::StrSplit(value, ',', absl::SkipWhitespace())) {
    out.emplace_back(absl::StripAsciiWhitespace(part));
  }
  return out;
}

std::string Time(int64_t unix_s) {
  if (unix_s == 0) return "-";
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::FromUnixSeconds(unix_s), absl::UTCTimeZone());
}

std::string Restrictions(const v1::KeyRestrictions& r) {
  std::vector<std::string> parts;
  if (r.models_size() > 0) parts.push_back(absl::StrCat("models=", absl::StrJoin(r.models(), ",")));
  if (!r.feature().empty()) parts.push_back(absl::StrCat("feature=", r.feature()));
  if (r.regions_size() > 0) {
    parts.push_back(absl::StrCat("regions=", absl::StrJoin(r.regions(), ",")));
  }
  if (r.rpm() > 0) parts.push_back(absl::StrCat("rpm=", r.rpm()));
  if (r.tpm() > 0) parts.push_back(absl::StrCat("tpm=", r.tpm()));
  return parts.empty() ? "-" : absl::StrJoin(parts, " ");
}

std::string KeyTable(const google::protobuf::RepeatedPtrField<v1::VirtualKey>& keys) {
  std::vector<std::vector<std::string>> rows = {{"ID", "PREFIX", "TEAM", "NAME", "CREATED",
                                                 "CREATED_BY", "EXPIRES", "STATUS",
                                                 "RESTRICTIONS"}};
  for (const v1::VirtualKey& k : keys) {
    rows.push_back({k.id(), k.prefix(), k.team(), k.name().empty() ? "-" : k.name(),
                    Time(k.created_unix_s()), k.created_by(), Time(k.expires_unix_s()),
                    k.revoked_unix_s() != 0
                        ? absl::StrCat("revoked ", Time(k.revoked_unix_s()), " by ", k.revoked_by())
                        : "active",
                    Restrictions(k.restrictions())});
  }
  return RenderAligned(rows, std::vector<bool>(rows[0].size(), false), 0);
}

absl::StatusOr<int64_t> ParseExpiry(const std::string& value, absl::Time now) {
  if (absl::StatusOr<absl::Duration> d = ParseDuration(value); d.ok()) {
    return absl::ToUnixSeconds(now + *d);
  }
  absl::StatusOr<int64_t> t = ParseTimeSpec(value, now);
  if (!t.ok()) {
    return Invalid(absl::StrCat("bad --expires '", value,
                                "' (a duration from now such as 30d, an RFC 3339 time or a date)"));
  }
  return *t;
}

absl::StatusOr<int64_t> ParseCount(const CtlFlag& f) {
  int64_t n = 0;
  if (!absl::SimpleAtoi(f.value, &n) || n < 0) {
    return Invalid(absl::StrCat("bad --", f.name, " '", f.value, "' (a non-negative integer)"));
  }
  return n;
}

}  // namespace

bool IsTenancyCommand(const std::vector<std::string>& args) {
  return NamesCommand(args, IsBoolFlag, IsTopic);
}

absl::StatusOr<TenancyCommand> ParseTenancyCommand(const std::vector<std::string>& args,
                                                   const GetEnv& env, absl::Time now) {
  TenancyCommand cmd;
  cmd.global = GlobalOptionsFromEnv(env);
  absl::StatusOr<CtlArgs> parsed = SplitArgs(args, IsBoolFlag);
  if (!parsed.ok()) return parsed.status();
  std::vector<std::string> pos = parsed->positional;
  if (pos.empty()) return Invalid("no command given");
  if (pos[0] == "help" || parsed->help) return cmd;
  const std::string topic = pos[0];
  const std::string verb = pos.size() > 1 ? pos[1] : (topic == "audit" ? "" : "list");
  std::string what = topic == "audit" ? "audit" : absl::StrCat(topic, " ", verb);
  if (topic == "teams" && verb == "create") {
    cmd.kind = TenancyCommand::Kind::kTeamsCreate;
    if (pos.size() != 3) return Invalid("usage: tollgatectl teams create NAME");
    cmd.create_team.set_name(pos[2]);
  } else if (topic == "teams" && verb == "list") {
    cmd.kind = TenancyCommand::Kind::kTeamsList;
    if (pos.size() > 2) return Invalid("teams list takes no arguments");
  } else if (topic == "keys" && verb == "create") {
    cmd.kind = TenancyCommand::Kind::kKeysCreate;
    if (pos.size() > 2) return Invalid("keys create takes flags only (--team T ...)");
  } else if (topic == "keys" && verb == "list") {
    cmd.kind = TenancyCommand::Kind::kKeysList;
    if (pos.size() > 2) return Invalid("keys list takes flags only (--team T, --all)");
  } else if (topic == "keys" && verb == "revoke") {
    cmd.kind = TenancyCommand::Kind::kKeysRevoke;
    if (pos.size() != 3) return Invalid("usage: tollgatectl keys revoke ID|PREFIX");
    cmd.revoke_key.set_key(pos[2]);
  } else if (topic == "audit") {
    cmd.kind = TenancyCommand::Kind::kAudit;
    if (pos.size() > 1) return Invalid("audit takes flags only (--team T, --limit N)");
  } else {
    return Invalid(absl::StrCat("unknown command '", topic, " ", verb,
                                "' (teams create|list, keys create|list|revoke, audit)"));
  }
  const auto kind = cmd.kind;
  using K = TenancyCommand::Kind;
  const CommonFlagSpec spec{.formats = {Format::kTable, Format::kJson}};
  const auto own_flag = [&](const CtlFlag& f) -> absl::Status {
    if (f.name == "team" && kind == K::kKeysCreate) {
      cmd.create_key.set_team(f.value);
    } else if (f.name == "team" && kind == K::kKeysList) {
      cmd.list_keys.set_team(f.value);
    } else if (f.name == "team" && kind == K::kAudit) {
      cmd.audit.set_team(f.value);
    } else if (f.name == "all" && kind == K::kKeysList) {
      cmd.list_keys.set_include_revoked(f.value != "false");
    } else if (f.name == "limit" && kind == K::kAudit) {
      absl::StatusOr<int64_t> n = ParseCount(f);
      if (!n.ok()) return n.status();
      cmd.audit.set_limit(static_cast<int32_t>(std::min<int64_t>(*n, 1'000'000)));
    } else if (kind == K::kKeysCreate && f.name == "name") {
      cmd.create_key.set_name(f.value);
    } else if (kind == K::kKeysCreate && f.name == "expires") {
      absl::StatusOr<int64_t> t = ParseExpiry(f.value, now);
      if (!t.ok()) return t.status();
      cmd.create_key.set_expires_unix_s(*t);
    } else if (kind == K::kKeysCreate && f.name == "models") {
      for (std::string& m : List(f.value)) cmd.create_key.mutable_restrictions()->add_models(m);
    } else if (kind == K::kKeysCreate && f.name == "regions") {
      for (std::string& r : List(f.value)) cmd.create_key.mutable_restrictions()->add_regions(r);
    } else if (kind == K::kKeysCreate && f.name == "feature") {
      cmd.create_key.mutable_restrictions()->set_feature(f.value);
    } else if (kind == K::kKeysCreate && (f.name == "rpm" || f.name == "tpm")) {
      absl::StatusOr<int64_t> n = ParseCount(f);
      if (!n.ok()) return n.status();
      if (f.name == "rpm") {
        cmd.create_key.mutable_restrictions()->set_rpm(*n);
      } else {
        cmd.create_key.mutable_restrictions()->set_tpm(*n);
      }
    } else {
      return Invalid(absl::StrCat("unknown flag --", f.name, " for ", what));
    }
    return absl::OkStatus();
  };
  const absl::Status flags_status =
      ApplyFlags(parsed->flags, spec, cmd.global, cmd.format, own_flag);
  if (!flags_status.ok()) return flags_status;
  if (cmd.kind == TenancyCommand::Kind::kKeysCreate && cmd.create_key.team().empty()) {
    return Invalid("keys create needs --team");
  }
  cmd.token = cmd.global.token;
  if (cmd.token.empty()) {
    return Invalid("no admin token: pass --token or set TOLLGATE_ADMIN_TOKEN");
  }
  return cmd;
}

std::string TenancyUsage() {
  return R"(Tenancy commands (ledger TenancyAdmin; docs/tenancy.md):
  tollgatectl teams create NAME
  tollgatectl teams list
  tollgatectl keys create --team T [--name N] [--expires 30d|2025-01-31T00:00:00Z|2025-01-31]
                          [--models a,b] [--feature F] [--regions r1,r2] [--rpm N] [--tpm N]
      prints the new key once: it cannot be shown again
  tollgatectl keys list [--team T] [--all]          --all includes revoked keys
  tollgatectl keys revoke ID|PREFIX                 e.g. 1a2b3c4d or tg-1a2b3c4d
  tollgatectl audit [--team T] [--limit N]          newest first (default 100)
Flags: --token TOKEN (env TOLLGATE_ADMIN_TOKEN), --format table|json,
       --ledger_admin HOST:PORT (env TOLLGATE_LEDGER_ADMIN), --timeout DURATION.
)";
}

std::string RenderTeams(const v1::ListTeamsResponse& response, Format format) {
  if (format == Format::kJson) return ProtoJson(response);
  if (response.teams().empty()) return "no teams\n";
  std::vector<std::vector<std::string>> rows = {{"TEAM", "CREATED", "CREATED_BY"}};
  for (const v1::Team& t : response.teams()) {
    rows.push_back({t.name(), Time(t.created_unix_s()), t.created_by()});
  }
  return RenderAligned(rows, {false, false, false}, 0);
}

std::string RenderKeys(const v1::ListKeysResponse& response, Format format) {
  if (format == Format::kJson) return ProtoJson(response);
  if (response.keys().empty()) return "no keys\n";
  return KeyTable(response.keys());
}

std::string RenderCreatedKey(const v1::CreateKeyResponse& response, Format format) {
  if (format == Format::kJson) return ProtoJson(response);
  google::protobuf::RepeatedPtrField<v1::VirtualKey> one;
  *one.Add() = response.key();
  return absl::StrCat("key: ", response.secret(),
                      "\nThis is the only time the key is shown: store it now.\n\n", KeyTable(one));
}

std::string RenderAudit(const v1::ListAuditResponse& response, Format format) {
  if (format == Format::kJson) return ProtoJson(response);
  if (response.entries().empty()) return "no audit entries\n";
  std::vector<std::vector<std::string>> rows = {
      {"ID", "TIME", "ACTOR", "ACTION", "TEAM", "TARGET", "BEFORE", "AFTER"}};
  for (const v1::AuditEntry& e : response.entries()) {
    rows.push_back({absl::StrCat(e.id()),
                    absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::FromUnixMillis(e.time_unix_ms()),
                                     absl::UTCTimeZone()),
                    e.actor(), e.action(), e.team(), e.target(),
                    e.before_json().empty() ? "-" : e.before_json(),
                    e.after_json().empty() ? "-" : e.after_json()});
  }
  return RenderAligned(rows, {true, false, false, false, false, false, false, false}, 0);
}

int RunTenancyCommand(const std::vector<std::string>& args, const GetEnv& env, std::ostream& out,
                      std::ostream& err) {
  absl::StatusOr<TenancyCommand> cmd = ParseTenancyCommand(args, env, absl::Now());
  if (!cmd.ok()) return PrintUsageError(err, cmd.status(), TenancyUsage());
  if (cmd->kind == TenancyCommand::Kind::kHelp) {
    out << TenancyUsage();
    return 0;
  }
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
      AdminChannel(cmd->global.ledger_admin, cmd->global);
  if (!channel.ok()) return PrintError(err, channel.status());
  auto stub = v1::TenancyAdmin::NewStub(*channel);
  grpc::ClientContext context;
  PrepareContext(context, cmd->global);
  grpc::Status status;
  std::string text;
  switch (cmd->kind) {
    case TenancyCommand::Kind::kTeamsCreate: {
      v1::Team team;
      status = stub->CreateTeam(&context, cmd->create_team, &team);
      text = cmd->format == Format::kJson ? ProtoJson(team)
                                          : absl::StrCat("team ", team.name(), " created\n");
      break;
    }
    case TenancyCommand::Kind::kTeamsList: {
      v1::ListTeamsResponse r;
      status = stub->ListTeams(&context, v1::ListTeamsRequest(), &r);
      text = RenderTeams(r, cmd->format);
      break;
    }
    case TenancyCommand::Kind::kKeysCreate: {
      v1::CreateKeyResponse r;
      status = stub->CreateKey(&context, cmd->create_key, &r);
      text = RenderCreatedKey(r, cmd->format);
      break;
    }
    case TenancyCommand::Kind::kKeysList: {
      v1::ListKeysResponse r;
      status = stub->ListKeys(&context, cmd->list_keys, &r);
      text = RenderKeys(r, cmd->format);
      break;
    }
    case TenancyCommand::Kind::kKeysRevoke: {
      v1::RevokeKeyResponse r;
      status = stub->RevokeKey(&context, cmd->revoke_key, &r);
      text = cmd->format == Format::kJson
                 ? ProtoJson(r)
                 : absl::StrCat("key ", r.key().id(), " (team ", r.key().team(), ") revoked\n");
      break;
    }
    case TenancyCommand::Kind::kAudit: {
      v1::ListAuditResponse r;
      status = stub->ListAudit(&context, cmd->audit, &r);
      text = RenderAudit(r, cmd->format);
      break;
    }
    case TenancyCommand::Kind::kHelp:
      break;
  }
  if (!status.ok()) return PrintRpcError(err, "ledger", cmd->global.ledger_admin, status);
  out << text;
  return 0;
}

}  // namespace tollgate::tools::ctl
