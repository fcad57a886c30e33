#pragma once
// What a cached routing decision depends on beyond model, team, class and capabilities: the
// "scope fields" of router.proto's RouteCacheScope. The router names the fields its applicable
// rules look at and their values for the request; the gateway reuses an answer only for requests
// with the same values. One definition for both sides.
//
// Fields: "feature", "customer", "environment", "api_key_id" (attribution), "tag:<name>" (a free
// tag), and "budget:<N>" — "1" when the request's budget_used_percent is at least N, else "0"
// (rules with `when: {budget_used_percent: N}`).

#include <string>
#include <string_view>

#include "tollgate/v1/router.pb.h"

namespace tollgate {

bool KnownRouteScopeField(std::string_view field);

// The value of `field` for `request`; "" for an absent tag or an unknown field.
std::string RouteScopeValue(const v1::RouteRequest& request, std::string_view field);

// The scope field of a budget threshold: "budget:<percent>".
std::string BudgetScopeField(int percent);

}  // namespace tollgate
