//! Fake outside services for tests: real servers on 127.0.0.1 speaking the real protocol.
//! Never used by the product.
#![allow(dead_code)]

pub mod discord;
pub mod http;
pub mod llm;
pub mod social;
