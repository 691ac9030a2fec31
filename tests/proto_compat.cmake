# proto/ must stay a wire-compatible subset of etcd's upstream v3 API (from
# Debian's golang-etcd-server-dev): scripts/check-proto-compat compiles both
# to descriptor sets and compares them with proto_compat_compare.
find_package(Protobuf REQUIRED)
add_executable(proto_compat_compare ${CMAKE_CURRENT_LIST_DIR}/proto_compat/compare_descriptors.cpp)
target_link_libraries(proto_compat_compare PRIVATE protobuf::libprotobuf)
target_compile_features(proto_compat_compare PRIVATE cxx_std_20)

set(conch_proto_compat_cmd ${PROJECT_SOURCE_DIR}/scripts/check-proto-compat
    --protoc ${Protobuf_PROTOC_EXECUTABLE}
    --compare $<TARGET_FILE:proto_compat_compare>
    --ours ${PROJECT_SOURCE_DIR}/proto)
add_test(NAME proto_compat COMMAND ${conch_proto_compat_cmd})
add_test(NAME proto_compat.catches_drift COMMAND ${conch_proto_compat_cmd} --self-test)
set_tests_properties(proto_compat proto_compat.catches_drift PROPERTIES
  SKIP_RETURN_CODE 77 TIMEOUT 120)
