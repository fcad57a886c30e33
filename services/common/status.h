#pragma once
// Local stand-ins for the RETURN_IF_ERROR / ASSIGN_OR_RETURN macros that Debian's abseil
// (20220623) does not ship.
//
//   TOLLGATE_RETURN_IF_ERROR(DoThing());
//   TOLLGATE_ASSIGN_OR_RETURN(auto value, ComputeThing());

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define TOLLGATE_STATUS_CONCAT_INNER_(a, b) a##b
#define TOLLGATE_STATUS_CONCAT_(a, b) TOLLGATE_STATUS_CONCAT_INNER_(a, b)

#define TOLLGATE_RETURN_IF_ERROR(expr)                    \
  do {                                                    \
    const ::absl::Status tollgate_status_ = (expr);       \
    if (!tollgate_status_.ok()) return tollgate_status_;  \
  } while (0)

#define TOLLGATE_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                    \
  if (!tmp.ok()) return tmp.status();                   \
  lhs = std::move(*tmp)

#define TOLLGATE_ASSIGN_OR_RETURN(lhs, expr) \
  TOLLGATE_ASSIGN_OR_RETURN_IMPL_(TOLLGATE_STATUS_CONCAT_(tollgate_statusor_, __LINE__), lhs, expr)
