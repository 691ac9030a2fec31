# it_sema_tool runs bin/conch as real processes: building the test builds the tool.
if(TARGET it_sema_tool AND TARGET conch_tool)
  add_dependencies(it_sema_tool conch_tool)
endif()
