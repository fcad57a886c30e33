#include "services/ledger/quota_service.h"

#include <algorithm>
#include <deque>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "services/common/grpc_status.h"
#include "services/common/logging.h"
#include "services/common/money.h"
#include "services/common/quota.h"

namespace tollgate::ledger {
namespace {

absl::Status Invalid(std::string message) { return absl::InvalidArgumentError(std::move(message)); }

absl::Status CheckText(const std::string& field, const std::string& value, size_t max) {
  if (value.size() > max) return Invalid(absl::StrCat(field, ": longer than ", max, " bytes"));
  for (unsigned char c : value) {
    if (c < 0x20 || c == 0x7f) {
      return Invalid(absl::StrCat(field, ": must not contain control characters"));
    }
  }
  return absl::OkStatus();
}

bool IsLowerHex(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

grpc::ServerUnaryReactor* Fail(grpc::CallbackServerContext* context, const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

// A quota amount as a gauge value in its unit.
double GaugeValue(v1::QuotaUnit unit, int64_t units) {
  return unit == v1::QUOTA_UNIT_USD ? static_cast<double>(units) / static_cast<double>(kPicoPerUsd)
                                    : static_cast<double>(units);
}

}  // namespace

absl::StatusOr<int64_t> ValidateQuota(v1::Quota* q) {
  if (!q->id().empty()) {
    if (q->id().compare(0, 2, "k-") == 0) {
      return Invalid(
          "id: key limits (k-<key id>-rpm/-tpm) are the key's own rpm/tpm: set them when creating "
          "the key, or set a key-scoped quota without an id");
    }
    if (q->id().size() != 10 || q->id().compare(0, 2, "q-") != 0 ||
        !IsLowerHex(std::string_view(q->id()).substr(2))) {
      return Invalid(
          absl::StrCat("id: '", q->id().substr(0, 40), "' is not a quota id (q-<8 hex digits>)"));
    }
  }
  if (q->scope() == v1::QUOTA_SCOPE_UNSPECIFIED || !v1::QuotaScope_IsValid(q->scope())) {
    return Invalid("scope: required (org, team, key, feature or customer)");
  }
  if (q->unit() == v1::QUOTA_UNIT_UNSPECIFIED || !v1::QuotaUnit_IsValid(q->unit())) {
    return Invalid("unit: required (usd, tokens or requests)");
  }
  if (q->period() == v1::QUOTA_PERIOD_UNSPECIFIED || !v1::QuotaPeriod_IsValid(q->period())) {
    return Invalid("period: required (minute, day, week or month)");
  }
  const v1::QuotaScope scope = q->scope();
  if (scope == v1::QUOTA_SCOPE_ORG && !q->team().empty()) {
    return Invalid("team: must be empty for an org-wide quota");
  }
  if ((scope == v1::QUOTA_SCOPE_TEAM || scope == v1::QUOTA_SCOPE_KEY) && q->team().empty()) {
    return Invalid(absl::StrCat("team: required for a ", std::string(ScopeName(scope)), " quota"));
  }
  if (!q->team().empty()) {
    if (absl::Status st = ValidateTeamName(q->team()); !st.ok()) return st;
  }
  switch (scope) {
    case v1::QUOTA_SCOPE_ORG:
    case v1::QUOTA_SCOPE_TEAM:
      if (!q->subject().empty()) {
        return Invalid(
            absl::StrCat("subject: must be empty for a ", std::string(ScopeName(scope)), " quota"));
      }
      break;
    case v1::QUOTA_SCOPE_KEY: {
      if (q->subject().empty()) return Invalid("subject: required (the key id) for a key quota");
      absl::StatusOr<std::string> id = ParseKeyReference(q->subject());
      if (!id.ok()) {
        return Invalid(absl::StrCat("subject: ", std::string(id.status().message())));
      }
      q->set_subject(*id);
      break;
    }
    default:
      if (q->subject().empty()) {
        return Invalid(absl::StrCat("subject: required (the ", std::string(ScopeName(scope)),
                                    ") for a ", std::string(ScopeName(scope)), " quota"));
      }
      if (absl::Status st = CheckText("subject", q->subject(), 128); !st.ok()) return st;
      break;
  }
  absl::StatusOr<int64_t> units = ParseQuotaLimit(q->unit(), q->limit());
  if (!units.ok()) return units.status();
  if (q->alert_percents_size() > 20) return Invalid("alert_percents: at most 20 thresholds");
  std::vector<int32_t> percents(q->alert_percents().begin(), q->alert_percents().end());
  for (int32_t p : percents) {
    if (p < 1 || p > 1000) {
      return Invalid(absl::StrCat("alert_percents: ", p, " is not between 1 and 1000"));
    }
  }
  std::sort(percents.begin(), percents.end());
  percents.erase(std::unique(percents.begin(), percents.end()), percents.end());
  q->clear_alert_percents();
  for (int32_t p : percents) q->add_alert_percents(p);
  if (absl::Status st = CheckText("name", q->name(), 128); !st.ok()) return st;
  const bool limit_unit =
      q->unit() == v1::QUOTA_UNIT_REQUESTS || q->unit() == v1::QUOTA_UNIT_TOKENS;
  if (q->period() == v1::QUOTA_PERIOD_MINUTE) {
    if (!limit_unit) {
      return Invalid("period: minute windows are for rate limits (unit requests or tokens)");
    }
    if (!q->hard()) {
      return Invalid("hard: rate limits (requests or tokens per minute) are always hard");
    }
  }
  q->set_limit_units(*units);
  CompleteQuota(q);
  return *units;
}

// One thread with its own store and a bounded queue of calls; optionally a periodic task.
class QuotaService::Worker {
 public:
  Worker(std::unique_ptr<QuotaStore> store, size_t max_pending, std::chrono::milliseconds interval,
         std::function<void(QuotaStore&)> periodic)
      : store_(std::move(store)),
        max_pending_(max_pending),
        interval_(absl::FromChrono(interval)),
        periodic_(std::move(periodic)) {}

  ~Worker() { Stop(); }

  void Start() {
    thread_ = std::thread([this] { Loop(); });
  }

  void Stop() {
    {
      absl::MutexLock lock(&mu_);
      stopped_ = true;
    }
    if (thread_.joinable()) thread_.join();
    std::deque<Task> left;
    {
      absl::MutexLock lock(&mu_);
      left.swap(tasks_);
    }
    // Every reactor must be finished for the server to shut down.
    for (Task& task : left) {
      task.reactor->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "ledger shutting down"));
    }
  }

