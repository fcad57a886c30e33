#include "services/ledger/fake_usage_store.h"

#include <set>

#include "absl/strings/str_cat.h"
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

absl::StatusOr<std::vector<InsertResult>> FakeUsageStore::InsertBatches(
    absl::Span<const std::vector<v1::UsageEvent>> batches) {
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
  for (const std::vector<v1::UsageEvent>& batch : batches) {
    for (const v1::UsageEvent& e : batch) TOLLGATE_RETURN_IF_ERROR(ValidateUsageEvent(e));
  }
  s.batches_per_insert.push_back(batches.size());
  std::vector<InsertResult> results(batches.size());
  for (size_t i = 0; i < batches.size(); ++i) {
    for (const v1::UsageEvent& e : batches[i]) {
      if (s.events.emplace(e.event_id(), e).second) {
        ++results[i].inserted;
      } else {
        ++results[i].duplicates;
      }
    }
  }
  return results;
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

absl::StatusOr<v1::FocusChunk> FakeUsageStore::FocusRecords(const v1::ExportFocusRequest&,
                                                            int64_t from_unix_s, int64_t to_unix_s,
                                                            absl::Duration) {
  State& s = *state_;
  absl::MutexLock lock(&s.mu);
  s.focus_calls.emplace_back(from_unix_s, to_unix_s);
  const int64_t day = from_unix_s / 86400;
  if (s.focus_fail_days.count(day) > 0) return absl::UnavailableError("database down");
  v1::FocusChunk chunk;
  if (s.focus_empty_days.count(day) == 0) {
    v1::FocusRecord* r = chunk.add_records();
    r->add_values(absl::StrCat(from_unix_s));
    r->add_values(absl::StrCat(to_unix_s));
  }
  return chunk;
}

}  // namespace tollgate::ledger
