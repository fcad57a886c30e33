#pragma once
// A gtest fixture for ledger tests against a real PostgreSQL: one throw-away server per test
// suite (tests/testing/postgres.h), and a fresh database per test named <prefix><test name>.
//
//   class MyStoreTest : public PostgresDatabaseTest {
//     void SetUp() override { CreateTestDatabase("my_"); ... pg_->url(db_) ... }
//   };

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/testing/postgres.h"

namespace tollgate::ledger {

class PostgresDatabaseTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto pg = testing::PostgresServer::Start();
    ASSERT_TRUE(pg.ok()) << pg.status();
    pg_ = pg->release();
  }
  static void TearDownTestSuite() {
    delete pg_;
    pg_ = nullptr;
  }

  // Creates this test's database and sets db_.
  void CreateTestDatabase(std::string_view prefix) {
    ASSERT_NE(pg_, nullptr);
    db_ = absl::StrCat(std::string(prefix),
                       ::testing::UnitTest::GetInstance()->current_test_info()->name());
    ASSERT_TRUE(pg_->CreateDatabase(db_).ok());
  }

  // Runs SQL in this test's database; psql's unaligned output ("" and a test failure on error).
  std::string Sql(const std::string& sql) {
    absl::StatusOr<std::string> out = pg_->Query(sql, db_);
    EXPECT_TRUE(out.ok()) << out.status();
    return out.ok() ? *out : "";
  }

  inline static testing::PostgresServer* pg_ = nullptr;
  std::string db_;
};

}  // namespace tollgate::ledger
