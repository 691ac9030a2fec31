# CONCH_STATIC_TOOLS — the tools (conch, conchd) linked against the static
# archives of gRPC, protobuf, abseil, upb, re2, c-ares, OpenSSL and zlib, and
# with -static-libstdc++ -static-libgcc, so a start of `conch` maps glibc
# alone (libc, libm, the loader) instead of some sixty shared libraries
# (about half of a short `conch sema -- CMD` was the dynamic loader). glibc
# stays shared, so NSS (getaddrinfo of "localhost") keeps working; the static
# OpenSSL is Debian's own build, reading the same /usr/lib/ssl configuration.
#
# Only the two tool executables are affected: the library targets, the
# installed CMake package, the tests, examples and benchmark link as before.
# Defaults ON when every archive is present (Debian: libgrpc++-dev,
# libprotobuf-dev, libabsl-dev, libre2-dev, libc-ares-dev, libssl-dev and
# zlib1g-dev ship them), OFF otherwise; -DCONCH_STATIC_TOOLS=OFF links the
# tools like the rest.
#
# Included from examples/CMakeLists.txt; defines conch_link_tool(target).

find_package(PkgConfig REQUIRED)
# The static closure of what conch::etcd links (pkg-config --static order).
pkg_check_modules(CONCH_STATIC QUIET grpc++ protobuf absl_time)

# Linked shared even in a static tool: the C library's pieces.
set(conch_static_shared_libs dl rt m atomic pthread)

set(conch_static_archives)
set(conch_static_missing)
if(CONCH_STATIC_FOUND)
  set(names ${CONCH_STATIC_STATIC_LIBRARIES})
  list(REMOVE_DUPLICATES names)
  foreach(name ${names})
    if(name IN_LIST conch_static_shared_libs)
      continue()
    endif()
    find_library(conch_static_lib_${name} NAMES lib${name}.a HINTS ${CONCH_STATIC_STATIC_LIBRARY_DIRS})
    mark_as_advanced(conch_static_lib_${name})
    if(conch_static_lib_${name})
      list(APPEND conch_static_archives ${conch_static_lib_${name}})
    else()
      list(APPEND conch_static_missing lib${name}.a)
    endif()
  endforeach()
endif()

if(CONCH_STATIC_FOUND AND NOT conch_static_missing)
  set(conch_static_default ON)
else()
  set(conch_static_default OFF)
endif()
option(CONCH_STATIC_TOOLS "Link conch and conchd against static gRPC/protobuf/abseil (faster start)"
       ${conch_static_default})
# A static tool is position-dependent unless asked (address-space layout
# randomisation of the executable's own image, at a start-up cost).
option(CONCH_TOOLS_PIE "Link the static tools as position-independent executables" OFF)
if(CONCH_STATIC_TOOLS AND NOT conch_static_default)
  message(FATAL_ERROR "CONCH_STATIC_TOOLS: static archives missing: "
                      "${conch_static_missing}${CONCH_STATIC_FOUND}")
endif()

if(CONCH_STATIC_TOOLS)
  # The generated etcd stubs without their shared gRPC link: the same archive,
  # its include directories, then the static closure (one group: the archives
  # need each other in cycles) and glibc's pieces.
  add_library(conch_static_tool_deps INTERFACE)
  target_compile_features(conch_static_tool_deps INTERFACE cxx_std_20)
  target_include_directories(conch_static_tool_deps INTERFACE
    $<TARGET_PROPERTY:conch,INTERFACE_INCLUDE_DIRECTORIES>
    $<TARGET_PROPERTY:conch_etcd_proto,INTERFACE_INCLUDE_DIRECTORIES>
    ${CONCH_STATIC_INCLUDE_DIRS})
  target_compile_options(conch_static_tool_deps INTERFACE ${CONCH_STATIC_CFLAGS_OTHER})
  target_link_libraries(conch_static_tool_deps INTERFACE
    $<TARGET_FILE:conch_etcd_proto>
    "$<LINK_GROUP:RESCAN,${conch_static_archives}>"
    Threads::Threads atomic rt dl)
  target_link_options(conch_static_tool_deps INTERFACE
    -static-libstdc++ -static-libgcc LINKER:--gc-sections LINKER:-O1 LINKER:--as-needed)
  if(CONCH_TOOLS_PIE)
    # The ~37k relative relocations of a static C++ PIE packed (DT_RELR, glibc
    # 2.36, binutils 2.38): 9 KB to read at start instead of 900 KB.
    include(CheckLinkerFlag)
    check_linker_flag(CXX "LINKER:-z,pack-relative-relocs" CONCH_LINKER_PACK_RELATIVE_RELOCS)
    if(CONCH_LINKER_PACK_RELATIVE_RELOCS)
      target_link_options(conch_static_tool_deps INTERFACE LINKER:-z,pack-relative-relocs)
    endif()
  else()
    # Position-dependent: nothing to relocate at start. A PIE start writes
    # the ~37k relocated pointers of its 545 KB of vtables and tables, a
    # private copy of ~130 pages per process: `conch --version` 2.3 -> 1.7
    # ms of CPU, 380 -> 245 page faults; `conch sema x -- true` about 1 ms
    # sooner (bench/RESULTS.md).
    target_compile_options(conch_static_tool_deps INTERFACE -fno-pie)
    target_link_options(conch_static_tool_deps INTERFACE -no-pie)
  endif()
endif()

# Links a tool executable with the etcd transport: statically as above, or
# through conch::etcd like every other target.
function(conch_link_tool target)
  if(CONCH_STATIC_TOOLS)
    add_dependencies(${target} conch_etcd_proto)
    target_link_libraries(${target} PRIVATE conch_static_tool_deps)
    target_compile_options(${target} PRIVATE -ffunction-sections -fdata-sections)
  else()
    target_link_libraries(${target} PRIVATE conch::etcd)
  endif()
endfunction()
