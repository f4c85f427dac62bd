//! The HTTP face of todoke: one axum router serving the JSON API and the server-rendered pages.
//!
//! Request flow: [`middleware::authenticate`] resolves who is calling into a [`context::Caller`];
//! handlers ask the domain's access policy through [`context::Caller::allow`] before touching
//! storage; errors are [`error::AppError`]s, written in the caller's language by
//! [`middleware::render_errors`]. [`router`] is the single inventory of routes and the source of
//! the OpenAPI document.

pub mod api;
pub mod auth;
pub mod context;
pub mod deadline;
pub mod error;
pub mod extract;
pub mod filing;
pub mod middleware;
pub mod pages;
pub mod router;
pub mod state;
pub mod texts;

pub use router::{app, inventory, openapi, serve, shutdown_signal};
pub use state::{AppState, ServerConfig};
