"""Generates the gRPC stubs of reelforge's protos into reelforge/v1/ with grpcio-tools.

    python generate.py [PROTO_DIR]      # default: ../../proto

Run it before `pip install .` (the stubs are built from the protos, not kept in git, so
they never drift from them). Needs `grpcio-tools`.
"""
import os
import sys

from grpc_tools import protoc
import grpc_tools

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    proto_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "..", "proto")
    proto_dir = os.path.abspath(proto_dir)
    include = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    protos = sorted(
        os.path.join("reelforge", "v1", name)
        for name in os.listdir(os.path.join(proto_dir, "reelforge", "v1"))
        if name.endswith(".proto")
    )
    # The stubs import each other as `reelforge.v1.<name>_pb2`: generated at the package
    # root, they land in reelforge/v1/ beside the hand-written layer.
    code = protoc.main(
        ["protoc", f"-I{proto_dir}", f"-I{include}", f"--python_out={HERE}",
         f"--pyi_out={HERE}", f"--grpc_python_out={HERE}"] + protos
    )
    if code != 0:
        sys.exit(f"protoc failed ({code}) on {proto_dir}")
    init = os.path.join(HERE, "reelforge", "v1", "__init__.py")
    with open(init, "w") as f:
        f.write('"""Generated from proto/reelforge/v1 by generate.py; do not edit."""\n')
    print(f"generated {len(protos)} protos into {os.path.dirname(init)}")


if __name__ == "__main__":
    main()
