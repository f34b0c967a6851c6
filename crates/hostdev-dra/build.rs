//! Compiles the kubelet's gRPC definitions in `proto/` (written in the
//! project from Kubernetes' published API) with protox, a Rust protobuf
//! compiler, so building needs no `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/dra_v1.proto",
        "proto/dra_health_v1.proto",
        "proto/pluginregistration_v1.proto",
    ];
    for f in files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
