#include "services/ledger/tenancy_store.h"

#include <exception>
#include <pqxx/pqxx>
#include <string_view>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "boost/json.hpp"
#include "google/protobuf/util/json_util.h"
#include "services/common/status.h"
#include "services/ledger/quota_store.h"
#include "services/ledger/tenancy_auth.h"

namespace tollgate::ledger {
namespace {

namespace json = boost::json;

std::string FirstLine(const char* what) {
  std::string_view text(what);
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.remove_suffix(1);
  const size_t nl = text.find('\n');
  return std::string(nl == std::string_view::npos ? text : text.substr(0, nl));
}

// Same conventions as store.cc's mapping (store.h).
absl::StatusCode CodeForSqlState(const std::string& state, bool& connection_bad) {
  auto is = [&](absl::string_view prefix) { return absl::StartsWith(state, prefix); };
  if (is("08") || is("57P") || state == "25006") {
    connection_bad = true;
    return absl::StatusCode::kUnavailable;
  }
  if (is("53")) return absl::StatusCode::kUnavailable;
  if (state == "57014") return absl::StatusCode::kDeadlineExceeded;
  if (is("40")) return absl::StatusCode::kAborted;
  if (is("22") || is("23")) return absl::StatusCode::kInvalidArgument;
  if (state == "42P01" || state == "42703") return absl::StatusCode::kFailedPrecondition;
  return absl::StatusCode::kInternal;
}

std::string JsonArray(const google::protobuf::RepeatedPtrField<std::string>& values) {
  json::array a;
  for (const std::string& v : values) a.emplace_back(json::string(v));
  return json::serialize(a);
}

void ParseJsonArray(const std::string& text, google::protobuf::RepeatedPtrField<std::string>* out) {
  json::error_code ec;
  const json::value v = json::parse(text, ec);
  if (ec || !v.is_array()) return;
  for (const json::value& item : v.as_array()) {
    if (item.is_string()) out->Add(std::string(item.as_string()));
  }
}

std::string ToJson(const google::protobuf::Message& message) {
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(message, &out, options);
  return out;
}

// The columns KeyFromRow reads, in order.
constexpr const char* kKeyColumns =
    "id, team, name, extract(epoch from created_at)::bigint, created_by, "
    "coalesce(extract(epoch from expires_at)::bigint, 0), "
    "coalesce(extract(epoch from revoked_at)::bigint, 0), coalesce(revoked_by, ''), "
    "models::text, feature, regions::text, rpm, tpm, encode(key_sha256, 'hex')";

v1::VirtualKey KeyFromRow(const pqxx::row& r, std::string* sha256_hex = nullptr) {
  v1::VirtualKey k;
  k.set_id(r[0].as<std::string>());
  k.set_prefix(absl::StrCat("tg-", k.id()));
  k.set_team(r[1].as<std::string>());
  k.set_name(r[2].as<std::string>());
  k.set_created_unix_s(r[3].as<int64_t>());
  k.set_created_by(r[4].as<std::string>());
  k.set_expires_unix_s(r[5].as<int64_t>());
  k.set_revoked_unix_s(r[6].as<int64_t>());
  k.set_revoked_by(r[7].as<std::string>());
  v1::KeyRestrictions* rs = k.mutable_restrictions();
  ParseJsonArray(r[8].as<std::string>(), rs->mutable_models());
  rs->set_feature(r[9].as<std::string>());
  ParseJsonArray(r[10].as<std::string>(), rs->mutable_regions());
  rs->set_rpm(r[11].as<int64_t>());
  rs->set_tpm(r[12].as<int64_t>());
  if (sha256_hex != nullptr) *sha256_hex = r[13].as<std::string>();
  return k;
}

}  // namespace

void WriteAudit(pqxx::transaction_base& txn, const std::string& actor, const std::string& action,
                const std::string& team, const std::string& target, const std::string& before,
                const std::string& after) {
  txn.exec_params(
      "INSERT INTO control_plane_audit (actor, action, team, target, before, after) "
      "VALUES ($1, $2, $3, $4, NULLIF($5, '')::jsonb, NULLIF($6, '')::jsonb)",
      actor, action, team, target, before, after);
}

namespace {

}  // namespace

struct TenancyStore::Impl {
  explicit Impl(Options o) : options(std::move(o)) {}

