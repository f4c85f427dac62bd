//! The integration suite: the real server on port 0 against a real database (SQLite always,
//! PostgreSQL too when TODOKE_TEST_POSTGRES_URL is set), driven over HTTP and through the binary.

mod access_matrix;
mod audit;
mod browser;
mod browser_sessions;
mod cli;
mod errors;
mod helpers;
mod imports;
mod notifications;
mod openapi;
mod organisations;
mod statistics;
