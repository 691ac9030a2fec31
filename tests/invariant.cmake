# Layer 3 — the invariant harness (tests/invariant/, docs/invariants.md): real
# `conch` contenders under a seeded fault schedule against a throwaway etcd.
# A fixed seed here; `build/bin/invariant --seed N --duration D` for any other.
add_executable(invariant ${CMAKE_CURRENT_LIST_DIR}/invariant/invariant.cpp)
target_link_libraries(invariant PRIVATE conch::conch)
target_include_directories(invariant PRIVATE ${CMAKE_CURRENT_LIST_DIR})
target_compile_options(invariant PRIVATE -Wall -Wextra)
target_compile_definitions(invariant PRIVATE CONCH_BIN_DIR="${CMAKE_RUNTIME_OUTPUT_DIRECTORY}")
if(TARGET conch_tool)
  add_dependencies(invariant conch_tool)
endif()
add_test(NAME invariant COMMAND invariant --seed 1 --duration 60s)
# Timing matters (overlap is measured in ms): alone, not next to other tests.
set_tests_properties(invariant PROPERTIES TIMEOUT 300 RUN_SERIAL TRUE LABELS invariant)
