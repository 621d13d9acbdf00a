//! What the bot worker's integration tests share.
#![allow(dead_code)]

pub mod chat;
pub mod fake_llm;