  // Runs `work` on the thread, then finishes `reactor` with its status.
  void Submit(grpc::ServerUnaryReactor* reactor, std::function<absl::Status(QuotaStore&)> work) {
    absl::Status refused;
    {
      absl::MutexLock lock(&mu_);
      if (stopped_) {
        refused = absl::UnavailableError("ledger is shutting down");
      } else if (tasks_.size() >= max_pending_) {
        refused = absl::ResourceExhaustedError("too many quota calls waiting");
      } else {
        tasks_.push_back({reactor, std::move(work)});
      }
    }
    if (!refused.ok()) reactor->Finish(ToGrpcStatus(refused));
  }

 private:
  struct Task {
    grpc::ServerUnaryReactor* reactor = nullptr;
    std::function<absl::Status(QuotaStore&)> work;
  };

  bool Wake() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopped_ || !tasks_.empty(); }

  void Loop() {
    absl::Time next = periodic_ ? absl::Now() : absl::InfiniteFuture();
    for (;;) {
      Task task;
      {
        absl::MutexLock lock(&mu_);
        mu_.AwaitWithDeadline(absl::Condition(this, &Worker::Wake), next);
        if (stopped_) return;
        if (!tasks_.empty()) {
          task = std::move(tasks_.front());
          tasks_.pop_front();
        }
      }
      if (task.work) {
        const absl::Status status = task.work(*store_);
        const absl::StatusCode code = status.code();
        if (!status.ok() && code != absl::StatusCode::kInvalidArgument &&
            code != absl::StatusCode::kPermissionDenied && code != absl::StatusCode::kNotFound &&
            code != absl::StatusCode::kAlreadyExists) {
          LogWarn("quota call failed", {{"error", std::string(status.message())}});
        }
        task.reactor->Finish(ToGrpcStatus(status));
      }
      if (periodic_ && absl::Now() >= next) {
        periodic_(*store_);
        next = absl::Now() + interval_;
      }
    }
  }

