//! Clients for outside services, in plain Rust (no mlua): each speaks the service's real HTTP
//! API through reqwest. The Lua modules and the daemon call these; tests point their base URLs
//! at fakes on 127.0.0.1 (tests/fakes/).

pub mod discord;
pub mod llm;
pub mod social;
