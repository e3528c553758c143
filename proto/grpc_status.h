// The one status conversion between Abseil and gRPC, used by every handler
// and every client call. The two share the canonical codes; the message
// passes through.
#ifndef SPINNET_PROTO_GRPC_STATUS_H_
#define SPINNET_PROTO_GRPC_STATUS_H_

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace spinnet::api {

grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace spinnet::api

#endif  // SPINNET_PROTO_GRPC_STATUS_H_
