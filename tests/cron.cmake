# it_cron runs bin/conch and bin/conchd as real processes: building the test builds the tools.
if(TARGET it_cron AND TARGET conch_tool AND TARGET conchd_tool)
  add_dependencies(it_cron conch_tool conchd_tool)
endif()
if(TARGET it_cron_controls AND TARGET conch_tool AND TARGET conchd_tool)
  add_dependencies(it_cron_controls conch_tool conchd_tool)
endif()
