//! Records of any model, served the same way by whoever owns them: model-svc the user
//! models' records (an `ent_<plural>` table in each workspace's namespace), app-svc those
//! of the platform kinds it owns (applications, components, templates, workflows,
//! prompts) in its own tables. Each owner gives [`engine::Records`] its own
//! [`engine::ModelSource`]; names, field specs, the codec and every statement are
//! written once, here.

pub mod api;
pub mod codec;
pub mod engine;
pub mod feed;
pub mod fields;
pub mod names;
