# Install rules and the CMake package: headers, conch::conch, conch::etcd_proto
# (static library + generated headers + .proto files), conch::etcd,
# <libdir>/cmake/conch/conch{Config,ConfigVersion,Targets}.cmake, and the
# conch and conchd tools when they are built.
#
#   cmake --install build --prefix /opt/conch
#   # consumer: find_package(conch 0.1 CONFIG REQUIRED)
#   #           target_link_libraries(app PRIVATE conch::etcd)
include(CMakePackageConfigHelpers)

set(CONCH_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/conch
    CACHE STRING "Where conchConfig.cmake is installed, relative to the prefix")

# Every header under include/, whatever is added later.
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
        FILES_MATCHING PATTERN "*.hpp" PATTERN "*.h")

# The generated protobuf/gRPC headers sit next to their .proto files, at the
# path the etcd transport includes them by ("conch/proto/rpc.grpc.pb.h").
install(FILES ${CONCH_ETCD_PROTO_HEADERS} ${CONCH_ETCD_PROTO_FILES}
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/conch/proto)

install(TARGETS conch conch_etcd_proto conch_etcd
        EXPORT conchTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

# The tools, when this build makes them (CONCH_BUILD_EXAMPLES).
foreach(tool conch_tool conchd_tool)
  if(TARGET ${tool})
    install(TARGETS ${tool} RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} OPTIONAL)
  endif()
endforeach()

install(EXPORT conchTargets
        NAMESPACE conch::
        FILE conchTargets.cmake
        DESTINATION ${CONCH_INSTALL_CMAKEDIR})

configure_package_config_file(
  ${CMAKE_CURRENT_LIST_DIR}/conchConfig.cmake.in
  ${PROJECT_BINARY_DIR}/cmake/conchConfig.cmake
  INSTALL_DESTINATION ${CONCH_INSTALL_CMAKEDIR})
# 0.x follows the same rule as later majors: a consumer asking for 0.1 accepts
# any 0.y >= 0.1. The static proto library makes the package arch-specific.
write_basic_package_version_file(
  ${PROJECT_BINARY_DIR}/cmake/conchConfigVersion.cmake
  VERSION ${PROJECT_VERSION}
  COMPATIBILITY SameMajorVersion)
install(FILES ${PROJECT_BINARY_DIR}/cmake/conchConfig.cmake
              ${PROJECT_BINARY_DIR}/cmake/conchConfigVersion.cmake
        DESTINATION ${CONCH_INSTALL_CMAKEDIR})
