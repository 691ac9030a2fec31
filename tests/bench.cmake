# The benchmark's quick mode as a test: keeps conch_bench working (each
# measurement must produce sane numbers). It never asserts a performance
# target; the full run and its table live in bench/RESULTS.md.
if(CONCH_BUILD_BENCH AND EXISTS ${PROJECT_SOURCE_DIR}/bench/CMakeLists.txt)
  add_test(NAME bench.quick COMMAND conch_bench --quick)
  set_tests_properties(bench.quick PROPERTIES TIMEOUT 120)
endif()
