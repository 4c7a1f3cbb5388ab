//! Store semantics shared by both backends, each test run on SQLite and on PostgreSQL
//! (`on_each_backend!`): the agent log and state, and the Discord outbox. The bus, task and
//! social outbox tests live beside their services.

mod agents;
mod discord;
