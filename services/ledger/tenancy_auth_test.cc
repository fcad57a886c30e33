#include "services/ledger/tenancy_auth.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/ledger/quota_service.h"
#include "services/ledger/tenancy_admin_guard.h"
#include "services/ledger/tenancy_service.h"

namespace tollgate::ledger {
namespace {

std::string HashHex(const std::string& token) { return HexEncode(Sha256(token)); }

AdminTokens Tokens() {
  const std::string yaml = absl::StrCat(
      "tokens:\n"
      "  - {name: ops, role: admin, sha256: ",
      HashHex("admin-token"),
      "}\n"
      "  - {name: alpha-lead, role: team-admin, team: alpha, sha256: ",
      HashHex("alpha-token"),
      "}\n"
      "  - {name: alpha-viewer, role: viewer, team: alpha, sha256: ",
      HashHex("viewer-token"),
      "}\n"
      "  - {name: gw, role: gateway, sha256: ",
      HashHex("gw-token"), "}\n");
  absl::StatusOr<AdminTokens> t = AdminTokens::Parse(yaml, "tokens.yaml");
  EXPECT_TRUE(t.ok()) << t.status();
  return *t;
}

TEST(TenancyKeys, FormatIsPrefixPlusSecretAndHashMatches) {
  absl::StatusOr<GeneratedKey> a = GenerateKey();
  absl::StatusOr<GeneratedKey> b = GenerateKey();
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_TRUE(LooksLikeVirtualKey(a->secret)) << a->secret;
  EXPECT_EQ(a->secret.substr(0, 12), absl::StrCat("tg-", a->id, "-"));
  EXPECT_EQ(a->sha256, Sha256(a->secret));
  EXPECT_EQ(a->sha256.size(), 32u);
  EXPECT_NE(a->secret, b->secret);
  // Known vector: SHA-256("abc").
  EXPECT_EQ(HashHex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(TenancyKeys, KeyReferences) {
  EXPECT_EQ(*ParseKeyReference("1a2b3c4d"), "1a2b3c4d");
  EXPECT_EQ(*ParseKeyReference("tg-1a2b3c4d"), "1a2b3c4d");
  EXPECT_FALSE(ParseKeyReference("").ok());
  EXPECT_FALSE(ParseKeyReference("1A2B3C4D").ok());
  EXPECT_FALSE(ParseKeyReference("tg-1a2b").ok());
  absl::StatusOr<GeneratedKey> k = GenerateKey();
  absl::StatusOr<std::string> secret = ParseKeyReference(k->secret);
  ASSERT_FALSE(secret.ok());
  EXPECT_NE(std::string(secret.status().message()).find("never the secret"), std::string::npos);
}

TEST(TenancyAuth, AuthenticatesBearerTokensByHash) {
  const AdminTokens tokens = Tokens();
  absl::StatusOr<Principal> ops = tokens.Authenticate("Bearer admin-token");
  ASSERT_TRUE(ops.ok()) << ops.status();
  EXPECT_EQ(ops->name, "ops");
  EXPECT_EQ(ops->role, Role::kAdmin);
  EXPECT_EQ(tokens.Authenticate("bearer alpha-token")->team, "alpha");
  for (const char* bad : {"", "admin-token", "Basic admin-token", "Bearer nope", "Bearer "}) {
    absl::StatusOr<Principal> p = tokens.Authenticate(bad);
    EXPECT_EQ(p.status().code(), absl::StatusCode::kUnauthenticated) << bad;
  }
}

TEST(TenancyAuth, TokensFileIsReloadedWhenItChangesAndABadFileIsIgnored) {
  const std::string path =
      absl::StrCat(::testing::TempDir(), "/tokens-", ::getpid(), "-reload.yaml");
  auto write = [&](const std::string& text) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << text;
  };
  auto file = [](const std::string& name, const std::string& token) {
    return absl::StrCat("tokens:\n  - {name: ", name, ", role: admin, sha256: ", HashHex(token),
                        "}\n");
  };
  write(file("ops", "old-token"));
  absl::StatusOr<AdminTokens> loaded = LoadAdminTokens(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  AdminTokens tokens = *std::move(loaded);
  AdminTokensReloader reloader(path, &tokens, absl::Hours(1));  // driven by CheckNow here
  EXPECT_FALSE(reloader.CheckNow());  // unchanged
  EXPECT_TRUE(tokens.Authenticate("Bearer old-token").ok());

  write(file("ops-rotated", "new-token"));  // rotation: the old token stops, the new one works
  EXPECT_TRUE(reloader.CheckNow());
  EXPECT_EQ(tokens.Authenticate("Bearer new-token")->name, "ops-rotated");
  EXPECT_EQ(tokens.Authenticate("Bearer old-token").status().code(),
            absl::StatusCode::kUnauthenticated);

  write("tokens: [ {name: broken");  // a half-written or broken file changes nothing
  EXPECT_FALSE(reloader.CheckNow());
  EXPECT_TRUE(tokens.Authenticate("Bearer new-token").ok());
  std::remove(path.c_str());  // a missing file (Secret being swapped) changes nothing either
  EXPECT_FALSE(reloader.CheckNow());
  EXPECT_TRUE(tokens.Authenticate("Bearer new-token").ok());

  // The thread picks up a change by itself.
  AdminTokensReloader background(path, &tokens, absl::Milliseconds(10));
  background.Start();
  write(file("ops-3", "third-token"));
  bool seen = false;
  for (int i = 0; i < 500 && !seen; ++i) {
    seen = tokens.Authenticate("Bearer third-token").ok();
    if (!seen) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  background.Stop();
  EXPECT_TRUE(seen);
  std::remove(path.c_str());
}

TEST(TenancyAuth, TokensFileValidation) {
  const std::string h = HashHex("x");
  for (const std::string& bad : {
           std::string("tokens: []"),
           absl::StrCat("tokens:\n  - {name: a, role: root, sha256: ", h, "}"),
           absl::StrCat("tokens:\n  - {name: a, role: team-admin, sha256: ", h, "}"),
           absl::StrCat("tokens:\n  - {name: a, role: admin, team: x, sha256: ", h, "}"),
           std::string("tokens:\n  - {name: a, role: admin, sha256: plaintext-token}"),
           absl::StrCat("tokens:\n  - {name: a, role: admin, sha256: ", h, ", extra: 1}"),
           absl::StrCat("tokens:\n  - {name: a, role: admin, sha256: ", h,
                        "}\n  - {name: b, role: admin, sha256: ", h, "}"),
           absl::StrCat("tokenz: []"),
       }) {
    EXPECT_EQ(AdminTokens::Parse(bad, "t.yaml").status().code(), absl::StatusCode::kInvalidArgument)
        << bad;
  }
}

// The four principals of Tokens(), for Authorize decisions.
class RbacTest : public ::testing::Test {
 protected:
  using A = TenancyAction;
  static absl::StatusCode code(const absl::Status& s) { return s.code(); }
  static constexpr absl::StatusCode kOk = absl::StatusCode::kOk;
  static constexpr absl::StatusCode kDenied = absl::StatusCode::kPermissionDenied;

  const AdminTokens tokens = Tokens();
  const Principal admin = *tokens.Authenticate("Bearer admin-token");
  const Principal lead = *tokens.Authenticate("Bearer alpha-token");
  const Principal viewer = *tokens.Authenticate("Bearer viewer-token");
  const Principal gw = *tokens.Authenticate("Bearer gw-token");
};

TEST_F(RbacTest, RbacDecisions) {

  EXPECT_EQ(code(Authorize(admin, A::kCreateTeam, "beta")), kOk);
  EXPECT_EQ(code(Authorize(admin, A::kRevokeKey, "beta")), kOk);
  EXPECT_EQ(code(Authorize(admin, A::kWatchKeys, "")), kDenied);

  EXPECT_EQ(code(Authorize(lead, A::kCreateKey, "alpha")), kOk);
  EXPECT_EQ(code(Authorize(lead, A::kRevokeKey, "alpha")), kOk);
  EXPECT_EQ(code(Authorize(lead, A::kCreateKey, "beta")), kDenied);
  EXPECT_EQ(code(Authorize(lead, A::kRevokeKey, "beta")), kDenied);
  EXPECT_EQ(code(Authorize(lead, A::kListKeys, "beta")), kDenied);
  EXPECT_EQ(code(Authorize(lead, A::kCreateTeam, "alpha")), kDenied);

  EXPECT_EQ(code(Authorize(viewer, A::kListKeys, "alpha")), kOk);
  EXPECT_EQ(code(Authorize(viewer, A::kListAudit, "alpha")), kOk);
  EXPECT_EQ(code(Authorize(viewer, A::kCreateKey, "alpha")), kDenied);
  EXPECT_EQ(code(Authorize(viewer, A::kRevokeKey, "alpha")), kDenied);

  EXPECT_EQ(code(Authorize(gw, A::kWatchKeys, "")), kOk);
  EXPECT_EQ(code(Authorize(gw, A::kListKeys, "alpha")), kDenied);

  EXPECT_EQ(*ReadScope(admin, A::kListKeys, ""), "");
  EXPECT_EQ(*ReadScope(admin, A::kListKeys, "beta"), "beta");
  EXPECT_EQ(*ReadScope(lead, A::kListKeys, ""), "alpha");
  EXPECT_EQ(ReadScope(lead, A::kListKeys, "beta").status().code(), kDenied);
  EXPECT_EQ(*ReadScope(viewer, A::kListAudit, ""), "alpha");
  const absl::Status denied = Authorize(viewer, A::kCreateKey, "alpha");
  EXPECT_NE(std::string(denied.message()).find("read-only"), std::string::npos) << denied;
}

TEST(TenancyAuth, SpendReadsAreScopedToTheCallersTeam) {
  const AdminTokens tokens = Tokens();
  const Principal admin = *tokens.Authenticate("Bearer admin-token");
  const Principal viewer = *tokens.Authenticate("Bearer viewer-token");
  const Principal gw = *tokens.Authenticate("Bearer gw-token");
  google::protobuf::Map<std::string, std::string> none, alpha, beta;
  alpha["team"] = "alpha";
  beta["team"] = "beta";
  EXPECT_TRUE(AuthorizeSpendRead(admin, none).ok());
  EXPECT_TRUE(AuthorizeSpendRead(viewer, alpha).ok());
  const absl::Status unfiltered = AuthorizeSpendRead(viewer, none);
  EXPECT_EQ(unfiltered.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_NE(std::string(unfiltered.message()).find("team=alpha"), std::string::npos);
  EXPECT_EQ(AuthorizeSpendRead(viewer, beta).code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(AuthorizeSpendRead(gw, alpha).code(), absl::StatusCode::kPermissionDenied);
}

TEST(TenancyAuth, CreateKeyValidation) {
  const int64_t now = 1'700'000'000;
  v1::CreateKeyRequest ok;
  ok.set_team("alpha");
  ok.set_expires_unix_s(now + 60);
  ok.mutable_restrictions()->add_models("gpt-4o-mini");
  EXPECT_TRUE(ValidateCreateKey(ok, now).ok());

  auto expect_invalid = [&](v1::CreateKeyRequest r, const std::string& field) {
    absl::Status st = ValidateCreateKey(r, now);
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << field;
    EXPECT_NE(std::string(st.message()).find(field), std::string::npos) << st;
  };
  v1::CreateKeyRequest r = ok;
  r.clear_team();
  expect_invalid(r, "team");
  r = ok;
  r.set_team("Alpha Team");
  expect_invalid(r, "team");
  r = ok;
  r.set_expires_unix_s(now - 1);
  expect_invalid(r, "expires_unix_s");
  r = ok;
  r.mutable_restrictions()->add_models("");
  expect_invalid(r, "restrictions.models[1]");
  r = ok;
  r.mutable_restrictions()->set_rpm(-1);
  expect_invalid(r, "restrictions.rpm");
  r = ok;
  r.set_name(std::string(200, 'x'));
  expect_invalid(r, "name");
}

TEST_F(RbacTest, QuotaRbacDecisions) {

  // admin: every quota, org-wide included; never Lease.
  EXPECT_EQ(code(Authorize(admin, A::kSetQuota, "beta")), kOk);
  EXPECT_EQ(code(Authorize(admin, A::kSetQuota, "")), kOk);
  EXPECT_EQ(code(Authorize(admin, A::kDeleteQuota, "")), kOk);
  EXPECT_EQ(code(Authorize(admin, A::kListQuotas, "")), kOk);
  EXPECT_EQ(code(Authorize(admin, A::kLease, "")), kDenied);

  // team-admin: its own team's quotas only; org-wide and team-less quotas are admin-only.
  EXPECT_EQ(code(Authorize(lead, A::kSetQuota, "alpha")), kOk);
  EXPECT_EQ(code(Authorize(lead, A::kDeleteQuota, "alpha")), kOk);
  EXPECT_EQ(code(Authorize(lead, A::kListQuotas, "alpha")), kOk);
  EXPECT_EQ(code(Authorize(lead, A::kSetQuota, "beta")), kDenied);
  EXPECT_EQ(code(Authorize(lead, A::kDeleteQuota, "beta")), kDenied);
  EXPECT_EQ(code(Authorize(lead, A::kListQuotas, "beta")), kDenied);
  const absl::Status org = Authorize(lead, A::kSetQuota, "");
  EXPECT_EQ(code(org), kDenied);
  EXPECT_NE(std::string(org.message()).find("admin-only"), std::string::npos) << org;
  EXPECT_EQ(code(Authorize(lead, A::kLease, "")), kDenied);

  // viewer: reads its own team's quotas.
  EXPECT_EQ(code(Authorize(viewer, A::kListQuotas, "alpha")), kOk);
  EXPECT_EQ(code(Authorize(viewer, A::kListQuotas, "beta")), kDenied);
  EXPECT_EQ(code(Authorize(viewer, A::kSetQuota, "alpha")), kDenied);
  EXPECT_EQ(code(Authorize(viewer, A::kDeleteQuota, "alpha")), kDenied);
  EXPECT_EQ(code(Authorize(viewer, A::kLease, "")), kDenied);
  EXPECT_EQ(*ReadScope(viewer, A::kListQuotas, ""), "alpha");

  // gateway: Lease (and WatchKeys) only.
  EXPECT_EQ(code(Authorize(gw, A::kLease, "")), kOk);
  EXPECT_EQ(code(Authorize(gw, A::kListQuotas, "")), kDenied);
  EXPECT_EQ(code(Authorize(gw, A::kListQuotas, "alpha")), kDenied);
  EXPECT_EQ(code(Authorize(gw, A::kSetQuota, "alpha")), kDenied);
  EXPECT_EQ(ReadScope(gw, A::kListQuotas, "").status().code(), kDenied);
}

TEST(TenancyAuth, QuotaValidation) {
  v1::Quota ok;
  ok.set_scope(v1::QUOTA_SCOPE_TEAM);
  ok.set_team("alpha");
  ok.set_unit(v1::QUOTA_UNIT_USD);
  ok.set_period(v1::QUOTA_PERIOD_MONTH);
  ok.set_limit("100.00");
  ok.set_hard(true);
  ok.add_alert_percents(80);
  ok.add_alert_percents(50);
  ok.add_alert_percents(80);
  v1::Quota q = ok;
  absl::StatusOr<int64_t> units = ValidateQuota(&q);
  ASSERT_TRUE(units.ok()) << units.status();
  EXPECT_EQ(*units, 100'000'000'000'000);
  EXPECT_EQ(q.limit(), "100");
  EXPECT_EQ(q.limit_units(), *units);
  EXPECT_EQ(q.lease_chunk(), 5'000'000'000'000);
  EXPECT_THAT(q.alert_percents(), ::testing::ElementsAre(50, 80));

  v1::Quota key = ok;
  key.set_scope(v1::QUOTA_SCOPE_KEY);
  key.set_subject("tg-1a2b3c4d");
  ASSERT_TRUE(ValidateQuota(&key).ok());
  EXPECT_EQ(key.subject(), "1a2b3c4d");
  v1::Quota rpm = ok;
  rpm.set_unit(v1::QUOTA_UNIT_REQUESTS);
  rpm.set_period(v1::QUOTA_PERIOD_MINUTE);
  rpm.set_limit("600");
  EXPECT_TRUE(ValidateQuota(&rpm).ok());
  v1::Quota feature = ok;
  feature.set_scope(v1::QUOTA_SCOPE_FEATURE);
  feature.clear_team();
  feature.set_subject("search");
  EXPECT_TRUE(ValidateQuota(&feature).ok());

  auto expect_invalid = [](v1::Quota r, const std::string& field) {
    absl::StatusOr<int64_t> st = ValidateQuota(&r);
    EXPECT_EQ(st.status().code(), absl::StatusCode::kInvalidArgument) << field;
    EXPECT_EQ(std::string(st.status().message()).rfind(field + ":", 0), 0u)
        << field << ": " << st.status();
  };
  v1::Quota r = ok;
  r.clear_scope();
  expect_invalid(r, "scope");
  r = ok;
  r.clear_unit();
  expect_invalid(r, "unit");
  r = ok;
  r.clear_period();
  expect_invalid(r, "period");
  r = ok;
  r.clear_team();
  expect_invalid(r, "team");
  r = ok;
  r.set_team("Alpha Team");
  expect_invalid(r, "team");
  r = ok;
  r.set_scope(v1::QUOTA_SCOPE_ORG);
  expect_invalid(r, "team");
  r = ok;
  r.set_subject("x");
  expect_invalid(r, "subject");
  r = key;
  r.clear_subject();
  expect_invalid(r, "subject");
  r = key;
  r.set_subject("not-a-key");
  expect_invalid(r, "subject");
  r = feature;
  r.clear_subject();
  expect_invalid(r, "subject");
  r = ok;
  r.set_limit("0");
  expect_invalid(r, "limit");
  r = ok;
  r.set_limit("9000000.01");
  expect_invalid(r, "limit");
  r = rpm;
  r.set_limit("1.5");
  expect_invalid(r, "limit");
  r = ok;
  r.add_alert_percents(0);
  expect_invalid(r, "alert_percents");
  r = ok;
  r.add_alert_percents(1001);
  expect_invalid(r, "alert_percents");
  r = ok;
  r.set_name(std::string(129, 'x'));
  expect_invalid(r, "name");
  r = ok;
  r.set_period(v1::QUOTA_PERIOD_MINUTE);
  expect_invalid(r, "period");  // USD per minute
  r = rpm;
  r.set_hard(false);
  expect_invalid(r, "hard");
  r = ok;
  r.set_id("k-1a2b3c4d-rpm");
  expect_invalid(r, "id");
  r = ok;
  r.set_id("q-xyz");
  expect_invalid(r, "id");
}

TEST(TenancyAuth, TeamNames) {
  EXPECT_TRUE(ValidateTeamName("alpha").ok());
  EXPECT_TRUE(ValidateTeamName("team-1.prod_x").ok());
  EXPECT_FALSE(ValidateTeamName("").ok());
  EXPECT_FALSE(ValidateTeamName("-x").ok());
  EXPECT_FALSE(ValidateTeamName("Alpha").ok());
  EXPECT_FALSE(ValidateTeamName(std::string(64, 'a')).ok());
}

}  // namespace
}  // namespace tollgate::ledger
