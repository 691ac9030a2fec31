"""The repositories conch's Bazel build needs, all on local disk (offline).

In conch's own WORKSPACE and in a workspace that depends on conch:

    local_repository(name = "conch", path = "/src/conch")
    load("@conch//bazel:deps.bzl", "conch_dependencies")
    conch_dependencies(conch_dir = "/src/conch")

A repository the calling workspace already declared (a real rules_cc, say) is
left alone.
"""

# Debian's packages: bazel-rules-java and bazel-platforms.
_DEBIAN_BAZEL = {
    "rules_java": "/usr/share/bazel/rules/java",
    "platforms": "/usr/share/bazel/tools/platforms",
}

# The system libraries under /usr, each with a build file in this directory.
_SYSTEM = {
    "system_grpc": "grpc.BUILD",
    "system_protobuf": "protobuf.BUILD",
    "system_absl": "absl.BUILD",
    "system_boost": "boost.BUILD",
    "system_nlohmann_json": "nlohmann_json.BUILD",
    "system_cli11": "cli11.BUILD",
    "system_catch2": "catch2.BUILD",
    "system_rapidcheck": "rapidcheck.BUILD",
}

def conch_dependencies(conch_dir = "."):
    """Declares every repository conch needs.

    Args:
      conch_dir: conch's source tree, absolute or relative to the calling
        workspace's root (the stand-ins for @rules_cc and
        @remote_coverage_tools live in its bazel/ directory).
    """

    # Bazel's own tools load @rules_cc//cc:defs.bzl, and `bazel test` needs
    # @remote_coverage_tools; the real ones would be downloaded.
    stand_ins = {
        "rules_cc": conch_dir + "/bazel/rules_cc",
        "remote_coverage_tools": conch_dir + "/bazel/remote_coverage_tools",
    }
    stand_ins.update(_DEBIAN_BAZEL)
    for name, path in stand_ins.items():
        if not native.existing_rule(name):
            native.local_repository(name = name, path = path)

    for name, build_file in _SYSTEM.items():
        if not native.existing_rule(name):
            native.new_local_repository(
                name = name,
                path = "/usr",
                build_file = str(Label("//bazel:" + build_file)),
            )
