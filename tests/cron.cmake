# it_cron runs bin/conch and bin/conchd as real processes: building the test builds the tools.
if(TARGET it_cron AND TARGET conch_tool AND TARGET conchd_tool)
  add_dependencies(it_cron conch_tool conchd_tool)
endif()
# The cron example runs as a test against a throwaway etcd
# (tests/packaging/with-etcd appends its endpoint as the last argument).
if(TARGET example_cron_daemon)
  add_test(NAME example.cron_daemon
           COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/packaging/with-etcd $<TARGET_FILE:example_cron_daemon>)
  set_tests_properties(example.cron_daemon PROPERTIES TIMEOUT 90 LABELS example)
endif()
