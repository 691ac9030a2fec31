# it_status runs bin/conch as real processes: building the test builds the tool.
if(TARGET it_status AND TARGET conch_tool)
  add_dependencies(it_status conch_tool)
  set_tests_properties(integration.status PROPERTIES LABELS "integration;operability")
endif()
