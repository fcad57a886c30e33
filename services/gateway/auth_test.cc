// Virtual keys from the ledger in the gateway's key store: hashing, merge with the static keys,
// expiry, revocation by snapshot swap, model restrictions.

#include "services/gateway/auth.h"

#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace tollgate::gateway {
namespace {

constexpr const char* kLedgerSecret =
    "tg-1a2b3c4d-00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

v1::KeySetSnapshot LedgerKeys(int64_t expires_unix_s = 0) {
  v1::KeySetSnapshot s;
  v1::ActiveKey* k = s.add_keys();
  k->set_id("1a2b3c4d");
  k->set_team("alpha");
  k->set_prefix("tg-1a2b3c4d");
  k->set_key_sha256(KeySha256(kLedgerSecret));
  k->set_expires_unix_s(expires_unix_s);
  k->mutable_restrictions()->add_models("gpt-4o-mini");
  k->mutable_restrictions()->set_rpm(60);
  return s;
}

const absl::Time kNow = absl::FromUnixSeconds(1'700'000'000);

TEST(KeySnapshot, StoresHashesNotSecrets) {
  auto snap = KeySnapshot::Build({{"tg-static-key-1", "s1", "ops", ""}});
  ASSERT_NE(snap->Find("tg-static-key-1"), nullptr);
  EXPECT_NE(snap->FindHash(KeySha256("tg-static-key-1")), nullptr);
  EXPECT_EQ(snap->FindHash("tg-static-key-1"), nullptr) << "looked up by hash only";
  // SHA-256("abc") known vector.
  EXPECT_EQ(KeySha256("abc").size(), 32u);
  EXPECT_EQ(static_cast<unsigned char>(KeySha256("abc")[0]), 0xba);
}

TEST(KeyStore, LedgerKeysAuthenticateWithTeamAndRestrictions) {
  KeyStore store(KeySnapshot::Build({{"tg-static-key-1", "s1", "ops", "prod"}}));
  const std::string auth = std::string("Bearer ") + kLedgerSecret;
  EXPECT_EQ(Authenticate(store, auth, kNow).status().code(), absl::StatusCode::kUnauthenticated)
      << "unknown before the first ledger snapshot";
  store.ReplaceLedger(KeySnapshot::FromLedger(LedgerKeys()));
  absl::StatusOr<ApiKeyInfo> key = Authenticate(store, auth, kNow);
  ASSERT_TRUE(key.ok()) << key.status();
  EXPECT_EQ(key->id, "1a2b3c4d");
  EXPECT_EQ(key->team, "alpha");
  EXPECT_TRUE(key->from_ledger);
  ASSERT_NE(key->restrictions, nullptr);
  EXPECT_EQ(key->restrictions->rpm, 60);
  EXPECT_TRUE(CheckModelAllowed(*key, "gpt-4o-mini").ok());
  EXPECT_EQ(CheckModelAllowed(*key, "gpt-4o").code(), absl::StatusCode::kPermissionDenied);

  // Static keys keep working beside ledger keys, unrestricted.
  absl::StatusOr<ApiKeyInfo> s = Authenticate(store, "Bearer tg-static-key-1", kNow);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->team, "ops");
  EXPECT_FALSE(s->from_ledger);
  EXPECT_TRUE(CheckModelAllowed(*s, "anything").ok());

  // Revocation: the key is absent from the next snapshot.
  store.ReplaceLedger(KeySnapshot::FromLedger(v1::KeySetSnapshot()));
  absl::StatusOr<ApiKeyInfo> revoked = Authenticate(store, auth, kNow);
  EXPECT_EQ(revoked.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(std::string(revoked.status().message()).find("tg-"), std::string::npos);
  EXPECT_TRUE(Authenticate(store, "Bearer tg-static-key-1", kNow).ok());
}

TEST(KeyStore, ExpiredLedgerKeysAreRefused) {
  KeyStore store(KeySnapshot::Build({}));
  const int64_t expiry = absl::ToUnixSeconds(kNow) + 10;
  store.ReplaceLedger(KeySnapshot::FromLedger(LedgerKeys(expiry)));
  const std::string auth = std::string("Bearer ") + kLedgerSecret;
  EXPECT_TRUE(Authenticate(store, auth, kNow).ok());
  EXPECT_TRUE(Authenticate(store, auth, absl::FromUnixSeconds(expiry - 1)).ok());
  absl::StatusOr<ApiKeyInfo> expired = Authenticate(store, auth, absl::FromUnixSeconds(expiry));
  EXPECT_EQ(expired.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(std::string(expired.status().message()), "This API key has expired.");
}

TEST(KeyStore, MalformedLedgerEntriesAreSkipped) {
  v1::KeySetSnapshot s = LedgerKeys();
  s.add_keys()->set_id("bad");  // no hash
  auto snap = KeySnapshot::FromLedger(s);
  EXPECT_EQ(snap->size(), 1u);
}

}  // namespace
}  // namespace tollgate::gateway
