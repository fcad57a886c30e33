#include "services/ledger/fake_usage_store.h"

#include <set>

#include "services/common/status.h"
#include "services/ledger/usage_event.h"

namespace tollgate::ledger {
namespace {

bool NotBlocked(FakeUsageStore::State* s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s->mu) {
  return !s->blocked;
}

}  // namespace

absl::Status FakeUsageStore::Migrate() {
  absl::MutexLock lock(&state_->mu);
  ++state_->migrate_calls;
  return absl::OkStatus();
}

absl::StatusOr<InsertResult> FakeUsageStore::InsertBatch(
    const std::vector<v1::UsageEvent>& events) {
  State& s = *state_;
  absl::MutexLock lock(&s.mu);
  ++s.insert_calls;
  ++s.inserts_waiting;
  s.mu.Await(absl::Condition(&NotBlocked, &s));
  --s.inserts_waiting;
  if (!s.insert_failures.empty()) {
    absl::Status failure = s.insert_failures.front();
    s.insert_failures.pop_front();
    return failure;
  }
  for (const v1::UsageEvent& e : events) TOLLGATE_RETURN_IF_ERROR(ValidateUsageEvent(e));
  InsertResult result;
  for (const v1::UsageEvent& e : events) {
    if (s.events.emplace(e.event_id(), e).second) {
      ++result.inserted;
    } else {
      ++result.duplicates;
    }
  }
  return result;
}

absl::StatusOr<v1::SpendResponse> FakeUsageStore::QuerySpend(const v1::SpendQuery& query,
                                                             absl::Duration timeout) {
  State& s = *state_;
  absl::MutexLock lock(&s.mu);
  ++s.query_calls;
  s.mu.Await(absl::Condition(&NotBlocked, &s));
  s.last_query = query;
  s.last_timeout = timeout;
  return s.spend_result;
}

}  // namespace tollgate::ledger
