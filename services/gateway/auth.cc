#include "services/gateway/auth.h"

#include <openssl/sha.h>

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace tollgate::gateway {

std::string KeySha256(std::string_view data) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
  return std::string(reinterpret_cast<const char*>(digest), sizeof(digest));
}

std::shared_ptr<const KeySnapshot> KeySnapshot::Build(const std::vector<ApiKeyConfig>& keys) {
  auto snapshot = std::shared_ptr<KeySnapshot>(new KeySnapshot());
  snapshot->by_hash_.reserve(keys.size());
  for (const ApiKeyConfig& k : keys) {
    ApiKeyInfo info;
    info.id = k.id;
    info.team = k.team;
    info.environment = k.environment;
    snapshot->by_hash_.emplace(KeySha256(k.key), std::move(info));
  }
  return snapshot;
}

std::shared_ptr<const KeySnapshot> KeySnapshot::FromLedger(const v1::KeySetSnapshot& snapshot) {
  auto out = std::shared_ptr<KeySnapshot>(new KeySnapshot());
  out->by_hash_.reserve(static_cast<size_t>(snapshot.keys_size()));
  for (const v1::ActiveKey& k : snapshot.keys()) {
    if (k.key_sha256().size() != SHA256_DIGEST_LENGTH) continue;
    ApiKeyInfo info;
    info.id = k.id();
    info.team = k.team();
    info.from_ledger = true;
    info.expires_unix_s = k.expires_unix_s();
    const v1::KeyRestrictions& r = k.restrictions();
    if (r.models_size() > 0 || !r.feature().empty() || r.regions_size() > 0 || r.rpm() > 0 ||
        r.tpm() > 0) {
      auto restrictions = std::make_shared<KeyRestrictions>();
      restrictions->models.assign(r.models().begin(), r.models().end());
      restrictions->feature = r.feature();
      restrictions->regions.assign(r.regions().begin(), r.regions().end());
      restrictions->rpm = r.rpm();
      restrictions->tpm = r.tpm();
      info.restrictions = std::move(restrictions);
    }
    out->by_hash_.emplace(k.key_sha256(), std::move(info));
  }
  return out;
}

const ApiKeyInfo* KeySnapshot::Find(std::string_view secret) const {
  return FindHash(KeySha256(secret));
}

const ApiKeyInfo* KeySnapshot::FindHash(std::string_view sha256) const {
  auto it = by_hash_.find(absl::string_view(sha256.data(), sha256.size()));
  return it == by_hash_.end() ? nullptr : &it->second;
}

KeyStore::KeyStore(std::shared_ptr<const KeySnapshot> snapshot)
    : snapshot_(std::move(snapshot)), ledger_(KeySnapshot::FromLedger(v1::KeySetSnapshot())) {}

std::shared_ptr<const KeySnapshot> KeyStore::Get() const {
  return snapshot_.load(std::memory_order_acquire);
}

void KeyStore::Replace(std::shared_ptr<const KeySnapshot> snapshot) {
  snapshot_.store(std::move(snapshot), std::memory_order_release);
}

std::shared_ptr<const KeySnapshot> KeyStore::GetLedger() const {
  return ledger_.load(std::memory_order_acquire);
}

void KeyStore::ReplaceLedger(std::shared_ptr<const KeySnapshot> snapshot) {
  if (snapshot == nullptr) snapshot = KeySnapshot::FromLedger(v1::KeySetSnapshot());
  ledger_.store(std::move(snapshot), std::memory_order_release);
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

absl::StatusOr<ApiKeyInfo> Authenticate(const KeyStore& store, std::string_view authorization,
                                        absl::Time now) {
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
  const std::string hash = KeySha256(*token);
  // Static keys first: the operator's file is authoritative for the keys it lists.
  const std::shared_ptr<const KeySnapshot> configured = store.Get();
  if (const ApiKeyInfo* key = configured->FindHash(hash)) return *key;
  const std::shared_ptr<const KeySnapshot> ledger = store.GetLedger();
  const ApiKeyInfo* key = ledger->FindHash(hash);
  if (key == nullptr) return absl::UnauthenticatedError("Incorrect API key provided.");
  if (key->expires_unix_s != 0 && absl::ToUnixSeconds(now) >= key->expires_unix_s) {
    return absl::UnauthenticatedError("This API key has expired.");
  }
  return *key;
}

absl::StatusOr<ApiKeyInfo> Authenticate(const KeyStore& store, std::string_view authorization) {
  return Authenticate(store, authorization, absl::Now());
}

absl::Status CheckModelAllowed(const ApiKeyInfo& key, std::string_view model) {
  if (key.restrictions == nullptr || key.restrictions->models.empty()) return absl::OkStatus();
  const auto& models = key.restrictions->models;
  if (std::find(models.begin(), models.end(), model) != models.end()) return absl::OkStatus();
  return absl::PermissionDeniedError(
      absl::StrCat("This API key may not use the model '", std::string(model), "'."));
}

}  // namespace tollgate::gateway
