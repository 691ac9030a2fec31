# Man pages and shell completion (label packaging):
#   packaging.man_pages    every flag of each --help is in the generated page
#   packaging.completion   bash completion offers real job/office names from a throwaway etcd
if(TARGET man_pages)
  add_test(NAME packaging.man_pages
           COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/packaging/man-check ${CONCH_MAN_DIR} ${CMAKE_RUNTIME_OUTPUT_DIRECTORY})
  set_tests_properties(packaging.man_pages PROPERTIES LABELS "packaging;operability" TIMEOUT 120)
endif()
if(TARGET conch_tool)
  add_test(NAME packaging.completion
           COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/packaging/completion-check ${PROJECT_SOURCE_DIR}
                   ${CMAKE_RUNTIME_OUTPUT_DIRECTORY})
  set_tests_properties(packaging.completion PROPERTIES LABELS "packaging;operability" TIMEOUT 120)
endif()
