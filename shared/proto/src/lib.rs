//! Generated protobuf messages and gRPC stubs for every Warden service.
#![allow(unreachable_pub, clippy::large_enum_variant, clippy::derive_partial_eq_without_eq)]

pub mod auth {
    pub mod v1 {
        tonic::include_proto!("warden.auth.v1");
    }
}
pub mod token {
    pub mod v1 {
        tonic::include_proto!("warden.token.v1");
    }
}
pub mod key {
    pub mod v1 {
        tonic::include_proto!("warden.key.v1");
    }
}
pub mod rbac {
    pub mod v1 {
        tonic::include_proto!("warden.rbac.v1");
    }
}

/// The encoded `FileDescriptorSet` of all Warden protos, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("warden_descriptor");

pub use prost_types::Timestamp;
