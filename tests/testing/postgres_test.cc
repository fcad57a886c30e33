#include "tests/testing/postgres.h"

#include "gtest/gtest.h"

namespace tollgate::testing {
namespace {

TEST(PostgresServer, StartsQueriesAndSurvivesACrash) {
  auto pg = PostgresServer::Start();
  ASSERT_TRUE(pg.ok()) << pg.status();
  ASSERT_TRUE((*pg)->CreateDatabase("t1").ok());
  ASSERT_TRUE((*pg)->Query("CREATE TABLE x (v int); INSERT INTO x VALUES (41), (1)", "t1").ok());
  auto sum = (*pg)->Query("SELECT sum(v) FROM x", "t1");
  ASSERT_TRUE(sum.ok()) << sum.status();
  EXPECT_EQ(*sum, "42");

  // A committed row survives SIGKILL of the server.
  ASSERT_TRUE((*pg)->KillAndRestart().ok());
  sum = (*pg)->Query("SELECT sum(v) FROM x", "t1");
  ASSERT_TRUE(sum.ok()) << sum.status();
  EXPECT_EQ(*sum, "42");
}

TEST(PostgresServer, QueryErrorsAreReported) {
  auto pg = PostgresServer::Start();
  ASSERT_TRUE(pg.ok()) << pg.status();
  EXPECT_FALSE((*pg)->Query("SELECT * FROM no_such_table").ok());
}

}  // namespace
}  // namespace tollgate::testing
