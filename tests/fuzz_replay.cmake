# Ordinary builds (any compiler, no libFuzzer) still build every fuzz target
# with a replay main and run its committed corpus under ctest, so inputs that
# once crashed stay fixed. Fuzzing proper is scripts/fuzz (clang).
if(NOT CONCH_BUILD_FUZZ AND EXISTS ${PROJECT_SOURCE_DIR}/fuzz/CMakeLists.txt)
  set(CONCH_FUZZ_REPLAY_ONLY ON)
  add_subdirectory(${PROJECT_SOURCE_DIR}/fuzz ${PROJECT_BINARY_DIR}/fuzz)
endif()
