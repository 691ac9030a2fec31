# it_notify runs bin/conch and bin/conchd as real processes: building the test builds the tools.
if(TARGET it_notify AND TARGET conch_tool AND TARGET conchd_tool)
  add_dependencies(it_notify conch_tool conchd_tool)
  set_tests_properties(integration.notify PROPERTIES LABELS "integration;operability")
endif()
