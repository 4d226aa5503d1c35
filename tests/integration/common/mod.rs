//! Shared harness: test PKI, private dockerd, dockgate process, docker CLI, raw TLS client.
#![allow(dead_code)]

pub mod ca;
pub mod cli;
pub mod dockerd;
pub mod expect;
pub mod files;
pub mod gate;
pub mod http;
pub mod pki;
pub mod tls;
pub mod util;

pub use cli::{Container, Docker};
pub use dockerd::TEST_IMAGE;
pub use gate::{Gate, GateBuilder};
pub use pki::pki;
