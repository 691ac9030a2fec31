# Packaging checks: conch as users get it. Each is a ctest (label "packaging").
#   packaging.amalgamate.check        committed single headers == regenerated ones
#   packaging.amalgamate.self_test    the script on a made-up tree (inlining, --check, refusals)
#   packaging.single_header.*         a program against each single header alone;
#                                     drop_in: the README's g++ line on a copy of
#                                     single_include/ (two files, one with
#                                     CONCH_ETCD_IMPLEMENTATION), put/get + campaign;
#                                     *_mismatch: a fake protobuf / gRPC version
#                                     stops conch_etcd.hpp at its one static_assert
#   packaging.consume.*               external projects via find_package (after a
#                                     staged install), add_subdirectory, FetchContent,
#                                     each running a put/get against a throwaway etcd
#   packaging.bazel                   scripts/bazel-check, when bazel is on PATH
# The programs are built by the tests themselves, so a stale single header or a
# broken package shows up as a failing test, not as a broken build.

set(conch_packaging_dir ${CMAKE_CURRENT_SOURCE_DIR}/packaging)
set(conch_with_etcd ${conch_packaging_dir}/with-etcd)

add_test(NAME packaging.amalgamate.check
         COMMAND ${PROJECT_SOURCE_DIR}/scripts/amalgamate --check)
add_test(NAME packaging.amalgamate.self_test COMMAND ${conch_packaging_dir}/amalgamate-self-test)
set_tests_properties(packaging.amalgamate.self_test PROPERTIES
  ENVIRONMENT CXX=${CMAKE_CXX_COMPILER} TIMEOUT 600)

# --- single headers: single_include/ is the only conch include directory.
add_executable(single_header_conch EXCLUDE_FROM_ALL ${conch_packaging_dir}/single_header.cpp)
target_include_directories(single_header_conch PRIVATE ${PROJECT_SOURCE_DIR}/single_include)
target_compile_features(single_header_conch PRIVATE cxx_std_20)
target_compile_options(single_header_conch PRIVATE -Wall -Wextra -Werror)
target_link_libraries(single_header_conch PRIVATE
  Threads::Threads absl::time nlohmann_json::nlohmann_json Boost::headers)

# conch/conch_etcd.hpp carries the generated etcd protobuf and gRPC code (compiled where
# CONCH_ETCD_IMPLEMENTATION is defined): it needs only the gRPC and protobuf libraries.
find_package(Protobuf REQUIRED)
find_package(gRPC CONFIG REQUIRED)
add_executable(single_header_conch_etcd EXCLUDE_FROM_ALL ${conch_packaging_dir}/put_get.cpp)
target_compile_definitions(single_header_conch_etcd PRIVATE CONCH_PACKAGING_SINGLE_HEADER)
target_include_directories(single_header_conch_etcd PRIVATE ${PROJECT_SOURCE_DIR}/single_include)
target_compile_features(single_header_conch_etcd PRIVATE cxx_std_20)
target_compile_options(single_header_conch_etcd PRIVATE -Wall -Wextra -Werror)
target_link_libraries(single_header_conch_etcd PRIVATE
  gRPC::grpc++ protobuf::libprotobuf Threads::Threads absl::time nlohmann_json::nlohmann_json
  Boost::headers)

set(conch_single_header_tests conch conch_etcd)
foreach(name ${conch_single_header_tests})
  add_test(NAME packaging.single_header.${name}.build
           COMMAND ${CMAKE_COMMAND} --build ${CMAKE_BINARY_DIR} --target single_header_${name})
  # Two builds in one build tree at once would trip over each other.
  set_tests_properties(packaging.single_header.${name}.build PROPERTIES
    FIXTURES_SETUP single_header_${name} RESOURCE_LOCK conch_build_tree LABELS packaging)
endforeach()
add_test(NAME packaging.single_header.conch COMMAND single_header_conch)
add_test(NAME packaging.single_header.conch_etcd
         COMMAND ${conch_with_etcd} $<TARGET_FILE:single_header_conch_etcd>)
foreach(name ${conch_single_header_tests})
  set_tests_properties(packaging.single_header.${name} PROPERTIES
    FIXTURES_REQUIRED single_header_${name} LABELS packaging TIMEOUT 120)
