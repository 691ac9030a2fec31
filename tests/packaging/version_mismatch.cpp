// Compiled by the version-mismatch tests with a fake protobuf or gRPC first on
// the include path (tests/packaging/fake_versions/): conch_etcd.hpp must stop
// at its one static_assert naming the protoc it was generated with.
#define CONCH_ETCD_IMPLEMENTATION
#include <conch/conch_etcd.hpp>

int main() { return 0; }
