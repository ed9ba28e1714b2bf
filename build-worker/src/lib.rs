//! build-worker: BuildService and the consumer of the `app_builds` queue (render an
//! application's templates with tera, build the image with bollard).
//!
//! Nothing of it is served yet: the role starts, answers health and reflection, and
//! registers no service until the build pipeline exists.

/// The gRPC services this role serves, by full name.
pub const SERVICES: &[&str] = &[];