  absl::Status EnsureConnected() {
    if (conn != nullptr && conn->is_open()) return absl::OkStatus();
    conn.reset();
    try {
      std::string url = options.database_url;
      if (!absl::StrContains(url, "connect_timeout")) {
        const int64_t s = std::max<int64_t>(1, absl::ToInt64Seconds(options.connect_timeout));
        if (absl::StartsWith(url, "postgresql://") || absl::StartsWith(url, "postgres://")) {
          absl::StrAppend(&url, absl::StrContains(url, "?") ? "&" : "?", "connect_timeout=", s);
        } else {
          absl::StrAppend(&url, url.empty() ? "" : " ", "connect_timeout=", s);
        }
      }
      auto c = std::make_unique<pqxx::connection>(url);
      c->set_variable(
          "statement_timeout",
          absl::StrCat(std::max<int64_t>(0, absl::ToInt64Milliseconds(options.statement_timeout))));
      c->set_variable("TimeZone", "'UTC'");
      c->set_variable("application_name", "'tollgate-ledger-tenancy'");
      conn = std::move(c);
      return absl::OkStatus();
    } catch (const std::exception& e) {
      return absl::UnavailableError(
          absl::StrCat("cannot connect to PostgreSQL: ", FirstLine(e.what())));
    }
  }

  template <typename T, typename F>
  absl::StatusOr<T> Run(std::string_view op, F&& f) {
    TOLLGATE_RETURN_IF_ERROR(EnsureConnected());
    absl::Status status;
    try {
      return f(*conn);
    } catch (const pqxx::in_doubt_error& e) {
      conn.reset();
      status = absl::UnavailableError(
          absl::StrCat(std::string(op),
                       ": connection lost during commit (outcome unknown): ", FirstLine(e.what())));
    } catch (const pqxx::broken_connection& e) {
      conn.reset();
      status = absl::UnavailableError(
          absl::StrCat(std::string(op), ": connection to PostgreSQL lost: ", FirstLine(e.what())));
    } catch (const pqxx::sql_error& e) {
      bool bad = false;
      const absl::StatusCode code = CodeForSqlState(e.sqlstate(), bad);
      if (bad) conn.reset();
      status = absl::Status(code, absl::StrCat(std::string(op), ": ", FirstLine(e.what()),
                                               " (SQLSTATE ", e.sqlstate(), ")"));
    } catch (const std::exception& e) {
      status = absl::InternalError(absl::StrCat(std::string(op), ": ", FirstLine(e.what())));
    }
    if (conn != nullptr && !conn->is_open()) conn.reset();
    return status;
  }

