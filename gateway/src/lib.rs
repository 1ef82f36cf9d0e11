//! The gateway: the VPC Lattice control plane (service networks, services, listeners, rules,
//! target groups), the L7 data plane that routes to them, the AWS-compatible API listener, the
//! declarative config, and the `trellis` command that wires every engine together.

pub mod api;
pub mod cli;
pub mod config;
pub mod controller;
pub mod dataplane;
pub mod lattice;
