#pragma once
// Conversions between absl::Status (used inside every service), grpc::Status (on gRPC APIs) and
// HTTP status codes (at the gateway's edge). The canonical codes are shared, so the mapping is
// lossless between absl and gRPC.

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace tollgate {

grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

// The HTTP status a client should see for a failure of this kind (e.g. kNotFound -> 404,
// kUnavailable -> 503, kDeadlineExceeded -> 504).
int HttpStatusFromCode(absl::StatusCode code);

}  // namespace tollgate