endforeach()

# The heavy builds (RESOURCE_LOCK conch_heavy_build) run one after another. Their COST
# (about their seconds on two cores) makes ctest start that chain first, beside the other
# tests, rather than leave it as a tail of its own on a run without timing history.

# The drop-in as the README tells it: g++ and pkg-config on a copy of single_include/ alone.
add_test(NAME packaging.single_header.drop_in COMMAND ${conch_packaging_dir}/drop-in ${PROJECT_SOURCE_DIR})
set_tests_properties(packaging.single_header.drop_in PROPERTIES
  LABELS packaging RESOURCE_LOCK conch_heavy_build TIMEOUT 900 COST 40)

# Generated code from another protobuf (or gRPC) is one static_assert naming the protoc it
# came from and how to regenerate; the fake headers under fake_versions/ stand in for them.
foreach(fake protobuf grpc)
  add_test(NAME packaging.single_header.${fake}_mismatch
           COMMAND ${conch_packaging_dir}/expect-compile-error ${CMAKE_CXX_COMPILER} -std=c++20
                   -fsyntax-only -I ${conch_packaging_dir}/fake_versions/${fake}
                   -I ${PROJECT_SOURCE_DIR}/single_include ${conch_packaging_dir}/version_mismatch.cpp)
  set_tests_properties(packaging.single_header.${fake}_mismatch PROPERTIES
    LABELS packaging TIMEOUT 300
    PASS_REGULAR_EXPRESSION "compile failed as expected: .*static assertion failed: conch_etcd\\.hpp carries etcd protocol code generated by protoc [0-9.]+.*regenerate it with scripts/amalgamate")
endforeach()

# --- external consumer projects (tests/packaging/<mode>/), each linking conch::etcd.
set(conch_consumer_args -G ${CMAKE_GENERATOR} -DCMAKE_CXX_COMPILER=${CMAKE_CXX_COMPILER})
foreach(mode find_package add_subdirectory fetch_content)
  add_test(NAME packaging.consume.${mode}
           COMMAND ${conch_packaging_dir}/consume ${mode} ${PROJECT_SOURCE_DIR} ${CMAKE_BINARY_DIR}
                   ${CMAKE_BINARY_DIR}/packaging/${mode} -- ${conch_consumer_args})
  # Each configures and compiles a project of its own: one at a time is plenty on a small machine.
  set_tests_properties(packaging.consume.${mode} PROPERTIES
    LABELS packaging RESOURCE_LOCK conch_heavy_build TIMEOUT 900 COST 30)
endforeach()

# --- Bazel: the second build system is checked on every test run, so the two cannot drift.
find_program(CONCH_BAZEL bazel)
if(CONCH_BAZEL AND EXISTS ${PROJECT_SOURCE_DIR}/scripts/bazel-check)
  add_test(NAME packaging.bazel COMMAND ${PROJECT_SOURCE_DIR}/scripts/bazel-check)
  set_tests_properties(packaging.bazel PROPERTIES
    LABELS packaging RESOURCE_LOCK conch_heavy_build TIMEOUT 3600 COST 240)
endif()
set_tests_properties(packaging.amalgamate.check packaging.amalgamate.self_test PROPERTIES
  LABELS packaging)

# --- the Debian package: cpack -G DEB, unpacked with dpkg -x, used from there.
find_program(CONCH_DPKG_DEB dpkg-deb)
if(CONCH_DPKG_DEB AND CONCH_INSTALL AND CONCH_BUILD_EXAMPLES)
  add_test(NAME packaging.deb
           COMMAND ${conch_packaging_dir}/deb ${PROJECT_SOURCE_DIR} ${CMAKE_BINARY_DIR}
                   ${CMAKE_BINARY_DIR}/packaging/deb -- ${conch_consumer_args})
  set_tests_properties(packaging.deb PROPERTIES
    LABELS packaging RESOURCE_LOCK conch_heavy_build TIMEOUT 900 COST 20
    ENVIRONMENT "CONCH_EXPECT_MAN=${CONCH_MAN_PAGE_NAMES};CONCH_EXPECT_COMPLETION=usr/share/bash-completion/completions/conch usr/share/bash-completion/completions/conchd usr/share/zsh/vendor-completions/_conch")
endif()
