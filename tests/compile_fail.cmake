# Compile-fail tests: every English static_assert message of conch/policies/
# fires where it should. Each tests/compile_fail/*.cpp names on its first line
# (`// expect: <message>`) the message the compiler must print; the test runs
# the compiler on it and passes only if that message is in the output (an
# unrelated error does not match). PASS_REGULAR_EXPRESSION decides alone (CTest
# would invert it under WILL_FAIL), and the message is printed only by a
# failed static_assert. `// expect: compiles` marks the control: the same
# command on the stock policies must succeed, so the command itself is sound.
file(GLOB conch_compile_fail_sources CONFIGURE_DEPENDS
     ${CMAKE_CURRENT_SOURCE_DIR}/compile_fail/*.cpp)
foreach(src ${conch_compile_fail_sources})
  get_filename_component(name ${src} NAME_WE)
  file(STRINGS ${src} expect LIMIT_COUNT 1 REGEX "^// expect: ")
  string(REGEX REPLACE "^// expect: " "" expect "${expect}")
  if(expect STREQUAL "")
    message(FATAL_ERROR "${src}: first line must be `// expect: <static_assert message>`")
  endif()
  add_test(NAME compile_fail.${name}
           COMMAND ${CMAKE_CXX_COMPILER} -std=c++20 -fsyntax-only
                   -I${PROJECT_SOURCE_DIR}/include ${src})
  set_tests_properties(compile_fail.${name} PROPERTIES LABELS compile_fail)
  if(NOT expect STREQUAL "compiles")
    string(REGEX REPLACE "([][+.*()^$?|\\\\{}])" "\\\\\\1" pattern "${expect}")
    set_tests_properties(compile_fail.${name} PROPERTIES
                         PASS_REGULAR_EXPRESSION "failed[^\n]*: ${pattern}")
  endif()
endforeach()
