# The policy and fencing examples run as tests, each against a throwaway etcd
# (tests/packaging/with-etcd appends its endpoint as the last argument).
foreach(example custom_policies fenced_write)
  if(TARGET example_${example})
    add_test(NAME example.${example}
             COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/packaging/with-etcd $<TARGET_FILE:example_${example}>)
    set_tests_properties(example.${example} PROPERTIES TIMEOUT 90 LABELS example)
  endif()
endforeach()
