#include "services/gateway/key_watch.h"

#include <algorithm>
#include <random>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "grpcpp/support/sync_stream.h"
#include "services/common/logging.h"

namespace tollgate::gateway {

KeyWatcher::KeyWatcher(std::shared_ptr<grpc::Channel> channel, KeyStore* keys, std::string token,
                       Options options)
    : stub_(v1::TenancyAdmin::NewStub(std::move(channel))),
      keys_(keys),
      token_(std::move(token)),
      options_(std::move(options)) {
  if (options_.registry != nullptr) {
    prometheus::Registry& registry = *options_.registry;
    events_ = &prometheus::BuildCounter()
                   .Name("tollgate_gateway_key_watch_events_total")
                   .Help("TenancyAdmin.WatchKeys stream events by kind: snapshot (a key set and "
                         "quotas applied), heartbeat, reconnect (the stream ended or went "
                         "silent), denied (the ledger refused the token)")
                   .Register(registry);
    keys_gauge_ = &prometheus::BuildGauge()
                       .Name("tollgate_gateway_virtual_keys")
                       .Help("Active virtual keys in the last snapshot from the ledger")
                       .Register(registry)
                       .Add({});
    last_message_gauge_ =
        &prometheus::BuildGauge()
             .Name("tollgate_gateway_key_watch_last_message_timestamp_seconds")
             .Help("Unix time of the last WatchKeys message (snapshot or heartbeat, one a second "
                   "by default); alert when it falls behind: revocations wait for the stream")
             .Register(registry)
             .Add({});
  }
}

void KeyWatcher::Count(const char* kind) {
  if (events_ != nullptr) events_->Add({{"kind", kind}}).Increment();
}

void KeyWatcher::Touch() {
  if (last_message_gauge_ != nullptr) {
    last_message_gauge_->Set(absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch()));
  }
}

KeyWatcher::~KeyWatcher() { Stop(); }

void KeyWatcher::Start() {
  reader_ = std::thread([this] { Run(); });
  watchdog_ = std::thread([this] { Watchdog(); });
}

void KeyWatcher::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    if (context_ != nullptr) context_->TryCancel();
  }
  if (reader_.joinable()) reader_.join();
  if (watchdog_.joinable()) watchdog_.join();
}

bool KeyWatcher::WaitForFirstSnapshot(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return has_snapshot_ || stopping_; };
  mu_.AwaitWithTimeout(absl::Condition(&ready), timeout);
  return has_snapshot_;
}

void KeyWatcher::Watchdog() {
  const absl::Duration stale = absl::FromChrono(options_.stale_after);
  absl::MutexLock lock(&mu_);
  while (!stopping_) {
    mu_.AwaitWithTimeout(absl::Condition(&stopping_), std::min(stale / 4, absl::Seconds(1)));
    if (stopping_) return;
    if (context_ != nullptr && absl::Now() - last_message_ > stale) {
      LogWarn(
          "key watch stream silent; reconnecting",
          {{"silent_ms", absl::StrCat(absl::ToInt64Milliseconds(absl::Now() - last_message_))}});
      context_->TryCancel();
      last_message_ = absl::Now();  // one cancel per silence
    }
  }
}

void KeyWatcher::Run() {
  std::mt19937_64 rng(std::random_device{}());
  std::chrono::milliseconds backoff = options_.initial_backoff;
  while (true) {
    grpc::ClientContext context;
    context.AddMetadata("authorization", absl::StrCat("Bearer ", token_));
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
      context_ = &context;
      last_message_ = absl::Now();
    }
    v1::KeyWatchRequest request;
    request.set_client(options_.client_name);
    std::unique_ptr<grpc::ClientReader<v1::KeyWatchEvent>> reader =
        stub_->WatchKeys(&context, request);
    v1::KeyWatchEvent event;
    bool got_any = false;
    while (reader->Read(&event)) {
      got_any = true;
      {
        absl::MutexLock lock(&mu_);
        last_message_ = absl::Now();
      }
      Touch();
      if (event.event_case() != v1::KeyWatchEvent::kSnapshot) {
        Count("heartbeat");
        continue;
      }
      Count("snapshot");
      if (keys_gauge_ != nullptr) {
        keys_gauge_->Set(static_cast<double>(event.snapshot().keys_size()));
      }
      keys_->ReplaceLedger(KeySnapshot::FromLedger(event.snapshot()));
      if (options_.on_snapshot) options_.on_snapshot(event.snapshot());
      const int64_t n = snapshots_.fetch_add(1, std::memory_order_acq_rel) + 1;
      bool first = false;
      {
        absl::MutexLock lock(&mu_);
        first = !has_snapshot_;
        has_snapshot_ = true;
      }
      LogInfo(
          first ? "ledger key snapshot received" : "ledger key snapshot updated",
          {{"keys", absl::StrCat(event.snapshot().keys_size())}, {"snapshots", absl::StrCat(n)}});
    }
    const grpc::Status status = reader->Finish();
    {
      absl::MutexLock lock(&mu_);
      context_ = nullptr;
      if (stopping_) return;
    }
    if (got_any) backoff = options_.initial_backoff;
    const bool denied = status.error_code() == grpc::StatusCode::UNAUTHENTICATED ||
                        status.error_code() == grpc::StatusCode::PERMISSION_DENIED;
    Count(denied ? "denied" : "reconnect");
    (denied ? LogError : LogWarn)(
        denied ? "ledger refused the key watch (check --control_plane_token_file and the token's "
                 "role); retrying"
               : "ledger key watch stream ended; reconnecting (last key set stays in force)",
        {{"grpc_code", absl::StrCat(static_cast<int>(status.error_code()))},
         {"error", status.error_message()},
         {"backoff_ms", absl::StrCat(backoff.count())}});
    std::uniform_int_distribution<int64_t> jitter(backoff.count() / 2, backoff.count());
    const absl::Duration wait = absl::Milliseconds(jitter(rng));
    {
      absl::MutexLock lock(&mu_);
      mu_.AwaitWithTimeout(absl::Condition(&stopping_), wait);
      if (stopping_) return;
    }
    backoff = std::min(options_.max_backoff, backoff * 2);
  }
}

}  // namespace tollgate::gateway
