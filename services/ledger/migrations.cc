#include "services/ledger/migrations.h"

#include <string>

#include "absl/strings/str_cat.h"

namespace tollgate::ledger {

absl::Status ValidateMigrations(const std::vector<Migration>& migrations) {
  int expected = 1;
  for (const Migration& m : migrations) {
    const std::string label = absl::StrCat(m.version, "_", std::string(m.name));
    if (m.version != expected) {
      return absl::FailedPreconditionError(absl::StrCat(
          "migration ", label, ": expected version ", expected,
          " (versions must run 1, 2, 3, ... in file-name order without gaps or repeats)"));
    }
    if (m.name.empty()) {
      return absl::FailedPreconditionError(absl::StrCat("migration ", m.version, " has no name"));
    }
    if (m.sql.find_first_not_of(" \t\r\n") == std::string_view::npos) {
      return absl::FailedPreconditionError(absl::StrCat("migration ", label, " is empty"));
    }
    ++expected;
  }
  return absl::OkStatus();
}

}  // namespace tollgate::ledger
