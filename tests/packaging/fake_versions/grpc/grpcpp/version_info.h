// A gRPC that calls itself 1.99.0, for the version-mismatch tests.
#ifndef GRPCPP_VERSION_INFO_H
#define GRPCPP_VERSION_INFO_H
#define GRPC_CPP_VERSION_MAJOR 1
#define GRPC_CPP_VERSION_MINOR 99
#define GRPC_CPP_VERSION_PATCH 0
#define GRPC_CPP_VERSION_TAG ""
#define GRPC_CPP_VERSION_STRING "1.99.0"
#endif
