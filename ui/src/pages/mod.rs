//! The screens, one module per area.

pub mod applications;
pub mod auth;
pub mod dashboard;
pub mod models;
pub mod prompts;
pub mod records;
pub mod settings;
pub mod webhooks;
pub mod workflows;
