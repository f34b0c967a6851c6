//! hostdev's Kubernetes DRA driver as a library (the binary is a thin
//! `main`): publishing ResourceSlices from hostdevd's offer, the kubelet's
//! plugin registration and DRA v1 gRPC, CDI specs and device metadata files.

/// Code generated from `proto/` (the kubelet's published gRPC API).
pub mod proto {
    /// `k8s.io.kubelet.pkg.apis.dra.v1`.
    #[allow(missing_docs, clippy::all, clippy::pedantic)]
    pub mod dra_v1 {
        tonic::include_proto!("k8s.io.kubelet.pkg.apis.dra.v1");
    }
    /// `v1` (the kubelet's `DRAResourceHealth` service).
    #[allow(missing_docs, clippy::all, clippy::pedantic)]
    pub mod health_v1 {
        tonic::include_proto!("v1");
    }
    /// `pluginregistration` (v1).
    #[allow(missing_docs, clippy::all, clippy::pedantic)]
    pub mod registration {
        tonic::include_proto!("pluginregistration");
    }
}

pub mod authority;
pub mod cdi;
pub mod config;
pub mod daemon;
pub mod events;
pub mod files;
pub mod health;
pub mod metadata;
pub mod names;
pub mod plugin;
pub mod publish;
pub mod run;
pub mod slices;
