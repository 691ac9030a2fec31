# Every C++ file is as .clang-format says (tests/format/check).
find_program(CONCH_CLANG_FORMAT NAMES clang-format)
if(CONCH_CLANG_FORMAT)
  add_test(NAME format COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/format/check ${PROJECT_SOURCE_DIR})
  set_tests_properties(format PROPERTIES LABELS format TIMEOUT 300
                       ENVIRONMENT CLANG_FORMAT=${CONCH_CLANG_FORMAT})
endif()
