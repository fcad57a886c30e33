#include "tools/tollgatectl/tenancy_cmds.h"

#include <map>

#include "gtest/gtest.h"

namespace tollgate::tools::ctl {
namespace {

const absl::Time kNow = absl::FromUnixSeconds(1'700'000'000);

GetEnv Env(std::map<std::string, std::string> vars) {
  return [vars](const char* name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

TEST(TenancyCmds, RecognisesItsCommands) {
  EXPECT_TRUE(IsTenancyCommand({"keys", "list"}));
  EXPECT_TRUE(IsTenancyCommand({"--ledger_admin=x:1", "teams", "create", "a"}));
  EXPECT_TRUE(IsTenancyCommand({"audit"}));
  EXPECT_FALSE(IsTenancyCommand({"spend"}));
  EXPECT_FALSE(IsTenancyCommand({}));
}

TEST(TenancyCmds, ParsesKeysCreate) {
  auto cmd = ParseTenancyCommand(
      {"--ledger_admin=h:1", "keys", "create", "--team", "alpha", "--name=ci", "--expires", "30d",
       "--models", "gpt-4o, gpt-4o-mini", "--rpm", "60", "--format", "json"},
      Env({{"TOLLGATE_ADMIN_TOKEN", "secret"}}), kNow);
  ASSERT_TRUE(cmd.ok()) << cmd.status();
  EXPECT_EQ(cmd->kind, TenancyCommand::Kind::kKeysCreate);
  EXPECT_EQ(cmd->token, "secret");
  EXPECT_EQ(cmd->global.ledger_admin, "h:1");
  EXPECT_EQ(cmd->create_key.team(), "alpha");
  EXPECT_EQ(cmd->create_key.name(), "ci");
  EXPECT_EQ(cmd->create_key.expires_unix_s(), 1'700'000'000 + 30 * 86400);
  ASSERT_EQ(cmd->create_key.restrictions().models_size(), 2);
  EXPECT_EQ(cmd->create_key.restrictions().models(1), "gpt-4o-mini");
  EXPECT_EQ(cmd->create_key.restrictions().rpm(), 60);
  EXPECT_EQ(cmd->format, Format::kJson);

  auto absolute = ParseTenancyCommand(
      {"keys", "create", "--team=a", "--expires=2023-11-15T00:00:00Z", "--token=t"}, Env({}), kNow);
  ASSERT_TRUE(absolute.ok()) << absolute.status();
  EXPECT_EQ(absolute->create_key.expires_unix_s(), 1'700'006'400);
}

TEST(TenancyCmds, UsageErrors) {
  const GetEnv env = Env({{"TOLLGATE_ADMIN_TOKEN", "t"}});
  for (const std::vector<std::string>& bad : std::vector<std::vector<std::string>>{
           {"keys", "create"},                          // no team
           {"keys", "revoke"},                          // no id
           {"keys", "rotate"},                          // unknown verb
           {"teams", "create"},                         // no name
           {"keys", "list", "--bogus=1"},               // unknown flag
           {"keys", "create", "--team=a", "--rpm=-1"},  // negative
           {"keys", "create", "--team=a", "--expires=soon"},
           {"audit", "--format=yaml"},
       }) {
    EXPECT_EQ(ParseTenancyCommand(bad, env, kNow).status().code(),
              absl::StatusCode::kInvalidArgument)
        << bad[0] << " " << (bad.size() > 1 ? bad[1] : "");
  }
  auto no_token = ParseTenancyCommand({"keys", "list"}, Env({}), kNow);
  ASSERT_FALSE(no_token.ok());
  EXPECT_NE(std::string(no_token.status().message()).find("TOLLGATE_ADMIN_TOKEN"),
            std::string::npos);
}

TEST(TenancyCmds, RendersKeysWithoutSecretsAndTheNewSecretOnce) {
  v1::CreateKeyResponse created;
  created.set_secret("tg-1a2b3c4d-" + std::string(64, 'f'));
  v1::VirtualKey* k = created.mutable_key();
  k->set_id("1a2b3c4d");
  k->set_prefix("tg-1a2b3c4d");
  k->set_team("alpha");
  k->set_created_by("ops");
  k->mutable_restrictions()->add_models("gpt-4o-mini");
  const std::string table = RenderCreatedKey(created, Format::kTable);
  EXPECT_EQ(table.find("key: " + created.secret()), 0u) << table;
  EXPECT_NE(table.find("only time"), std::string::npos);
  EXPECT_NE(table.find("models=gpt-4o-mini"), std::string::npos);

  v1::ListKeysResponse list;
  *list.add_keys() = *k;
  list.mutable_keys(0)->set_revoked_unix_s(1'700'000'000);
  list.mutable_keys(0)->set_revoked_by("ops");
  const std::string listed = RenderKeys(list, Format::kTable);
  EXPECT_NE(listed.find("revoked 2023-11-14T22:13:20Z by ops"), std::string::npos) << listed;
  EXPECT_EQ(listed.find(std::string(64, 'f')), std::string::npos);
  EXPECT_NE(RenderKeys(list, Format::kJson).find("\"prefix\":\"tg-1a2b3c4d\""), std::string::npos);
  EXPECT_EQ(RenderKeys(v1::ListKeysResponse(), Format::kTable), "no keys\n");
}

TEST(TenancyCmds, RendersAudit) {
  v1::ListAuditResponse r;
  v1::AuditEntry* e = r.add_entries();
  e->set_id(7);
  e->set_time_unix_ms(1'700'000'000'123);
  e->set_actor("ops");
  e->set_action("key.revoke");
  e->set_team("alpha");
  e->set_target("1a2b3c4d");
  e->set_before_json("{\"id\":\"1a2b3c4d\"}");
  const std::string table = RenderAudit(r, Format::kTable);
  EXPECT_NE(table.find("key.revoke"), std::string::npos);
  EXPECT_NE(table.find("2023-11-14T22:13:20.123Z"), std::string::npos) << table;
  EXPECT_EQ(RenderAudit(v1::ListAuditResponse(), Format::kTable), "no audit entries\n");
}

}  // namespace
}  // namespace tollgate::tools::ctl
