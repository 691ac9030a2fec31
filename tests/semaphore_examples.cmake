# The semaphore example runs as a test against a throwaway etcd
# (tests/packaging/with-etcd appends its endpoint as the last argument).
if(TARGET example_bounded_work)
  add_test(NAME example.bounded_work
           COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/packaging/with-etcd $<TARGET_FILE:example_bounded_work>)
  set_tests_properties(example.bounded_work PROPERTIES TIMEOUT 90 LABELS example)
endif()
