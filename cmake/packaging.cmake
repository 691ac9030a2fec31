# The Debian package: `cpack -G DEB` in a build tree (after building it) makes
# conch_<version>_<arch>.deb with everything `cmake --install` puts under the
# prefix: the tools, the headers, the CMake package (conch::conch, conch::etcd),
# the man pages, the shell completions and the systemd units.
#
#   cmake --build build && (cd build && cpack -G DEB)
#   dpkg -i build/conch_0.1.0_amd64.deb
#
# Run-time dependencies are found by dpkg-shlibdeps from the binaries; the
# headers' build-time needs (gRPC, protobuf, abseil, nlohmann-json, Boost) are
# listed so that find_package(conch) works on the machine that installs it.
set(CPACK_PACKAGE_NAME conch)
set(CPACK_PACKAGE_VENDOR "conch")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "Coordination recipes on etcd v3: elections, semaphores, cron")
set(CPACK_PACKAGE_DESCRIPTION
    "conch runs commands under etcd leases: `conch elect` while leading an office,\n"
    "`conch sema` while holding one of N slots, and `conchd` runs cron jobs once per\n"
    "tick across any number of daemons. Also the header-only C++20 library and its\n"
    "CMake package (find_package(conch)).")
string(REPLACE ";" "" CPACK_PACKAGE_DESCRIPTION "${CPACK_PACKAGE_DESCRIPTION}")
set(CPACK_PACKAGE_CONTACT "conch maintainers <conch@localhost>")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_GENERATOR DEB)
set(CPACK_STRIP_FILES ON)

set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS
    "libgrpc++-dev, libprotobuf-dev, libabsl-dev, nlohmann-json3-dev, libboost-dev")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "etcd-server, etcd-client")
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION "${CPACK_PACKAGE_DESCRIPTION_SUMMARY}\n${CPACK_PACKAGE_DESCRIPTION}")

include(CPack)
