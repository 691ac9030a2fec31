#!/bin/sh
echo "coverage is not available in conch's offline Bazel build; use CMake" >&2
exit 1
