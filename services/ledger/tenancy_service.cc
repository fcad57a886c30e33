#include "services/ledger/tenancy_service.h"

#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "services/common/grpc_status.h"
#include "services/common/logging.h"

namespace tollgate::ledger {
namespace {

using Event = std::shared_ptr<const v1::KeyWatchEvent>;

absl::Status Invalid(std::string message) { return absl::InvalidArgumentError(std::move(message)); }

absl::Status CheckText(const std::string& field, const std::string& value, size_t max,
                       bool allow_empty) {
  if (!allow_empty && value.empty()) return Invalid(absl::StrCat(field, ": must not be empty"));
  if (value.size() > max) return Invalid(absl::StrCat(field, ": longer than ", max, " bytes"));
  for (unsigned char c : value) {
    if (c < 0x20 || c == 0x7f) {
      return Invalid(absl::StrCat(field, ": must not contain control characters"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckList(const std::string& field,
                       const google::protobuf::RepeatedPtrField<std::string>& values) {
  if (values.size() > 100) return Invalid(absl::StrCat(field, ": more than 100 entries"));
  for (int i = 0; i < values.size(); ++i) {
    if (absl::Status st = CheckText(absl::StrCat(field, "[", i, "]"), values[i], 128, false);
        !st.ok()) {
      return st;
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateCreateKey(const v1::CreateKeyRequest& request, int64_t now_unix_s) {
  if (request.team().empty()) return Invalid("team: required");
  if (absl::Status st = ValidateTeamName(request.team()); !st.ok()) return st;
  if (absl::Status st = CheckText("name", request.name(), 128, true); !st.ok()) return st;
  if (request.expires_unix_s() < 0) return Invalid("expires_unix_s: must not be negative");
  if (request.expires_unix_s() != 0 && request.expires_unix_s() <= now_unix_s) {
    return Invalid(absl::StrCat("expires_unix_s: ", request.expires_unix_s(),
                                " is not in the future (now ", now_unix_s, ")"));
  }
  const v1::KeyRestrictions& r = request.restrictions();
  if (absl::Status st = CheckList("restrictions.models", r.models()); !st.ok()) return st;
  if (absl::Status st = CheckList("restrictions.regions", r.regions()); !st.ok()) return st;
  if (absl::Status st = CheckText("restrictions.feature", r.feature(), 128, true); !st.ok()) {
    return st;
  }
  if (r.rpm() < 0) return Invalid("restrictions.rpm: must not be negative");
  if (r.tpm() < 0) return Invalid("restrictions.tpm: must not be negative");
  return absl::OkStatus();
}

// One WatchKeys call. Owns itself: deleted in OnDone, after Shared forgot it.
class KeyWatchStream final : public grpc::ServerWriteReactor<v1::KeyWatchEvent> {
 public:
  KeyWatchStream(std::shared_ptr<TenancyAdminService::Shared> shared, std::string peer)
      : shared_(std::move(shared)), peer_(std::move(peer)) {}

  // Queues `event`, replacing an unsent one (snapshots are complete: the newest says it all).
  // A heartbeat (only_idle) is dropped when anything is queued or being written.
  void Enqueue(const Event& event, bool only_idle) {
    absl::MutexLock lock(&mu_);
    if (finishing_) return;
    if (only_idle && (writing_ || pending_ != nullptr)) return;
    pending_ = event;
    WriteNextLocked();
  }

  void Close(grpc::Status status) {
    absl::MutexLock lock(&mu_);
    if (finishing_) return;
    finishing_ = true;
    pending_ = nullptr;
    close_status_ = std::move(status);
    if (!writing_) Finish(close_status_);
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (!ok && !finishing_) {
      finishing_ = true;
      pending_ = nullptr;
      close_status_ = grpc::Status(grpc::StatusCode::UNAVAILABLE, "watch stream broken");
    }
    if (finishing_) {
      Finish(close_status_);
      return;
    }
    WriteNextLocked();
  }

  void OnCancel() override { Close(grpc::Status::CANCELLED); }
  void OnDone() override;

 private:
  void WriteNextLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (writing_ || pending_ == nullptr) return;
    current_ = *pending_;
    pending_ = nullptr;
    current_.set_sequence(++sequence_);
    writing_ = true;
    StartWrite(&current_);
  }

  const std::shared_ptr<TenancyAdminService::Shared> shared_;
  const std::string peer_;
  absl::Mutex mu_;
  Event pending_ ABSL_GUARDED_BY(mu_);
  v1::KeyWatchEvent current_ ABSL_GUARDED_BY(mu_);
  int64_t sequence_ ABSL_GUARDED_BY(mu_) = 0;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finishing_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status close_status_ ABSL_GUARDED_BY(mu_);
};

struct TenancyAdminService::Shared {
  struct Task {
    grpc::ServerUnaryReactor* reactor = nullptr;
    std::function<void(TenancyStore&)> run;
  };

  Shared(std::unique_ptr<TenancyStore> s, const AdminTokens* t, Options o)
      : store(std::move(s)), tokens(t), options(o) {}

  absl::StatusOr<Principal> Who(grpc::CallbackServerContext* context) const {
    return AuthenticateCall(tokens, context, "tenancy");
  }

  // Runs `work` on the worker thread, then finishes `reactor` with its status.
  void Submit(grpc::ServerUnaryReactor* reactor, std::function<absl::Status(TenancyStore&)> work,
              bool changes_keys) {
    absl::Status refused;
    {
      absl::MutexLock lock(&mu);
      if (stopped) {
        refused = absl::UnavailableError("ledger is shutting down");
      } else if (tasks.size() >= options.max_pending) {
        refused = absl::ResourceExhaustedError("too many control-plane calls waiting");
      } else {
        tasks.push_back(
            {reactor, [this, reactor, work = std::move(work), changes_keys](TenancyStore& s) {
               const absl::Status status = work(s);
               if (!status.ok() && status.code() != absl::StatusCode::kInvalidArgument &&
                   status.code() != absl::StatusCode::kPermissionDenied &&
                   status.code() != absl::StatusCode::kNotFound &&
                   status.code() != absl::StatusCode::kAlreadyExists &&
                   status.code() != absl::StatusCode::kFailedPrecondition) {
                 LogWarn("control-plane call failed", {{"error", std::string(status.message())}});
               }
               if (status.ok() && changes_keys) {
                 absl::MutexLock lock(&mu);
                 refresh_requested = true;
               }
               reactor->Finish(ToGrpcStatus(status));
             }});
      }
    }
    if (!refused.ok()) reactor->Finish(ToGrpcStatus(refused));
  }

  bool Wake() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    return stopped || !tasks.empty() || refresh_requested;
  }

  void Loop() {
    absl::Time next_poll = absl::InfinitePast();
    absl::Time next_heartbeat = absl::Now() + absl::FromChrono(options.heartbeat_interval);
    for (;;) {
      Task task;
      bool refresh = false;
      {
        absl::MutexLock lock(&mu);
        mu.AwaitWithDeadline(absl::Condition(this, &Shared::Wake),
                             std::min(next_poll, next_heartbeat));
        if (stopped) return;
        if (!tasks.empty()) {
          task = std::move(tasks.front());
          tasks.pop_front();
        }
        refresh = refresh_requested;
        refresh_requested = false;
      }
      if (task.run) task.run(*store);
      const absl::Time now = absl::Now();
      if (refresh || now >= next_poll) {
        Refresh();
        next_poll = absl::Now() + absl::FromChrono(options.poll_interval);
      }
      if (now >= next_heartbeat) {
        auto event = std::make_shared<v1::KeyWatchEvent>();
        event->set_time_unix_ms(absl::ToUnixMillis(now));
        event->mutable_heartbeat();
        Broadcast(event, /*only_idle=*/true);
        next_heartbeat = now + absl::FromChrono(options.heartbeat_interval);
      }
    }
  }

  // Rereads the active keys; pushes a snapshot to every stream when the set changed.
  void Refresh() {
    absl::StatusOr<v1::KeySetSnapshot> keys = store->ActiveKeys();
    if (!keys.ok()) {
      LogWarn("cannot read the active key set", {{"error", std::string(keys.status().message())}});
      return;
    }
    std::string bytes;
    keys->SerializeToString(&bytes);
    if (last_bytes && *last_bytes == bytes) return;
    last_bytes = std::move(bytes);
    auto event = std::make_shared<v1::KeyWatchEvent>();
    event->set_time_unix_ms(absl::ToUnixMillis(absl::Now()));
    *event->mutable_snapshot() = std::move(*keys);
    {
      absl::MutexLock lock(&mu);
      current = event;
    }
    LogInfo("active key set changed", {{"keys", absl::StrCat(event->snapshot().keys_size())},
                                       {"quotas", absl::StrCat(event->snapshot().quotas_size())}});
    Broadcast(event, /*only_idle=*/false);
  }

  void Broadcast(const Event& event, bool only_idle) {
    absl::MutexLock lock(&mu);
    if (stopped) return;
    for (KeyWatchStream* s : streams) s->Enqueue(event, only_idle);
  }

  void Remove(KeyWatchStream* stream) {
    absl::MutexLock lock(&mu);
    streams.erase(stream);
  }

  std::unique_ptr<TenancyStore> store;  // worker thread only
  const AdminTokens* const tokens;
  const Options options;
  std::optional<std::string> last_bytes;  // worker thread only

  absl::Mutex mu;
  std::deque<Task> tasks ABSL_GUARDED_BY(mu);
  bool stopped ABSL_GUARDED_BY(mu) = false;
  bool refresh_requested ABSL_GUARDED_BY(mu) = false;
  Event current ABSL_GUARDED_BY(mu);
  absl::flat_hash_set<KeyWatchStream*> streams ABSL_GUARDED_BY(mu);
  std::thread worker;
};

void KeyWatchStream::OnDone() {
  shared_->Remove(this);
  delete this;
}

TenancyAdminService::TenancyAdminService(std::unique_ptr<TenancyStore> store,
                                         const AdminTokens* tokens, Options options)
    : shared_(std::make_shared<Shared>(std::move(store), tokens, options)) {}

TenancyAdminService::~TenancyAdminService() { Stop(); }

void TenancyAdminService::Start() {
  shared_->worker = std::thread([shared = shared_.get()] { shared->Loop(); });
}

void TenancyAdminService::Stop() {
  {
    absl::MutexLock lock(&shared_->mu);
    if (!shared_->stopped) {
      shared_->stopped = true;
      for (KeyWatchStream* s : shared_->streams) {
        s->Close(grpc::Status(grpc::StatusCode::UNAVAILABLE, "ledger shutting down"));
      }
    }
  }
  if (shared_->worker.joinable()) shared_->worker.join();
  // Calls still queued never ran; every reactor must be finished for the server to shut down.
  std::deque<Shared::Task> left;
  {
    absl::MutexLock lock(&shared_->mu);
    left.swap(shared_->tasks);
  }
  for (Shared::Task& task : left) {
    task.reactor->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "ledger shutting down"));
  }
}

void TenancyAdminService::RequestRefresh() {
  absl::MutexLock lock(&shared_->mu);
  shared_->refresh_requested = true;
}

namespace {

grpc::ServerUnaryReactor* Fail(grpc::CallbackServerContext* context, const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

}  // namespace

grpc::ServerUnaryReactor* TenancyAdminService::CreateTeam(grpc::CallbackServerContext* context,
                                                          const v1::CreateTeamRequest* request,
                                                          v1::Team* response) {
  absl::StatusOr<Principal> who = shared_->Who(context);
  if (!who.ok()) return Fail(context, who.status());
  if (absl::Status st = ValidateTeamName(request->name()); !st.ok()) return Fail(context, st);
  if (absl::Status st = Authorize(*who, TenancyAction::kCreateTeam, request->name()); !st.ok()) {
    return Fail(context, st);
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  shared_->Submit(
      reactor,
      [request, response, actor = who->name](TenancyStore& store) -> absl::Status {
        absl::StatusOr<v1::Team> team = store.CreateTeam(request->name(), actor);
        if (!team.ok()) return team.status();
        *response = std::move(*team);
        LogInfo("team created", {{"team", response->name()}, {"actor", actor}});
        return absl::OkStatus();
      },
      false);
  return reactor;
}

grpc::ServerUnaryReactor* TenancyAdminService::ListTeams(grpc::CallbackServerContext* context,
                                                         const v1::ListTeamsRequest*,
                                                         v1::ListTeamsResponse* response) {
  absl::StatusOr<Principal> who = shared_->Who(context);
  if (!who.ok()) return Fail(context, who.status());
  absl::StatusOr<std::string> scope = ReadScope(*who, TenancyAction::kListTeams, "");
  if (!scope.ok()) return Fail(context, scope.status());
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  shared_->Submit(
      reactor,
      [response, scope = *scope](TenancyStore& store) -> absl::Status {
        absl::StatusOr<v1::ListTeamsResponse> r = store.ListTeams(scope);
        if (!r.ok()) return r.status();
        *response = std::move(*r);
        return absl::OkStatus();
      },
      false);
  return reactor;
}

grpc::ServerUnaryReactor* TenancyAdminService::CreateKey(grpc::CallbackServerContext* context,
                                                         const v1::CreateKeyRequest* request,
                                                         v1::CreateKeyResponse* response) {
  absl::StatusOr<Principal> who = shared_->Who(context);
  if (!who.ok()) return Fail(context, who.status());
  if (absl::Status st = ValidateCreateKey(*request, absl::ToUnixSeconds(absl::Now())); !st.ok()) {
    return Fail(context, st);
  }
  if (absl::Status st = Authorize(*who, TenancyAction::kCreateKey, request->team()); !st.ok()) {
    return Fail(context, st);
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  shared_->Submit(
      reactor,
      [request, response, actor = who->name](TenancyStore& store) -> absl::Status {
        absl::StatusOr<v1::CreateKeyResponse> r = store.CreateKey(*request, actor);
        if (!r.ok()) return r.status();
        *response = std::move(*r);
        LogInfo(
            "key created",
            {{"key_id", response->key().id()}, {"team", response->key().team()}, {"actor", actor}});
        return absl::OkStatus();
      },
      true);
  return reactor;
}

grpc::ServerUnaryReactor* TenancyAdminService::ListKeys(grpc::CallbackServerContext* context,
                                                        const v1::ListKeysRequest* request,
                                                        v1::ListKeysResponse* response) {
  absl::StatusOr<Principal> who = shared_->Who(context);
  if (!who.ok()) return Fail(context, who.status());
  if (!request->team().empty()) {
    if (absl::Status st = ValidateTeamName(request->team()); !st.ok()) return Fail(context, st);
  }
  absl::StatusOr<std::string> scope = ReadScope(*who, TenancyAction::kListKeys, request->team());
  if (!scope.ok()) return Fail(context, scope.status());
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  shared_->Submit(
      reactor,
      [response, scope = *scope,
       all = request->include_revoked()](TenancyStore& store) -> absl::Status {
        absl::StatusOr<v1::ListKeysResponse> r = store.ListKeys(scope, all);
        if (!r.ok()) return r.status();
        *response = std::move(*r);
        return absl::OkStatus();
      },
      false);
  return reactor;
}

grpc::ServerUnaryReactor* TenancyAdminService::RevokeKey(grpc::CallbackServerContext* context,
                                                         const v1::RevokeKeyRequest* request,
                                                         v1::RevokeKeyResponse* response) {
  absl::StatusOr<Principal> who = shared_->Who(context);
  if (!who.ok()) return Fail(context, who.status());
  absl::StatusOr<std::string> id = ParseKeyReference(request->key());
  if (!id.ok()) return Fail(context, id.status());
  // Roles that may never revoke fail before the key is looked up.
  if (absl::Status st =
          Authorize(*who, TenancyAction::kRevokeKey, who->role == Role::kAdmin ? "" : who->team);
      !st.ok()) {
    return Fail(context, st);
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  shared_->Submit(
      reactor,
      [response, id = *id, who = *who](TenancyStore& store) -> absl::Status {
        absl::StatusOr<v1::VirtualKey> key =
            store.RevokeKey(id, who.name, [&who](const std::string& team) {
              return Authorize(who, TenancyAction::kRevokeKey, team);
            });
        if (!key.ok()) return key.status();
        *response->mutable_key() = std::move(*key);
        LogInfo("key revoked",
                {{"key_id", id}, {"team", response->key().team()}, {"actor", who.name}});
        return absl::OkStatus();
      },
      true);
  return reactor;
}

grpc::ServerUnaryReactor* TenancyAdminService::ListAudit(grpc::CallbackServerContext* context,
                                                         const v1::ListAuditRequest* request,
                                                         v1::ListAuditResponse* response) {
  absl::StatusOr<Principal> who = shared_->Who(context);
  if (!who.ok()) return Fail(context, who.status());
  if (request->limit() < 0 || request->limit() > 1000) {
    return Fail(context, Invalid("limit: must be between 0 (default 100) and 1000"));
  }
  if (!request->team().empty()) {
    if (absl::Status st = ValidateTeamName(request->team()); !st.ok()) return Fail(context, st);
  }
  absl::StatusOr<std::string> scope = ReadScope(*who, TenancyAction::kListAudit, request->team());
  if (!scope.ok()) return Fail(context, scope.status());
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  shared_->Submit(
      reactor,
      [response, scope = *scope, limit = request->limit() == 0 ? 100 : request->limit()](
          TenancyStore& store) -> absl::Status {
        absl::StatusOr<v1::ListAuditResponse> r = store.ListAudit(scope, limit);
        if (!r.ok()) return r.status();
        *response = std::move(*r);
        return absl::OkStatus();
      },
      false);
  return reactor;
}

grpc::ServerWriteReactor<v1::KeyWatchEvent>* TenancyAdminService::WatchKeys(
    grpc::CallbackServerContext* context, const v1::KeyWatchRequest* request) {
  auto* stream = new KeyWatchStream(shared_, context->peer());
  absl::Status refused;
  absl::StatusOr<Principal> who = shared_->Who(context);
  if (!who.ok()) {
    refused = who.status();
  } else {
    refused = Authorize(*who, TenancyAction::kWatchKeys, "");
  }
  absl::MutexLock lock(&shared_->mu);
  shared_->streams.insert(stream);  // OnDone removes it
  if (!refused.ok()) {
    stream->Close(ToGrpcStatus(refused));
    return stream;
  }
  if (shared_->stopped) {
    stream->Close(grpc::Status(grpc::StatusCode::UNAVAILABLE, "ledger shutting down"));
    return stream;
  }
  LogInfo("key watch stream opened",
          {{"peer", context->peer()}, {"client", request->client()}, {"token", who->name}});
  if (shared_->current != nullptr) {
    stream->Enqueue(shared_->current, /*only_idle=*/false);
  } else {
    shared_->refresh_requested = true;  // the first snapshot reaches every stream when read
  }
  return stream;
}

}  // namespace tollgate::ledger
