//! Integration tests of the engine adapters against real servers and SQLite files.

mod introspect;
mod lost;
mod post;
mod write;
