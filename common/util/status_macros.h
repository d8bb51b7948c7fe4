// Early-return helpers for absl::Status / absl::StatusOr.
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define RALLY_CONCAT_INNER(a, b) a##b
#define RALLY_CONCAT(a, b) RALLY_CONCAT_INNER(a, b)

// Returns the status from the enclosing function if `expr` is not OK.
#define RETURN_IF_ERROR(expr)                  \
  do {                                         \
    ::absl::Status rally_status_ = (expr);     \
    if (!rally_status_.ok()) return rally_status_; \
  } while (0)

#define RALLY_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                \
  if (!tmp.ok()) return tmp.status();               \
  lhs = std::move(tmp).value()

// `lhs = value of expr`, or returns its status from the enclosing function.
#define ASSIGN_OR_RETURN(lhs, expr) \
  RALLY_ASSIGN_OR_RETURN_IMPL(RALLY_CONCAT(rally_statusor_, __LINE__), lhs, expr)
