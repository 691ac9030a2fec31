// conch/version.hpp — the one place the version is written.
//
// CMake reads the three numbers for `project(VERSION ...)`, the single-header
// generator for its banner, and the tools print `conch::version_string` for
// `--version` and record it in holder records.
#pragma once

#include <string_view>

#define CONCH_VERSION_MAJOR 0
#define CONCH_VERSION_MINOR 1
#define CONCH_VERSION_PATCH 0

#define CONCH_VERSION_TEXT_(x) #x
#define CONCH_VERSION_TEXT(x) CONCH_VERSION_TEXT_(x)
/// "MAJOR.MINOR.PATCH", spelled from the three numbers above.
#define CONCH_VERSION_STRING              \
  CONCH_VERSION_TEXT(CONCH_VERSION_MAJOR) \
  "." CONCH_VERSION_TEXT(CONCH_VERSION_MINOR) "." CONCH_VERSION_TEXT(CONCH_VERSION_PATCH)

namespace conch {

inline constexpr std::string_view version_string = CONCH_VERSION_STRING;

}  // namespace conch
