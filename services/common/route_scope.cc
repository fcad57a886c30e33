#include "services/common/route_scope.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace tollgate {
namespace {

constexpr std::string_view kTag = "tag:";
constexpr std::string_view kBudget = "budget:";

bool BudgetThreshold(std::string_view field, int* percent) {
  if (field.substr(0, kBudget.size()) != kBudget) return false;
  const std::string_view n = field.substr(kBudget.size());
  return absl::SimpleAtoi(absl::string_view(n.data(), n.size()), percent) && *percent > 0;
}

}  // namespace

bool KnownRouteScopeField(std::string_view field) {
  int percent = 0;
  return field == "feature" || field == "customer" || field == "environment" ||
         field == "api_key_id" || field.substr(0, kTag.size()) == kTag ||
         BudgetThreshold(field, &percent);
}

std::string RouteScopeValue(const v1::RouteRequest& request, std::string_view field) {
  const v1::Attribution& a = request.attribution();
  if (field == "feature") return a.feature();
  if (field == "customer") return a.customer();
  if (field == "environment") return a.environment();
  if (field == "api_key_id") return a.api_key_id();
  if (field.substr(0, kTag.size()) == kTag) {
    auto it = a.tags().find(std::string(field.substr(kTag.size())));
    return it == a.tags().end() ? "" : it->second;
  }
  if (int percent = 0; BudgetThreshold(field, &percent)) {
    return request.budget_used_percent() >= percent ? "1" : "0";
  }
  return "";
}

std::string BudgetScopeField(int percent) { return absl::StrCat("budget:", percent); }

}  // namespace tollgate
