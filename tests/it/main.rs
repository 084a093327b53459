//! The integration tests, in one binary so that a clean build links them once: the whole
//! binary against real kernels, namespaces and the programs users run it with. Each module is
//! one subject; `common` builds the test topology (see its documentation).
//! `cargo test --test it MODULE::` runs one subject.

mod common;

mod api;
mod busy_poll;
mod capture;
mod cli;
mod dhcp;
mod dns_failover;
mod emulators;
mod flood;
mod forwards;
mod generated_files;
mod ipv6;
mod layers;
mod library;
mod library_tap;
mod lossy_links;
mod nat;
mod netns;
mod offload;
mod pasta;
mod pasta_options;
mod podman;
mod queues;
mod rootlesskit;
mod sandbox;
mod security;
mod socks5;
mod tftp;
mod transports;
mod udp;
mod vxlan;
