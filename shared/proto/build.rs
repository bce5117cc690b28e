//! Compiles `proto/warden/**` with protox (pure Rust, no system `protoc`) and writes the
//! descriptor set that gRPC reflection serves.
use prost::Message;
use std::path::PathBuf;

const PROTOS: [&str; 4] = [
    "warden/auth/v1/auth.proto",
    "warden/token/v1/token.proto",
    "warden/key/v1/key.proto",
    "warden/rbac/v1/rbac.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={}", root.join(proto).display());
    }
    let fds = protox::compile(PROTOS, [&root])?;
    std::fs::write(out.join("warden_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure().build_client(true).build_server(true).compile_fds(fds)?;
    Ok(())
}
