# it_metrics scrapes bin/conch and bin/conchd: building the test builds the tools.
if(TARGET it_metrics AND TARGET conch_tool AND TARGET conchd_tool)
  add_dependencies(it_metrics conch_tool conchd_tool)
  set_tests_properties(integration.metrics PROPERTIES LABELS "integration;operability")
endif()
