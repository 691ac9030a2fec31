# Install rules for what an operator uses beside the binaries: the systemd
# units (packaging/systemd/ -> <prefix>/lib/systemd/system), the shell
# completions (packaging/completion/ -> bash-completion and zsh site
# functions), the example elect environment, and the man pages generated at
# build time (cmake/manpages.cmake). Included from cmake/install.cmake's caller.
set(CONCH_SYSTEMD_UNITDIR lib/systemd/system
    CACHE STRING "Where the systemd units are installed, relative to the prefix")

file(GLOB conch_units CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/packaging/systemd/*.service)
if(conch_units)
  install(FILES ${conch_units} DESTINATION ${CONCH_SYSTEMD_UNITDIR})
endif()
if(EXISTS ${PROJECT_SOURCE_DIR}/packaging/systemd/elect.env.example)
  install(FILES ${PROJECT_SOURCE_DIR}/packaging/systemd/elect.env.example
          DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples)
endif()
if(EXISTS ${PROJECT_SOURCE_DIR}/packaging/completion/conch.bash)
  install(FILES ${PROJECT_SOURCE_DIR}/packaging/completion/conch.bash
          DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions RENAME conch)
  install(FILES ${PROJECT_SOURCE_DIR}/packaging/completion/conch.bash
          DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions RENAME conchd)
endif()
if(EXISTS ${PROJECT_SOURCE_DIR}/packaging/completion/_conch)
  install(FILES ${PROJECT_SOURCE_DIR}/packaging/completion/_conch
          DESTINATION ${CMAKE_INSTALL_DATADIR}/zsh/vendor-completions)
endif()
if(CONCH_MAN_PAGES)
  install(FILES ${CONCH_MAN_PAGES} DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
endif()
