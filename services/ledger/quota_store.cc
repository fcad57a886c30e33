#include "services/ledger/quota_store.h"

#include <openssl/rand.h>

#include <algorithm>
#include <limits>
#include <map>
#include <numeric>
#include <optional>
#include <pqxx/pqxx>
#include <string_view>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/util/json_util.h"
#include "services/common/quota.h"
#include "services/common/status.h"
#include "services/ledger/tenancy_auth.h"

namespace tollgate::ledger {
namespace {

using Wide = __int128;  // sums of int64 amounts reported by gateways must not overflow

constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();

int64_t Clamp(Wide v) {
  if (v < 0) return 0;
  return v > kInt64Max ? kInt64Max : static_cast<int64_t>(v);
}

// A non-negative integer sum as PostgreSQL prints it (numeric: may exceed int64).
Wide ParseWide(const std::string& digits) {
  Wide v = 0;
  for (char ch : digits) {
    if (ch < '0' || ch > '9') break;
    v = v * 10 + (ch - '0');
  }
  return v;
}

std::string ToJson(const google::protobuf::Message& message) {
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(message, &out, options);
  return out;
}

std::string Str(std::string_view s) { return std::string(s); }

// The columns QuotaFromRow reads, in order.
constexpr const char* kQuotaColumns =
    "id, scope, team, subject, unit, period, limit_units, hard, "
    "array_to_string(alert_percents, ','), name, extract(epoch from updated_at)::bigint, "
    "updated_by";

v1::Quota QuotaFromRow(const pqxx::row& r) {
  v1::Quota q;
  q.set_id(r[0].as<std::string>());
  q.set_scope(ParseScope(r[1].as<std::string>()));
  q.set_team(r[2].as<std::string>());
  q.set_subject(r[3].as<std::string>());
  q.set_unit(ParseUnit(r[4].as<std::string>()));
  q.set_period(ParsePeriod(r[5].as<std::string>()));
  q.set_limit_units(r[6].as<int64_t>());
  q.set_hard(r[7].as<bool>());
  for (absl::string_view p : absl::StrSplit(r[8].as<std::string>(), ',', absl::SkipEmpty())) {
    int32_t v = 0;
    if (absl::SimpleAtoi(p, &v)) q.add_alert_percents(v);
  }
  q.set_name(r[9].as<std::string>());
  q.set_updated_unix_s(r[10].as<int64_t>());
  q.set_updated_by(r[11].as<std::string>());
  CompleteQuota(&q);
  return q;
}

std::string PgIntArray(const google::protobuf::RepeatedField<int32_t>& values) {
  return absl::StrCat("{", absl::StrJoin(values, ","), "}");
}

// "k-<8 hex>-rpm" / "-tpm": the key id and whether it is the rpm one.
bool ParseKeyQuotaId(const std::string& id, std::string* key_id, bool* rpm) {
  if (id.size() != 2 + 8 + 4 || id.compare(0, 2, "k-") != 0) return false;
  const std::string suffix = id.substr(10);
  if (suffix != "-rpm" && suffix != "-tpm") return false;
  *key_id = id.substr(2, 8);
  *rpm = suffix == "-rpm";
  return ParseKeyReference(*key_id).ok();
}

std::string TimestampSql(int64_t unix_s) { return absl::StrCat("to_timestamp(", unix_s, ")"); }

// The spend usage events recorded for `q` in [start, end), in lease units. Budget windows are
// whole UTC days, so the daily rollups (migration 0006; adjusted by repricing) answer exactly.
int64_t RecordedSpend(pqxx::transaction_base& txn, const v1::Quota& q, int64_t start, int64_t end) {
  std::string expr;
  switch (q.unit()) {
    case v1::QUOTA_UNIT_USD:
      expr = "sum(cost_usd) * 1000000000000";
      break;
    case v1::QUOTA_UNIT_TOKENS:
      expr = "sum(input_tokens::numeric + output_tokens)";
      break;
    default:
      expr = "sum(requests)";
      break;
  }
  std::string filter;
  const std::string subject = txn.quote(q.subject());
  const std::string team_or_any =
      q.team().empty() ? "" : absl::StrCat(" AND team = ", txn.quote(q.team()));
  switch (q.scope()) {
    case v1::QUOTA_SCOPE_ORG:
      break;
    case v1::QUOTA_SCOPE_TEAM:
      filter = absl::StrCat(" AND team = ", txn.quote(q.team()));
      break;
    case v1::QUOTA_SCOPE_KEY:
      filter = absl::StrCat(" AND api_key_id = ", subject);
      break;
    case v1::QUOTA_SCOPE_FEATURE:
      filter = absl::StrCat(" AND feature = ", subject, team_or_any);
      break;
    case v1::QUOTA_SCOPE_CUSTOMER:
      filter = absl::StrCat(" AND customer = ", subject, team_or_any);
      break;
    default:
      return 0;
  }
  const pqxx::result r =
      txn.exec(absl::StrCat("SELECT LEAST(coalesce(", expr,
                            ", 0), 9223372036854775807)::bigint "
                            "FROM usage_rollups_daily WHERE day >= ",
                            TimestampSql(start), " AND day < ", TimestampSql(end), filter));
  return r[0][0].as<int64_t>();
}

// The window's row, created (base = recorded spend; 0 for minute windows) when missing.
// Returns its base; `lock` takes the row lock that serialises the window's leases.
int64_t EnsureWindow(pqxx::transaction_base& txn, const v1::Quota& q, const QuotaWindow& w,
                     bool lock) {
  const std::string select =
      absl::StrCat("SELECT base FROM quota_windows WHERE quota_id = $1 AND window_start = ",
                   TimestampSql(w.start_unix_s), lock ? " FOR UPDATE" : "");
  pqxx::result r = txn.exec_params(select, q.id());
  if (!r.empty()) return r[0][0].as<int64_t>();
  const int64_t base = q.period() == v1::QUOTA_PERIOD_MINUTE
                           ? 0
                           : RecordedSpend(txn, q, w.start_unix_s, w.end_unix_s);
  // Another replica may create it concurrently: its base wins, ours is dropped.
  txn.exec_params(absl::StrCat("INSERT INTO quota_windows (quota_id, window_start, window_end, "
                               "base) VALUES ($1, ",
                               TimestampSql(w.start_unix_s), ", ", TimestampSql(w.end_unix_s),
                               ", $2) ON CONFLICT DO NOTHING"),
                  q.id(), base);
  r = txn.exec_params(select, q.id());
  return r[0][0].as<int64_t>();
}

// The quota an id names now: a SetQuota row, or an active key's rpm/tpm (nullopt: none).
std::optional<v1::Quota> ResolveQuota(pqxx::transaction_base& txn, const std::string& id,
                                      int64_t now_unix_s) {
  std::string key_id;
  bool rpm = false;
  if (ParseKeyQuotaId(id, &key_id, &rpm)) {
    const pqxx::result r = txn.exec_params(
        absl::StrCat("SELECT team, rpm, tpm FROM virtual_keys WHERE id = $1 AND revoked_at IS "
                     "NULL AND (expires_at IS NULL OR expires_at > ",
                     TimestampSql(now_unix_s), ")"),
        key_id);
    if (r.empty()) return std::nullopt;
    for (v1::Quota& q : KeyQuotas(key_id, r[0][0].as<std::string>(), r[0][1].as<int64_t>(),
                                  r[0][2].as<int64_t>())) {
      if (q.id() == id) return std::move(q);
    }
    return std::nullopt;
  }
  const pqxx::result r =
      txn.exec_params(absl::StrCat("SELECT ", kQuotaColumns, " FROM quotas WHERE id = $1"), id);
  if (r.empty()) return std::nullopt;
  return QuotaFromRow(r[0]);
}

absl::StatusOr<std::string> NewQuotaId() {
  unsigned char random[4];
  if (RAND_bytes(random, sizeof(random)) != 1) {
    return absl::InternalError("the CSPRNG (RAND_bytes) failed");
  }
  return absl::StrCat(
      "q-", HexEncode(std::string_view(reinterpret_cast<const char*>(random), sizeof(random))));
}


bool SameNaturalKey(const v1::Quota& a, const v1::Quota& b) {
  return a.scope() == b.scope() && a.team() == b.team() && a.subject() == b.subject() &&
         a.unit() == b.unit() && a.period() == b.period();
}

bool IsLimit(const v1::Quota& q) {
  return q.period() == v1::QUOTA_PERIOD_MINUTE &&
         (q.unit() == v1::QUOTA_UNIT_REQUESTS || q.unit() == v1::QUOTA_UNIT_TOKENS);
}

void SortById(std::vector<v1::Quota>& quotas) {
  std::sort(quotas.begin(), quotas.end(),
            [](const v1::Quota& a, const v1::Quota& b) { return a.id() < b.id(); });
}

}  // namespace

void CompleteQuota(v1::Quota* quota) {
  quota->set_limit(FormatQuotaUnits(quota->unit(), quota->limit_units()));
  quota->set_lease_chunk(std::max<int64_t>(1, quota->limit_units() / 20));
}

std::vector<v1::Quota> KeyQuotas(const std::string& key_id, const std::string& team, int64_t rpm,
                                 int64_t tpm) {
  std::vector<v1::Quota> out;
  auto add = [&](const char* kind, v1::QuotaUnit unit, int64_t limit) {
    if (limit <= 0) return;
    v1::Quota q;
    q.set_id(absl::StrCat("k-", key_id, "-", kind));
    q.set_scope(v1::QUOTA_SCOPE_KEY);
    q.set_team(team);
    q.set_subject(key_id);
    q.set_unit(unit);
    q.set_period(v1::QUOTA_PERIOD_MINUTE);
    q.set_hard(true);
    q.set_limit_units(limit);
    CompleteQuota(&q);
    out.push_back(std::move(q));
  };
  add("rpm", v1::QUOTA_UNIT_REQUESTS, rpm);
  add("tpm", v1::QUOTA_UNIT_TOKENS, tpm);
  return out;
}

void AppendSnapshotQuotas(pqxx::transaction_base& txn, v1::KeySetSnapshot* snapshot) {
  std::vector<v1::Quota> quotas;
  for (const pqxx::row& row : txn.exec(absl::StrCat("SELECT ", kQuotaColumns, " FROM quotas"))) {
    quotas.push_back(QuotaFromRow(row));
  }
  for (const v1::ActiveKey& k : snapshot->keys()) {
    for (v1::Quota& q :
         KeyQuotas(k.id(), k.team(), k.restrictions().rpm(), k.restrictions().tpm())) {
      quotas.push_back(std::move(q));
    }
  }
  SortById(quotas);
  for (v1::Quota& q : quotas) *snapshot->add_quotas() = std::move(q);
}

QuotaStore::QuotaStore(Options options) : options_(std::move(options)), db_(options_.database) {}
QuotaStore::~QuotaStore() = default;

absl::StatusOr<v1::Quota> QuotaStore::SetQuota(const v1::Quota& quota, int64_t limit_units,
                                               const std::string& actor,
                                               const QuotaAuthorizer& authorize) {
  v1::Quota out;
  TOLLGATE_RETURN_IF_ERROR(
      db_.WithConnection("set quota", [&](pqxx::connection_base& c) -> absl::Status {
        pqxx::work txn(c);
        if (!quota.team().empty() &&
            txn.exec_params("SELECT 1 FROM teams WHERE name = $1", quota.team()).empty()) {
          return absl::InvalidArgumentError(
              absl::StrCat("team: team '", quota.team(), "' does not exist"));
        }
        if (quota.scope() == v1::QUOTA_SCOPE_KEY) {
          const pqxx::result k =
              txn.exec_params("SELECT team FROM virtual_keys WHERE id = $1", quota.subject());
          if (k.empty()) {
            return absl::InvalidArgumentError(
                absl::StrCat("subject: no key with id '", quota.subject(), "'"));
          }
          if (k[0][0].as<std::string>() != quota.team()) {
            return absl::InvalidArgumentError(
                absl::StrCat("subject: key ", quota.subject(), " belongs to team '",
                             k[0][0].as<std::string>(), "', not '", quota.team(), "'"));
          }
        }
        const std::string scope = Str(ScopeName(quota.scope()));
        const std::string unit = Str(UnitName(quota.unit()));
        const std::string period = Str(PeriodName(quota.period()));
        const pqxx::result before =
            quota.id().empty()
                ? txn.exec_params(
                      absl::StrCat("SELECT ", kQuotaColumns,
                                   " FROM quotas WHERE scope = $1 AND team = $2 AND "
                                   "subject = $3 AND unit = $4 AND period = $5 FOR UPDATE"),
                      scope, quota.team(), quota.subject(), unit, period)
                : txn.exec_params(absl::StrCat("SELECT ", kQuotaColumns,
                                               " FROM quotas WHERE id = $1 FOR UPDATE"),
                                  quota.id());
        if (before.empty() && !quota.id().empty()) {
          return absl::NotFoundError(absl::StrCat("no quota with id '", quota.id(), "'"));
        }
        std::optional<v1::Quota> old;
        if (!before.empty()) {
          old = QuotaFromRow(before[0]);
          TOLLGATE_RETURN_IF_ERROR(authorize(old->team()));
        }
        const std::string percents = PgIntArray(quota.alert_percents());
        pqxx::result after;
        if (old) {
          if (!SameNaturalKey(*old, quota)) {
            const pqxx::result clash = txn.exec_params(
                "SELECT id FROM quotas WHERE scope = $1 AND team = $2 AND subject = $3 AND unit = "
                "$4 "
                "AND period = $5 AND id <> $6",
                scope, quota.team(), quota.subject(), unit, period, old->id());
            if (!clash.empty()) {
              return absl::AlreadyExistsError(absl::StrCat(
                  "quota ", clash[0][0].as<std::string>(),
                  " already has this scope, team, subject, unit and period: change or delete it"));
            }
            // Its windows measured something else.
            txn.exec_params("DELETE FROM quota_windows WHERE quota_id = $1", old->id());
          }
          after = txn.exec_params(
              absl::StrCat("UPDATE quotas SET scope = $2, team = $3, subject = $4, unit = $5, "
                           "period = $6, limit_units = $7, hard = $8, alert_percents = $9::int[], "
                           "name = $10, updated_at = now(), updated_by = $11 WHERE id = $1 "
                           "RETURNING ",
                           kQuotaColumns),
              old->id(), scope, quota.team(), quota.subject(), unit, period, limit_units,
              quota.hard(), percents, quota.name(), actor);
        } else {
          // 32 random bits of id: retry on the (rare) collision.
          for (int attempt = 0; attempt < 5 && after.empty(); ++attempt) {
            absl::StatusOr<std::string> id = NewQuotaId();
            if (!id.ok()) return id.status();
            after = txn.exec_params(
                absl::StrCat("INSERT INTO quotas (id, scope, team, subject, unit, period, "
                             "limit_units, hard, alert_percents, name, updated_by) VALUES ($1, $2, "
                             "$3, $4, $5, $6, $7, $8, $9::int[], $10, $11) "
                             "ON CONFLICT (id) DO NOTHING RETURNING ",
                             kQuotaColumns),
                *id, scope, quota.team(), quota.subject(), unit, period, limit_units, quota.hard(),
                percents, quota.name(), actor);
          }
          if (after.empty()) return absl::InternalError("could not allocate a unique quota id");
        }
        out = QuotaFromRow(after[0]);
        WriteAudit(txn, actor, "quota.set", out.team(), out.id(), old ? ToJson(*old) : "", ToJson(out));
        txn.commit();
        return absl::OkStatus();
      }));
  return out;
}

absl::StatusOr<v1::Quota> QuotaStore::DeleteQuota(const std::string& id, const std::string& actor,
                                                  const QuotaAuthorizer& authorize) {
  std::string key_id;
  bool rpm = false;
  if (ParseKeyQuotaId(id, &key_id, &rpm)) {
    return absl::InvalidArgumentError(
        absl::StrCat("id: ", id, " is key ", key_id,
                     "'s own limit: it goes with the key (revoke the key or create a new one)"));
  }
  v1::Quota out;
  TOLLGATE_RETURN_IF_ERROR(
      db_.WithConnection("delete quota", [&](pqxx::connection_base& c) -> absl::Status {
        pqxx::work txn(c);
        const pqxx::result r = txn.exec_params(
            absl::StrCat("SELECT ", kQuotaColumns, " FROM quotas WHERE id = $1 FOR UPDATE"), id);
        if (r.empty()) return absl::NotFoundError(absl::StrCat("no quota with id '", id, "'"));
        out = QuotaFromRow(r[0]);
        TOLLGATE_RETURN_IF_ERROR(authorize(out.team()));
        txn.exec_params("DELETE FROM quota_windows WHERE quota_id = $1", id);
        txn.exec_params("DELETE FROM quotas WHERE id = $1", id);
        WriteAudit(txn, actor, "quota.delete", out.team(), id, ToJson(out), "");
        txn.commit();
        return absl::OkStatus();
      }));
  return out;
}

absl::StatusOr<std::vector<v1::Quota>> QuotaStore::ListQuotas(const std::string& team,
                                                              bool limits_only,
                                                              bool include_key_limits) {
  std::vector<v1::Quota> out;
  TOLLGATE_RETURN_IF_ERROR(
      db_.WithConnection("list quotas", [&](pqxx::connection_base& c) -> absl::Status {
        pqxx::read_transaction txn(c);
        for (const pqxx::row& row : txn.exec_params(
                 absl::StrCat("SELECT ", kQuotaColumns, " FROM quotas WHERE $1 = '' OR team = $1"),
                 team)) {
          v1::Quota q = QuotaFromRow(row);
          if (!limits_only || IsLimit(q)) out.push_back(std::move(q));
        }
        if (include_key_limits) {
          for (const pqxx::row& row : txn.exec_params(
                   "SELECT id, team, rpm, tpm FROM virtual_keys WHERE revoked_at IS NULL AND "
                   "(expires_at IS NULL OR expires_at > now()) AND (rpm > 0 OR tpm > 0) AND "
                   "($1 = '' OR team = $1)",
                   team)) {
            for (v1::Quota& q : KeyQuotas(row[0].as<std::string>(), row[1].as<std::string>(),
                                          row[2].as<int64_t>(), row[3].as<int64_t>())) {
              out.push_back(std::move(q));
            }
          }
        }
        return absl::OkStatus();
      }));
  SortById(out);
  return out;
}

absl::StatusOr<std::vector<QuotaStatus>> QuotaStore::States(const std::vector<v1::Quota>& quotas,
                                                            absl::Time now) {
  const int64_t now_s = absl::ToUnixSeconds(now);
  const int64_t now_ms = absl::ToUnixMillis(now);
  std::vector<QuotaStatus> out;
  TOLLGATE_RETURN_IF_ERROR(
      db_.WithConnection("quota states", [&](pqxx::connection_base& c) -> absl::Status {
        out.clear();
        pqxx::read_transaction txn(c);
        for (const v1::Quota& q : quotas) {
          const QuotaWindow w = WindowAt(q.period(), now_s);
          QuotaStatus status;
          v1::QuotaState& s = status.state;
          *s.mutable_quota() = q;
          s.set_window_start_unix_s(w.start_unix_s);
          s.set_window_end_unix_s(w.end_unix_s);
          int64_t spent = 0;
          if (q.period() != v1::QUOTA_PERIOD_MINUTE) {
            spent = RecordedSpend(txn, q, w.start_unix_s, w.end_unix_s);
            s.set_spent(FormatQuotaUnits(q.unit(), spent));
          }
          Wide committed = 0;
          const pqxx::result win = txn.exec_params(
              absl::StrCat("SELECT base, array_to_string(alerts_fired, ',') FROM quota_windows "
                           "WHERE quota_id = $1 AND window_start = ",
                           TimestampSql(w.start_unix_s)),
              q.id());
          if (!win.empty()) {
            committed = win[0][0].as<int64_t>();
            for (absl::string_view p :
                 absl::StrSplit(win[0][1].as<std::string>(), ',', absl::SkipEmpty())) {
              int32_t v = 0;
              if (absl::SimpleAtoi(p, &v)) s.add_alerts_fired(v);
            }
            const pqxx::result leases = txn.exec_params(
                absl::StrCat("SELECT coalesce(sum(greatest(granted, used)), 0)::text, "
                             "count(*) FILTER (WHERE NOT released AND expires_at > "
                             "to_timestamp($2::bigint / 1000.0)) FROM quota_leases "
                             "WHERE quota_id = $1 AND window_start = ",
                             TimestampSql(w.start_unix_s)),
                q.id(), now_ms);
            committed += ParseWide(leases[0][0].as<std::string>());
            s.set_active_leases(leases[0][1].as<int32_t>());
          }
          s.set_committed(FormatQuotaUnits(q.unit(), Clamp(committed)));
          const Wide used = std::max<Wide>(spent, committed);
          s.set_remaining(FormatQuotaUnits(q.unit(), Clamp(q.limit_units() - used)));
          const Wide percent = q.limit_units() > 0 ? used * 100 / q.limit_units() : 0;
          s.set_used_percent(
              static_cast<int32_t>(std::min<Wide>(percent, std::numeric_limits<int32_t>::max())));
          status.spent = spent;
          status.committed = Clamp(committed);
          status.used = Clamp(used);
          out.push_back(std::move(status));
        }
        return absl::OkStatus();
      }));
  return out;
}

absl::StatusOr<std::vector<int32_t>> QuotaStore::FireAlerts(const v1::QuotaState& state) {
  const v1::Quota& q = state.quota();
  std::vector<int32_t> due;
  for (int32_t p : q.alert_percents()) {
    if (p <= state.used_percent() &&
        std::find(state.alerts_fired().begin(), state.alerts_fired().end(), p) ==
            state.alerts_fired().end()) {
      due.push_back(p);
    }
  }
  std::vector<int32_t> fired;
  if (due.empty()) return fired;
  std::sort(due.begin(), due.end());
  TOLLGATE_RETURN_IF_ERROR(
      db_.WithConnection("fire alerts", [&](pqxx::connection_base& c) -> absl::Status {
        fired.clear();
        pqxx::work txn(c);
        const QuotaWindow w{state.window_start_unix_s(), state.window_end_unix_s()};
        EnsureWindow(txn, q, w, /*lock=*/false);
        for (int32_t p : due) {
          // Exactly one replica's UPDATE matches: the others see the percent already fired.
          const pqxx::result r = txn.exec_params(
              absl::StrCat("UPDATE quota_windows SET alerts_fired = array_append(alerts_fired, "
                           "$2::int) WHERE quota_id = $1 AND window_start = ",
                           TimestampSql(w.start_unix_s),
                           " AND NOT ($2::int = ANY (alerts_fired)) RETURNING 1"),
              q.id(), p);
          if (!r.empty()) fired.push_back(p);
        }
        txn.commit();
        return absl::OkStatus();
      }));
  return fired;
}

absl::StatusOr<v1::LeaseResponse> QuotaStore::Lease(const v1::LeaseRequest& request, absl::Time now,
                                                    std::vector<LeaseOutcome>* outcomes) {
  const int64_t now_s = absl::ToUnixSeconds(now);
  const int64_t now_ms = absl::ToUnixMillis(now);
  const int n = request.updates_size();
  // Window rows are locked in (quota, window) order so that concurrent requests never deadlock.
  std::vector<int> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
    const v1::LeaseUpdate& x = request.updates(a);
    const v1::LeaseUpdate& y = request.updates(b);
    if (x.quota_id() != y.quota_id()) return x.quota_id() < y.quota_id();
    return x.window_start_unix_s() < y.window_start_unix_s();
  });
  v1::LeaseResponse response;
  std::vector<LeaseOutcome> decided;
  TOLLGATE_RETURN_IF_ERROR(
      db_.WithConnection("lease", [&](pqxx::connection_base& c) -> absl::Status {
        response.Clear();
        for (int i = 0; i < n; ++i) response.add_grants();
        decided.assign(n, LeaseOutcome{});
        pqxx::work txn(c);
        std::map<std::string, std::optional<v1::Quota>> quotas;
        for (int index : order) {
          const v1::LeaseUpdate& u = request.updates(index);
          v1::LeaseGrant& g = *response.mutable_grants(index);
          g.set_quota_id(u.quota_id());
          g.set_window_start_unix_s(u.window_start_unix_s());
          if (u.used() < 0 || u.need() < 0 || u.want() < 0) {
            g.set_error("used, need and want must not be negative");
            continue;
          }
          auto [it, inserted] = quotas.try_emplace(u.quota_id());
          if (inserted) it->second = ResolveQuota(txn, u.quota_id(), now_s);
          if (!it->second) {
            g.set_error("unknown quota");
            g.set_exhausted(true);
            continue;
          }
          const v1::Quota& q = *it->second;
          decided[index].unit = q.unit();
          g.set_limit_units(q.limit_units());
          const QuotaWindow current = WindowAt(q.period(), now_s);
          const QuotaWindow previous = WindowAt(q.period(), current.start_unix_s - 1);
          bool report_only = false;
          QuotaWindow w = current;
          if (u.window_start_unix_s() != current.start_unix_s) {
            if (u.window_start_unix_s() == previous.start_unix_s &&
                now_ms - current.start_unix_s * 1000 < 2000) {
              report_only = true;
              w = previous;
            } else {
              g.set_error(absl::StrCat("window ", u.window_start_unix_s(),
                                       " is not the quota's current window (starts ",
                                       current.start_unix_s, ")"));
              g.set_window_start_unix_s(current.start_unix_s);
              g.set_window_end_unix_s(current.end_unix_s);
              continue;
            }
          }
          g.set_window_end_unix_s(w.end_unix_s);
          const std::string window_sql = TimestampSql(w.start_unix_s);
          int64_t base = 0;
          if (report_only) {
            const pqxx::result r = txn.exec_params(
                absl::StrCat("SELECT base FROM quota_windows WHERE quota_id = $1 AND "
                             "window_start = ",
                             window_sql, " FOR UPDATE"),
                q.id());
            if (r.empty()) continue;  // nothing was leased in it: nothing to record
            base = r[0][0].as<int64_t>();
          } else {
            base = EnsureWindow(txn, q, w, /*lock=*/true);
          }
          const pqxx::result mine = txn.exec_params(
              absl::StrCat(
                  "SELECT granted, used, released FROM quota_leases WHERE quota_id = $1 AND "
                  "window_start = ",
                  window_sql, " AND gateway_id = $2"),
              q.id(), request.gateway_id());
          if (report_only && mine.empty()) continue;
          int64_t granted = mine.empty() ? 0 : mine[0][0].as<int64_t>();
          const int64_t used = std::max(mine.empty() ? 0 : mine[0][1].as<int64_t>(), u.used());
          const pqxx::result others = txn.exec_params(
              absl::StrCat(
                  "SELECT coalesce(sum(greatest(granted, used)), 0)::text FROM quota_leases "
                  "WHERE quota_id = $1 AND window_start = ",
                  window_sql, " AND gateway_id <> $2"),
              q.id(), request.gateway_id());
          const Wide committed_others = base + ParseWide(others[0][0].as<std::string>());
          // The most this gateway may hold (as max(granted, used)) without exceeding the limit.
          const Wide cap = Wide(q.limit_units()) - committed_others;
          bool released = false;
          int64_t expires_ms = std::min<int64_t>(
              now_ms + absl::ToInt64Milliseconds(options_.lease_term), w.end_unix_s * 1000 + 5000);
          // A released lease stays released (and counts only what it used) until the gateway asks
          // for more; late reports of settled requests only raise `used`.
          const bool was_released = !mine.empty() && mine[0][2].as<bool>();
          if (u.release() || (was_released && u.need() <= granted)) {
            granted = used;
            released = true;
            expires_ms = now_ms;
          } else if (!report_only && u.need() > granted) {
            if (std::max(u.need(), used) > cap) {
              g.set_exhausted(true);
              decided[index].exhausted = true;
            } else {
              const int64_t total = Clamp(std::min<Wide>(std::max(u.want(), u.need()), cap));
              decided[index].extra = total - granted;
              granted = total;
            }
          }
          txn.exec_params(
              absl::StrCat("INSERT INTO quota_leases (quota_id, window_start, gateway_id, granted, "
                           "used, expires_at, released) VALUES ($1, ",
                           window_sql,
                           ", $2, $3, $4, to_timestamp($5::bigint / 1000.0), $6) "
                           "ON CONFLICT (quota_id, window_start, gateway_id) DO UPDATE SET "
                           "granted = EXCLUDED.granted, used = EXCLUDED.used, "
                           "expires_at = EXCLUDED.expires_at, released = EXCLUDED.released"),
              q.id(), request.gateway_id(), granted, used, expires_ms, released);
          g.set_granted(granted);
          g.set_remaining(Clamp(cap - std::max(granted, used)));
          g.set_expires_unix_ms(expires_ms);
        }
        txn.commit();
        return absl::OkStatus();
      }));
  if (outcomes != nullptr) *outcomes = std::move(decided);
  return response;
}

absl::StatusOr<int64_t> QuotaStore::DeleteWindowsBefore(absl::Time before) {
  int64_t deleted = 0;
  TOLLGATE_RETURN_IF_ERROR(
      db_.WithConnection("delete old quota windows", [&](pqxx::connection_base& c) -> absl::Status {
        pqxx::work txn(c);
        const pqxx::result r =
            txn.exec(absl::StrCat("DELETE FROM quota_windows WHERE window_end < ",
                                  TimestampSql(absl::ToUnixSeconds(before))));
        deleted = r.affected_rows();
        txn.commit();
        return absl::OkStatus();
      }));
  return deleted;
}

}  // namespace tollgate::ledger
