#include "services/ledger/migrations.h"

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "gtest/gtest.h"

namespace tollgate::ledger {
namespace {

TEST(EmbeddedMigrationsTest, AreValidAndStartWithUsageEvents) {
  const std::vector<Migration>& migrations = EmbeddedMigrations();
  ASSERT_FALSE(migrations.empty());
  EXPECT_TRUE(ValidateMigrations(migrations).ok()) << ValidateMigrations(migrations);
  EXPECT_EQ(migrations[0].version, 1);
  EXPECT_EQ(migrations[0].name, "usage_events");
  EXPECT_NE(migrations[0].sql.find("CREATE TABLE usage_events"), std::string_view::npos);
}

// The embedded text is each file's exact contents, in file-name order.
TEST(EmbeddedMigrationsTest, MatchSourceFilesByteForByte) {
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(TOLLGATE_LEDGER_MIGRATIONS_DIR)) {
    if (entry.path().extension() == ".sql") files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  const std::vector<Migration>& migrations = EmbeddedMigrations();
  ASSERT_EQ(files.size(), migrations.size());
  for (size_t i = 0; i < files.size(); ++i) {
    std::ifstream in(files[i], std::ios::binary);
    std::stringstream contents;
    contents << in.rdbuf();
    EXPECT_EQ(migrations[i].sql, contents.str()) << files[i];
    const std::string stem = files[i].stem().string();
    EXPECT_EQ(stem.substr(stem.find('_') + 1), migrations[i].name);
  }
}

TEST(ValidateMigrationsTest, AcceptsContiguousVersions) {
  EXPECT_TRUE(ValidateMigrations({}).ok());
  EXPECT_TRUE(ValidateMigrations({{1, "a", "SELECT 1"}, {2, "b", "SELECT 2"}}).ok());
}

TEST(ValidateMigrationsTest, RejectsGapsRepeatsAndDisorder) {
  EXPECT_EQ(ValidateMigrations({{2, "a", "SELECT 1"}}).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ValidateMigrations({{1, "a", "SELECT 1"}, {3, "c", "SELECT 1"}}).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ValidateMigrations({{1, "a", "SELECT 1"}, {1, "b", "SELECT 1"}}).code(),
            absl::StatusCode::kFailedPrecondition);
  const absl::Status disorder =
      ValidateMigrations({{1, "a", "SELECT 1"}, {3, "c", "SELECT 1"}, {2, "b", "SELECT 1"}});
  EXPECT_EQ(disorder.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(disorder.message().find("3_c"), absl::string_view::npos) << disorder;
}

TEST(ValidateMigrationsTest, RejectsEmptyNameOrSql) {
  EXPECT_EQ(ValidateMigrations({{1, "", "SELECT 1"}}).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ValidateMigrations({{1, "a", " \n\t"}}).code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace tollgate::ledger
