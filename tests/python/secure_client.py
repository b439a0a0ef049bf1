"""A client no one here wrote: Python's grpcio, over TLS with a CA bundle (and, for a
server that asks for one, a client certificate), an API key as call credentials.
Stubs are generated from the repository's protos with grpcio-tools into a temporary
directory. Prints what the server answered as JSON.

    secure_client.py PROTO_DIR HOST:PORT CA_PEM TOKEN [CLIENT_CERT CLIENT_KEY]
"""
import json
import os
import sys
import tempfile


def main():
    proto_dir, target, ca, token = sys.argv[1:5]
    client_cert = client_key = None
    if len(sys.argv) > 6:
        client_cert, client_key = sys.argv[5:7]
    out = tempfile.mkdtemp()
    from grpc_tools import protoc
    import grpc_tools

    include = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    protos = [
        os.path.join("reelforge/v1", name)
        for name in sorted(os.listdir(os.path.join(proto_dir, "reelforge/v1")))
        if name.endswith(".proto")
    ]
    code = protoc.main(
        ["protoc", f"-I{proto_dir}", f"-I{include}", f"--python_out={out}", f"--grpc_python_out={out}"]
        + protos
    )
    if code != 0:
        sys.exit(f"protoc failed ({code})")
    sys.path.insert(0, out)
    import grpc
    from reelforge.v1 import admin_pb2, admin_pb2_grpc, ingest_pb2, ingest_pb2_grpc

    def read(path):
        with open(path, "rb") as f:
            return f.read()

    tls = grpc.ssl_channel_credentials(
        root_certificates=read(ca),
        private_key=read(client_key) if client_key else None,
        certificate_chain=read(client_cert) if client_cert else None,
    )
    options = [("grpc.ssl_target_name_override", "localhost")]
    result = {}
    keyed = grpc.composite_channel_credentials(tls, grpc.access_token_call_credentials(token))
    with grpc.secure_channel(target, keyed, options=options) as channel:
        me = admin_pb2_grpc.AdminStub(channel).WhoAmI(admin_pb2.WhoAmIRequest(), timeout=30)
        result["key_id"] = me.key_id
        result["tenant"] = me.tenant
        result["role"] = admin_pb2.Role.Name(me.role)
        videos = ingest_pb2_grpc.IngestStub(channel).ListVideos(
            ingest_pb2.ListVideosRequest(), timeout=30
        )
        result["videos"] = len(videos.videos)
    # The same TLS without the key.
    with grpc.secure_channel(target, tls, options=options) as channel:
        try:
            ingest_pb2_grpc.IngestStub(channel).ListVideos(ingest_pb2.ListVideosRequest(), timeout=30)
            result["without_key"] = "OK"
        except grpc.RpcError as e:
            result["without_key"] = e.code().name
            result["without_key_message"] = e.details()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
