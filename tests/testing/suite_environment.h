#pragma once
// A googletest global environment that starts one Suite (suite.h) for a whole test binary and
// publishes it through a pointer the tests read:
//
//   Suite* g_suite = nullptr;
//   const auto* const kEnv =
//       ::testing::AddGlobalTestEnvironment(new SuiteEnvironment(&g_suite, options));
//
// The suite stops (SIGTERM to every process) in TearDown. Header-only: the suite library itself
// does not depend on googletest.

#include <memory>
#include <utility>

#include "gtest/gtest.h"
#include "tests/testing/suite.h"

namespace tollgate::testing {

class SuiteEnvironment : public ::testing::Environment {
 public:
  explicit SuiteEnvironment(Suite** slot, SuiteOptions options = {})
      : slot_(slot), options_(std::move(options)) {}

  void SetUp() override {
    auto suite = Suite::Start(options_);
    ASSERT_TRUE(suite.ok()) << suite.status();
    suite_ = std::move(*suite);
    *slot_ = suite_.get();
  }
  void TearDown() override {
    *slot_ = nullptr;
    suite_.reset();
  }

 private:
  Suite** const slot_;
  const SuiteOptions options_;
  std::unique_ptr<Suite> suite_;
};

}  // namespace tollgate::testing
