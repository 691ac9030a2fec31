# Man pages generated at build time from the tools' own --help text
# (scripts/help2man), so a page cannot drift from its command line:
# conch(1), conch-elect(1), conch-sema(1), conch-cron(1), conch-status(1), conchd(1).
# Included from examples/CMakeLists.txt once the tool targets exist; sets
# CONCH_MAN_PAGES (the .1.gz files, installed by cmake/operability.cmake) and
# CONCH_MAN_PAGE_NAMES.
find_package(Python3 COMPONENTS Interpreter)
if(NOT Python3_FOUND OR NOT TARGET conch_tool OR NOT TARGET conchd_tool)
  return()
endif()

set(conch_man_dir ${PROJECT_BINARY_DIR}/man)
set(conch_help2man ${PROJECT_SOURCE_DIR}/scripts/help2man)
set(conch_see_also "conch(1), conch-elect(1), conch-sema(1), conch-cron(1), conch-status(1), conchd(1)")
set(pages)
set(names)
# name | tool target | words after the binary | extra subcommands (TITLE=words)
function(conch_man_page name target words)
  set(extras)
  foreach(e ${ARGN})
    string(REPLACE "@BIN@" "$<TARGET_FILE:${target}>" e "${e}")
    list(APPEND extras --extra "${e}")
  endforeach()
  add_custom_command(
    OUTPUT ${conch_man_dir}/${name}.1 ${conch_man_dir}/${name}.1.gz
    COMMAND ${CMAKE_COMMAND} -E make_directory ${conch_man_dir}
    COMMAND ${Python3_EXECUTABLE} ${conch_help2man} --name ${name} --version ${PROJECT_VERSION} --gzip
            --see-also ${conch_see_also} --out ${conch_man_dir}/${name}.1 ${extras}
            -- $<TARGET_FILE:${target}> ${words} --help
    DEPENDS ${target} ${conch_help2man}
    COMMENT "man page ${name}(1) from --help"
    VERBATIM)
endfunction()

conch_man_page(conch conch_tool "")
conch_man_page(conch-elect conch_tool elect)
conch_man_page(conch-sema conch_tool sema)
conch_man_page(conch-cron conch_tool cron "conch cron add=@BIN@ cron add" "conch cron ls=@BIN@ cron ls"
               "conch cron rm=@BIN@ cron rm" "conch cron pause=@BIN@ cron pause"
               "conch cron resume=@BIN@ cron resume" "conch cron run=@BIN@ cron run")
conch_man_page(conch-status conch_tool status)
conch_man_page(conchd conchd_tool "")
foreach(name conch conch-elect conch-sema conch-cron conch-status conchd)
  list(APPEND pages ${conch_man_dir}/${name}.1.gz)
  list(APPEND names ${name})
endforeach()
add_custom_target(man_pages ALL DEPENDS ${pages})
set(CONCH_MAN_PAGES ${pages} CACHE INTERNAL "generated man pages")
string(REPLACE ";" " " names "${names}")
set(CONCH_MAN_PAGE_NAMES "${names}" CACHE INTERNAL "man page names")
set(CONCH_MAN_DIR ${conch_man_dir} CACHE INTERNAL "where the man pages are generated")