  const std::unique_ptr<QuotaStore> store_;  // worker thread only
  const size_t max_pending_;
  const absl::Duration interval_;
  const std::function<void(QuotaStore&)> periodic_;
  absl::Mutex mu_;
  std::deque<Task> tasks_ ABSL_GUARDED_BY(mu_);
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

QuotaService::QuotaService(std::unique_ptr<QuotaStore> control_store,
                           std::unique_ptr<QuotaStore> lease_store, const AdminTokens* tokens,
                           QuotaMetrics* metrics, Options options)
    : tokens_(tokens), metrics_(metrics), options_(std::move(options)) {
  control_ = std::make_unique<Worker>(std::move(control_store), options_.max_pending,
                                      options_.state_interval,
                                      [this](QuotaStore& store) { StatePass(store); });
  lease_ = std::make_unique<Worker>(std::move(lease_store), options_.max_pending,
                                    options_.state_interval, nullptr);
}

QuotaService::~QuotaService() { Stop(); }

void QuotaService::Start() {
  control_->Start();
  lease_->Start();
}

void QuotaService::Stop() {
  control_->Stop();
  lease_->Stop();
}

absl::StatusOr<Principal> QuotaService::Who(grpc::CallbackServerContext* context) const {
  return AuthenticateCall(tokens_, context, "quota");
}

void QuotaService::StatePass(QuotaStore& store) {
  const absl::Time now = absl::Now();
  absl::StatusOr<std::vector<v1::Quota>> quotas = store.ListQuotas("", false, false);
  absl::StatusOr<std::vector<QuotaStatus>> states =
      quotas.ok() ? store.States(*quotas, now) : quotas.status();
  if (!states.ok()) {
    LogWarn("cannot compute quota states", {{"error", std::string(states.status().message())}});
    return;
  }
  std::vector<std::string> ids;
  for (const QuotaStatus& s : *states) {
    const v1::Quota& q = s.state.quota();
    ids.push_back(q.id());
    absl::StatusOr<std::vector<int32_t>> fired = store.FireAlerts(s.state);
    if (!fired.ok()) {
      LogWarn("cannot record budget alerts",
              {{"quota", q.id()}, {"error", std::string(fired.status().message())}});
    } else {
      for (int32_t percent : *fired) {
        LogWarn("budget alert",
                {{"quota", q.id()},
                 {"team", q.team()},
                 {"scope", std::string(ScopeName(q.scope()))},
                 {"subject", q.subject()},
                 {"unit", std::string(UnitName(q.unit()))},
                 {"period", std::string(PeriodName(q.period()))},
                 {"hard", q.hard() ? "true" : "false"},
                 {"percent", absl::StrCat(percent)},
                 {"used_percent", absl::StrCat(s.state.used_percent())},
                 {"spent", s.state.spent()},
                 {"committed", s.state.committed()},
                 {"used", FormatQuotaUnits(q.unit(), s.used)},
                 {"limit", q.limit()},
                 {"window_start",
                  absl::FormatTime(absl::FromUnixSeconds(s.state.window_start_unix_s()))}});
        if (metrics_ != nullptr) metrics_->AlertFired(q.id(), percent);
      }
    }
    if (metrics_ != nullptr) {
      QuotaMetrics::Budget b;
      b.quota = q.id();
      b.team = q.team();
      b.scope = std::string(ScopeName(q.scope()));
      b.unit = std::string(UnitName(q.unit()));
      b.period = std::string(PeriodName(q.period()));
      b.limit = GaugeValue(q.unit(), q.limit_units());
      b.spent = GaugeValue(q.unit(), q.period() == v1::QUOTA_PERIOD_MINUTE ? s.committed : s.spent);
      b.remaining = GaugeValue(q.unit(), std::max<int64_t>(0, q.limit_units() - s.used));
      b.used_ratio = q.limit_units() > 0
                         ? static_cast<double>(s.used) / static_cast<double>(q.limit_units())
                         : 0;
      metrics_->SetBudget(b);
    }
  }
  if (metrics_ != nullptr) metrics_->RetainBudgets(ids);
  // Ended windows are no longer needed (a report for a window is accepted up to 2 s after it).
  if (absl::StatusOr<int64_t> gone = store.DeleteWindowsBefore(now - absl::Hours(1)); !gone.ok()) {
    LogWarn("cannot delete old quota windows", {{"error", std::string(gone.status().message())}});
  }
}

grpc::ServerUnaryReactor* QuotaService::SetQuota(grpc::CallbackServerContext* context,
                                                 const v1::SetQuotaRequest* request,
                                                 v1::Quota* response) {
  absl::StatusOr<Principal> who = Who(context);
  if (!who.ok()) return Fail(context, who.status());
  v1::Quota quota = request->quota();
  absl::StatusOr<int64_t> units = ValidateQuota(&quota);
  if (!units.ok()) return Fail(context, units.status());
  if (absl::Status st = Authorize(*who, TenancyAction::kSetQuota, quota.team()); !st.ok()) {
    return Fail(context, st);
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  control_->Submit(reactor,
                   [this, response, quota = std::move(quota), units = *units,
                    who = *who](QuotaStore& store) -> absl::Status {
                     absl::StatusOr<v1::Quota> set =
                         store.SetQuota(quota, units, who.name, [&who](const std::string& team) {
                           return Authorize(who, TenancyAction::kSetQuota, team);
                         });
                     if (!set.ok()) return set.status();
                     *response = std::move(*set);
                     LogInfo("quota set", {{"quota", response->id()},
                                           {"team", response->team()},
                                           {"scope", std::string(ScopeName(response->scope()))},
                                           {"subject", response->subject()},
                                           {"unit", std::string(UnitName(response->unit()))},
                                           {"period", std::string(PeriodName(response->period()))},
                                           {"limit", response->limit()},
                                           {"hard", response->hard() ? "true" : "false"},
                                           {"actor", who.name}});
                     if (options_.on_change) options_.on_change();
                     return absl::OkStatus();
                   });
  return reactor;
}

grpc::ServerUnaryReactor* QuotaService::ListQuotas(grpc::CallbackServerContext* context,
                                                   const v1::ListQuotasRequest* request,
                                                   v1::ListQuotasResponse* response) {
  absl::StatusOr<Principal> who = Who(context);
  if (!who.ok()) return Fail(context, who.status());
  if (!request->team().empty()) {
    if (absl::Status st = ValidateTeamName(request->team()); !st.ok()) return Fail(context, st);
  }
  absl::StatusOr<std::string> scope = ReadScope(*who, TenancyAction::kListQuotas, request->team());
  if (!scope.ok()) return Fail(context, scope.status());
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  control_->Submit(
      reactor,
      [response, scope = *scope, limits_only = request->limits_only(),
       keys = request->include_key_limits()](QuotaStore& store) -> absl::Status {
        absl::StatusOr<std::vector<v1::Quota>> quotas = store.ListQuotas(scope, limits_only, keys);
        if (!quotas.ok()) return quotas.status();
        absl::StatusOr<std::vector<QuotaStatus>> states = store.States(*quotas, absl::Now());
        if (!states.ok()) return states.status();
        std::sort(states->begin(), states->end(), [](const QuotaStatus& a, const QuotaStatus& b) {
          const v1::Quota& x = a.state.quota();
          const v1::Quota& y = b.state.quota();
          return std::make_tuple(x.team(), static_cast<int>(x.scope()), x.subject(),
                                 static_cast<int>(x.unit()), static_cast<int>(x.period()), x.id()) <
                 std::make_tuple(y.team(), static_cast<int>(y.scope()), y.subject(),
                                 static_cast<int>(y.unit()), static_cast<int>(y.period()), y.id());
        });
        for (QuotaStatus& s : *states) *response->add_quotas() = std::move(s.state);
        return absl::OkStatus();
      });
  return reactor;
}

grpc::ServerUnaryReactor* QuotaService::DeleteQuota(grpc::CallbackServerContext* context,
                                                    const v1::DeleteQuotaRequest* request,
                                                    v1::Quota* response) {
  absl::StatusOr<Principal> who = Who(context);
  if (!who.ok()) return Fail(context, who.status());
  if (request->id().empty()) return Fail(context, Invalid("id: required"));
  if (absl::Status st = CheckText("id", request->id(), 64); !st.ok()) return Fail(context, st);
  // Roles that may never delete fail before the quota is looked up.
  if (absl::Status st =
          Authorize(*who, TenancyAction::kDeleteQuota, who->role == Role::kAdmin ? "" : who->team);
      !st.ok()) {
    return Fail(context, st);
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  control_->Submit(
      reactor, [this, response, id = request->id(), who = *who](QuotaStore& store) -> absl::Status {
        absl::StatusOr<v1::Quota> gone =
            store.DeleteQuota(id, who.name, [&who](const std::string& team) {
              return Authorize(who, TenancyAction::kDeleteQuota, team);
            });
        if (!gone.ok()) return gone.status();
        *response = std::move(*gone);
        LogInfo("quota deleted", {{"quota", id}, {"team", response->team()}, {"actor", who.name}});
        if (options_.on_change) options_.on_change();
        return absl::OkStatus();
      });
  return reactor;
}

grpc::ServerUnaryReactor* QuotaService::Lease(grpc::CallbackServerContext* context,
                                              const v1::LeaseRequest* request,
                                              v1::LeaseResponse* response) {
  absl::StatusOr<Principal> who = Who(context);
  if (!who.ok()) return Fail(context, who.status());
  if (absl::Status st = Authorize(*who, TenancyAction::kLease, ""); !st.ok()) {
    return Fail(context, st);
  }
  if (request->gateway_id().empty()) return Fail(context, Invalid("gateway_id: required"));
  if (absl::Status st = CheckText("gateway_id", request->gateway_id(), 128); !st.ok()) {
    return Fail(context, st);
  }
  if (request->updates_size() > 10'000) {
    return Fail(context, Invalid("updates: at most 10000 per call"));
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  lease_->Submit(reactor, [this, request, response](QuotaStore& store) -> absl::Status {
    std::vector<LeaseOutcome> outcomes;
    absl::StatusOr<v1::LeaseResponse> r = store.Lease(*request, absl::Now(), &outcomes);
    if (!r.ok()) return r.status();
    *response = std::move(*r);
    if (metrics_ != nullptr) {
      for (const LeaseOutcome& o : outcomes) {
        if (o.extra > 0) metrics_->LeaseGranted(UnitName(o.unit));
        if (o.exhausted) metrics_->LeaseExhausted();
      }
    }
    return absl::OkStatus();
  });
  return reactor;
}

}  // namespace tollgate::ledger