  Options options;
  std::unique_ptr<pqxx::connection> conn;
};

TenancyStore::TenancyStore(Options options) : impl_(std::make_unique<Impl>(std::move(options))) {}
TenancyStore::~TenancyStore() = default;

absl::StatusOr<v1::Team> TenancyStore::CreateTeam(const std::string& name,
                                                  const std::string& actor) {
  return impl_->Run<v1::Team>("create team", [&](pqxx::connection& c) -> absl::StatusOr<v1::Team> {
    pqxx::work txn(c);
    const pqxx::result r = txn.exec_params(
        "INSERT INTO teams (name, created_by) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING "
        "RETURNING extract(epoch from created_at)::bigint",
        name, actor);
    if (r.empty()) return absl::AlreadyExistsError(absl::StrCat("team '", name, "' exists"));
    v1::Team team;
    team.set_name(name);
    team.set_created_unix_s(r[0][0].as<int64_t>());
    team.set_created_by(actor);
    WriteAudit(txn, actor, "team.create", name, name, "", ToJson(team));
    txn.commit();
    return team;
  });
}

absl::StatusOr<v1::ListTeamsResponse> TenancyStore::ListTeams(const std::string& team) {
  return impl_->Run<v1::ListTeamsResponse>(
      "list teams", [&](pqxx::connection& c) -> absl::StatusOr<v1::ListTeamsResponse> {
        pqxx::read_transaction txn(c);
        const pqxx::result r = txn.exec_params(
            "SELECT name, extract(epoch from created_at)::bigint, created_by FROM teams "
            "WHERE $1 = '' OR name = $1 ORDER BY name",
            team);
        v1::ListTeamsResponse out;
        for (const pqxx::row& row : r) {
          v1::Team* t = out.add_teams();
          t->set_name(row[0].as<std::string>());
          t->set_created_unix_s(row[1].as<int64_t>());
          t->set_created_by(row[2].as<std::string>());
        }
        return out;
      });
}

absl::StatusOr<v1::CreateKeyResponse> TenancyStore::CreateKey(const v1::CreateKeyRequest& request,
                                                              const std::string& actor) {
  return impl_->Run<v1::CreateKeyResponse>(
      "create key", [&](pqxx::connection& c) -> absl::StatusOr<v1::CreateKeyResponse> {
        pqxx::work txn(c);
        if (txn.exec_params("SELECT 1 FROM teams WHERE name = $1", request.team()).empty()) {
          return absl::NotFoundError(
              absl::StrCat("team '", request.team(),
                           "' does not exist (create it with: tollgatectl teams "
                           "create ",
                           request.team(), ")"));
        }
        const v1::KeyRestrictions& rs = request.restrictions();
        // 32 random bits of id: retry on the (rare) collision instead of failing the call.
        for (int attempt = 0; attempt < 5; ++attempt) {
          absl::StatusOr<GeneratedKey> key = GenerateKey();
          if (!key.ok()) return key.status();
          const pqxx::result r = txn.exec_params(
              absl::StrCat(
                  "INSERT INTO virtual_keys (id, team, name, key_sha256, created_by, expires_at, "
                  "models, feature, regions, rpm, tpm) VALUES ($1, $2, $3, decode($4, 'hex'), $5, "
                  "CASE WHEN $6::bigint = 0 THEN NULL ELSE to_timestamp($6::bigint) END, "
                  "$7::jsonb, $8, $9::jsonb, $10, $11) ON CONFLICT DO NOTHING RETURNING ",
                  kKeyColumns),
              key->id, request.team(), request.name(), HexEncode(key->sha256), actor,
              request.expires_unix_s(), JsonArray(rs.models()), rs.feature(),
              JsonArray(rs.regions()), rs.rpm(), rs.tpm());
          if (r.empty()) continue;
          v1::CreateKeyResponse out;
          *out.mutable_key() = KeyFromRow(r[0]);
          out.set_secret(key->secret);
          WriteAudit(txn, actor, "key.create", request.team(), key->id, "", ToJson(out.key()));
          txn.commit();
          return out;
        }
        return absl::InternalError("could not allocate a unique key id");
      });
}

absl::StatusOr<v1::ListKeysResponse> TenancyStore::ListKeys(const std::string& team,
                                                            bool include_revoked) {
  return impl_->Run<v1::ListKeysResponse>(
      "list keys", [&](pqxx::connection& c) -> absl::StatusOr<v1::ListKeysResponse> {
        pqxx::read_transaction txn(c);
        const pqxx::result r =
            txn.exec_params(absl::StrCat("SELECT ", kKeyColumns,
                                         " FROM virtual_keys WHERE ($1 = '' OR team = $1) AND "
                                         "($2 OR revoked_at IS NULL) ORDER BY created_at DESC, id"),
                            team, include_revoked);
        v1::ListKeysResponse out;
        for (const pqxx::row& row : r) *out.add_keys() = KeyFromRow(row);
        return out;
      });
}

absl::StatusOr<v1::VirtualKey> TenancyStore::RevokeKey(
    const std::string& id, const std::string& actor,
    const std::function<absl::Status(const std::string& team)>& authorize) {
  return impl_->Run<v1::VirtualKey>(
      "revoke key", [&](pqxx::connection& c) -> absl::StatusOr<v1::VirtualKey> {
        pqxx::work txn(c);
        const pqxx::result before = txn.exec_params(
            absl::StrCat("SELECT ", kKeyColumns, " FROM virtual_keys WHERE id = $1 FOR UPDATE"),
            id);
        if (before.empty()) return absl::NotFoundError(absl::StrCat("no key with id '", id, "'"));
        const v1::VirtualKey old = KeyFromRow(before[0]);
        TOLLGATE_RETURN_IF_ERROR(authorize(old.team()));
        if (old.revoked_unix_s() != 0) {
          return absl::FailedPreconditionError(
              absl::StrCat("key ", id, " is already revoked (by ", old.revoked_by(), ")"));
        }
        const pqxx::result after = txn.exec_params(
            absl::StrCat("UPDATE virtual_keys SET revoked_at = now(), revoked_by = $2 "
                         "WHERE id = $1 RETURNING ",
                         kKeyColumns),
            id, actor);
        v1::VirtualKey key = KeyFromRow(after[0]);
        WriteAudit(txn, actor, "key.revoke", key.team(), id, ToJson(old), ToJson(key));
        txn.commit();
        return key;
      });
}

absl::StatusOr<v1::ListAuditResponse> TenancyStore::ListAudit(const std::string& team, int limit) {
  return impl_->Run<v1::ListAuditResponse>(
      "list audit", [&](pqxx::connection& c) -> absl::StatusOr<v1::ListAuditResponse> {
        pqxx::read_transaction txn(c);
        const pqxx::result r = txn.exec_params(
            "SELECT id, (extract(epoch from at) * 1000)::bigint, actor, action, team, target, "
            "coalesce(before::text, ''), coalesce(after::text, '') FROM control_plane_audit "
            "WHERE $1 = '' OR team = $1 ORDER BY id DESC LIMIT $2",
            team, limit);
        v1::ListAuditResponse out;
        for (const pqxx::row& row : r) {
          v1::AuditEntry* e = out.add_entries();
          e->set_id(row[0].as<int64_t>());
          e->set_time_unix_ms(row[1].as<int64_t>());
          e->set_actor(row[2].as<std::string>());
          e->set_action(row[3].as<std::string>());
          e->set_team(row[4].as<std::string>());
          e->set_target(row[5].as<std::string>());
          e->set_before_json(row[6].as<std::string>());
          e->set_after_json(row[7].as<std::string>());
        }
        return out;
      });
}

absl::StatusOr<v1::KeySetSnapshot> TenancyStore::ActiveKeys() {
  return impl_->Run<v1::KeySetSnapshot>(
      "active keys", [&](pqxx::connection& c) -> absl::StatusOr<v1::KeySetSnapshot> {
        pqxx::read_transaction txn(c);
        const pqxx::result r =
            txn.exec(absl::StrCat("SELECT ", kKeyColumns,
                                  " FROM virtual_keys WHERE revoked_at IS NULL AND "
                                  "(expires_at IS NULL OR expires_at > now()) ORDER BY id"));
        v1::KeySetSnapshot out;
        for (const pqxx::row& row : r) {
          std::string hex;
          v1::VirtualKey k = KeyFromRow(row, &hex);
          v1::ActiveKey* a = out.add_keys();
          a->set_id(k.id());
          a->set_team(k.team());
          a->set_prefix(k.prefix());
          a->set_expires_unix_s(k.expires_unix_s());
          *a->mutable_restrictions() = k.restrictions();
          std::string raw(hex.size() / 2, '\0');
          for (size_t i = 0; i < raw.size(); ++i) {
            raw[i] = static_cast<char>(std::stoi(hex.substr(2 * i, 2), nullptr, 16));
          }
          a->set_key_sha256(std::move(raw));
        }
        AppendSnapshotQuotas(txn, &out);
        return out;
      });
}

absl::Status TenancyStore::WithConnection(
    std::string_view op, const std::function<absl::Status(pqxx::connection_base&)>& f) {
  return impl_
      ->Run<bool>(op,
                  [&](pqxx::connection& c) -> absl::StatusOr<bool> {
                    TOLLGATE_RETURN_IF_ERROR(f(c));
                    return true;
                  })
      .status();
}

}  // namespace tollgate::ledger
