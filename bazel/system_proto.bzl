"""C++ and gRPC code from .proto files with the system protoc and grpc_cpp_plugin.

    load("//bazel:system_proto.bzl", "system_cc_grpc_library")
    system_cc_grpc_library(
        name = "etcd_proto",
        srcs = glob(["conch/proto/*.proto"]),
    )

Every .proto in srcs (paths relative to the package, which is the import root)
yields .pb.{h,cc} and .grpc.pb.{h,cc}; the headers are included by their path
under the package ("conch/proto/rpc.grpc.pb.h"), as the CMake build does.
"""

def system_cc_grpc_library(name, srcs, deps = [], visibility = None):
    stems = [s[:-len(".proto")] for s in srcs]
    hdrs = [s + ".pb.h" for s in stems] + [s + ".grpc.pb.h" for s in stems]
    ccs = [s + ".pb.cc" for s in stems] + [s + ".grpc.pb.cc" for s in stems]

    # The import root is this package's directory, wherever the repository is
    # checked out (main repository or external/<name>/): strip the first
    # source's package-relative path from its exec path.
    first, rel = "$(execpath %s)" % srcs[0], srcs[0]
    native.genrule(
        name = name + "_gen",
        srcs = srcs,
        outs = hdrs + ccs,
        tools = [
            "@system_protobuf//:protoc",
            "@system_grpc//:grpc_cpp_plugin",
        ],
        cmd = " ".join([
            "root=%s; root=$${root%%%s};" % (first, rel),
            "$(execpath @system_protobuf//:protoc)",
            "-I$${root:-.}",
            "--cpp_out=$(RULEDIR)",
            "--grpc_out=$(RULEDIR)",
            "--plugin=protoc-gen-grpc=$(execpath @system_grpc//:grpc_cpp_plugin)",
            "$(SRCS)",
        ]),
        message = "Generating C++ and gRPC code from %d .proto files" % len(srcs),
    )
    native.cc_library(
        name = name,
        srcs = ccs,
        hdrs = hdrs,
        includes = ["."],
        deps = deps + [
            "@system_grpc//:grpc++",
            "@system_protobuf//:protobuf",
        ],
        visibility = visibility,
    )
