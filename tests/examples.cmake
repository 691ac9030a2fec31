# Every one-idea example (examples/CMakeLists.txt lists them) runs as a test,
# each against a throwaway etcd (tests/packaging/with-etcd appends its
# endpoint as the last argument).
get_property(conch_examples GLOBAL PROPERTY conch_examples)
foreach(example ${conch_examples})
  add_test(NAME example.${example}
           COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/packaging/with-etcd $<TARGET_FILE:example_${example}>)
  set_tests_properties(example.${example} PROPERTIES TIMEOUT 90 LABELS example)
endforeach()
