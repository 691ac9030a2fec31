# The layout's rule that the compiler does not check: conch/logic/ is pure.
find_package(Python3 REQUIRED COMPONENTS Interpreter)
add_test(NAME layout.purity
  COMMAND Python3::Interpreter ${CMAKE_CURRENT_SOURCE_DIR}/layout/purity ${PROJECT_SOURCE_DIR}/include)
add_test(NAME layout.purity_self_test
  COMMAND Python3::Interpreter ${CMAKE_CURRENT_SOURCE_DIR}/layout/purity --self-test)
set_tests_properties(layout.purity layout.purity_self_test PROPERTIES LABELS layout TIMEOUT 60)
add_test(NAME layout.function_length
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/layout/function-length ${PROJECT_SOURCE_DIR}/include 60)
set_tests_properties(layout.function_length PROPERTIES LABELS layout TIMEOUT 60)
