#include "services/gateway/auth.h"

#include "absl/strings/match.h"

namespace tollgate::gateway {

std::shared_ptr<const KeySnapshot> KeySnapshot::Build(const std::vector<ApiKeyConfig>& keys) {
  auto snapshot = std::shared_ptr<KeySnapshot>(new KeySnapshot());
  snapshot->by_secret_.reserve(keys.size());
  for (const ApiKeyConfig& k : keys) {
    snapshot->by_secret_.emplace(k.key, ApiKeyInfo{k.id, k.team, k.environment});
  }
  return snapshot;
}

const ApiKeyInfo* KeySnapshot::Find(std::string_view secret) const {
  auto it = by_secret_.find(absl::string_view(secret.data(), secret.size()));
  return it == by_secret_.end() ? nullptr : &it->second;
}

KeyStore::KeyStore(std::shared_ptr<const KeySnapshot> snapshot) : snapshot_(std::move(snapshot)) {}

std::shared_ptr<const KeySnapshot> KeyStore::Get() const {
  return snapshot_.load(std::memory_order_acquire);
}

void KeyStore::Replace(std::shared_ptr<const KeySnapshot> snapshot) {
  snapshot_.store(std::move(snapshot), std::memory_order_release);
}

std::optional<std::string_view> BearerToken(std::string_view authorization) {
  constexpr std::string_view kScheme = "bearer";
  if (authorization.size() <= kScheme.size() ||
      !absl::EqualsIgnoreCase(absl::string_view(authorization.data(), kScheme.size()),
                              absl::string_view(kScheme.data(), kScheme.size())) ||
      (authorization[kScheme.size()] != ' ' && authorization[kScheme.size()] != '\t')) {
    return std::nullopt;
  }
  std::string_view token = authorization.substr(kScheme.size());
  while (!token.empty() && (token.front() == ' ' || token.front() == '\t')) token.remove_prefix(1);
  while (!token.empty() && (token.back() == ' ' || token.back() == '\t')) token.remove_suffix(1);
  if (token.empty()) return std::nullopt;
  return token;
}

absl::StatusOr<ApiKeyInfo> Authenticate(const KeyStore& store, std::string_view authorization) {
  if (authorization.empty()) {
    return absl::UnauthenticatedError(
        "You didn't provide an API key. Send it in the Authorization header as "
        "'Authorization: Bearer <key>'.");
  }
  std::optional<std::string_view> token = BearerToken(authorization);
  if (!token) {
    return absl::UnauthenticatedError(
        "The Authorization header must be of the form 'Bearer <key>'.");
  }
  const std::shared_ptr<const KeySnapshot> snapshot = store.Get();
  const ApiKeyInfo* key = snapshot->Find(*token);
  if (key == nullptr) return absl::UnauthenticatedError("Incorrect API key provided.");
  return *key;
}

}  // namespace tollgate::gateway
