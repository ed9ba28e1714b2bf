//! Compiles `kiln/v1/*.proto` without `protoc`: protox parses them, tonic-prost-build
//! writes messages, clients and servers, pbjson-build writes the proto3 JSON mapping.

use std::{env, fs, path::PathBuf};

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    let mut protos: Vec<PathBuf> =
        fs::read_dir("kiln/v1")?.map(|entry| entry.map(|e| e.path())).collect::<Result<_, _>>()?;
    protos.retain(|p| p.extension().is_some_and(|ext| ext == "proto"));
    protos.sort();

    let fds = protox::compile(&protos, ["."])?;
    // Reflection serves this set; protox's path ignores the builder's descriptor option.
    let descriptor_bytes = fds.encode_to_vec();
    fs::write(out_dir.join("kiln_descriptor.bin"), &descriptor_bytes)?;

    tonic_prost_build::configure()
        .build_transport(false)
        // RPCs that no release implements yet answer UNIMPLEMENTED instead of not compiling.
        .generate_default_stubs(true)
        // Well-known types come from pbjson-types, which carry their JSON mapping.
        .compile_well_known_types(true)
        .extern_path(".google.protobuf", "::pbjson_types")
        // Undecodable requests are the client's error (see src/codec.rs).
        .codec_path("crate::codec::ProtoCodec")
        .compile_fds_with_config(fds, type_names())?;

    pbjson_build::Builder::new()
        .register_descriptors(&descriptor_bytes)?
        .preserve_proto_field_names()
        .emit_fields()
        .build(&[".kiln.v1"])?;

    println!("cargo:rerun-if-changed=kiln/v1");
    for proto in &protos {
        println!("cargo:rerun-if-changed={}", proto.display());
    }
    Ok(())
}

/// Messages know their full protobuf name (`prost::Name`), so code that pairs a message
/// type with an RPC (the gateway's REST routes) can check the pairing against the contract.
fn type_names() -> tonic_prost_build::Config {
    let mut config = tonic_prost_build::Config::new();
    config.enable_type_names();
    config
}
