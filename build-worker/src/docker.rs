//! The image step: the rendered tree goes to the Docker engine as a tar (bollard, the
//! classic builder, which the engine's API drives), built with the application's build
//! args, tagged `kiln/<workspace>/<application>:<n>` and `:latest` and labelled with the
//! workspace, application and build ids. Its output lines become the build's log.
//! Dropping the step's future drops the request, which aborts the engine's build.

use std::collections::HashMap;

use anyhow::Context;
use bollard::{
    Docker,
    query_parameters::{BuildImageOptionsBuilder, TagImageOptionsBuilder},
};
use futures::StreamExt;

/// Longest a request to the engine may take: a cold build of a generated service
/// compiles its dependencies.
const ENGINE_TIMEOUT_SECS: u64 = 3600;

/// Labels every image Kiln builds carries.
pub const LABEL_WORKSPACE: &str = "dev.kiln.workspace";
pub const LABEL_APPLICATION: &str = "dev.kiln.application";
pub const LABEL_BUILD: &str = "dev.kiln.build";

/// Where the engine is: `KILN_DOCKER_HOST` (`unix://…` or `tcp://…`), else the local
/// defaults (`DOCKER_HOST`, then the local socket).
pub fn connect(host: Option<&str>) -> anyhow::Result<Docker> {
    let version = bollard::API_DEFAULT_VERSION;
    let docker = match host {
        Some(host) if host.starts_with("unix://") || host.starts_with('/') => {
            Docker::connect_with_socket(host, ENGINE_TIMEOUT_SECS, version)
        }
        Some(host) => Docker::connect_with_http(host, ENGINE_TIMEOUT_SECS, version),
        None => Docker::connect_with_local_defaults().map(|docker| docker.with_timeout(timeout())),
    };
    docker.with_context(|| match host {
        Some(host) => format!("no Docker engine at KILN_DOCKER_HOST `{host}`"),
        None => "no Docker engine on this machine (KILN_DOCKER_HOST is not set)".to_string(),
    })
}

fn timeout() -> std::time::Duration {
    std::time::Duration::from_secs(ENGINE_TIMEOUT_SECS)
}

/// The engine, when it answers, at the API version both speak; why not otherwise.
pub async fn reachable(docker: &Docker) -> Result<Docker, String> {
    let answered = tokio::time::timeout(std::time::Duration::from_secs(5), docker.ping()).await;
    match answered {
        Ok(Ok(_)) => docker.clone().negotiate_version().await.map_err(|e| format!("the Docker engine: {e}")),
        Ok(Err(e)) => Err(format!("no Docker engine answers ({e})")),
        Err(_) => Err("no Docker engine answered within 5 s".into()),
    }
}

/// What to build.
pub struct ImageRequest<'a> {
    /// `kiln/<workspace>/<application>`.
    pub repository: String,
    pub tag: String,
    pub build_args: HashMap<String, String>,
    pub labels: HashMap<String, String>,
    /// The build context, an uncompressed tar.
    pub context: Vec<u8>,
    pub network: Option<&'a str>,
}

/// The built image.
pub struct BuiltImage {
    pub id: String,
    pub tags: Vec<String>,
    pub size: Option<i64>,
}

/// What the engine says while it builds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildOutput {
    /// A line of the build's output.
    Line(String),
    /// The Dockerfile did not build: the engine's reason.
    Failed(String),
}

/// Starts building the image: the engine's output, as it comes. The stream's error is
/// the engine failing, not the build; [`finish_image`] tags what it built.
pub fn build_image(
    docker: &Docker,
    request: ImageRequest<'_>,
) -> impl futures::Stream<Item = anyhow::Result<Vec<BuildOutput>>> + Send + 'static {
    let versioned = format!("{}:{}", request.repository, request.tag);
    let mut options = BuildImageOptionsBuilder::default()
        .dockerfile("Dockerfile")
        .t(&versioned)
        .rm(true)
        .forcerm(true)
        .buildargs(&request.build_args)
        .labels(&request.labels);
    if let Some(network) = request.network {
        options = options.networkmode(network);
    }
    let docker = docker.clone();
    let options = options.build();
    let body = bollard::body_full(request.context.into());
    // The engine's stream borrows its client: a task owns both and hands lines on. When
    // the receiver goes (the run stopped), the task drops the request, which aborts the
    // engine's build.
    let (sender, receiver) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        let mut output = docker.build_image(options, None, Some(body));
        loop {
            // A build step may print nothing for minutes: the receiver going away ends
            // the task (and the request) at once, not at the next line.
            let item = tokio::select! {
                () = sender.closed() => return,
                item = output.next() => match item {
                    Some(item) => item,
                    None => return,
                },
            };
            let lines = item.map_err(engine_failure).map(|info| {
                if let Some(error) = info.error_detail.and_then(|detail| detail.message) {
                    return vec![BuildOutput::Failed(error.trim().to_string())];
                }
                let text = without_colours(&info.stream.unwrap_or_default());
                text.lines().map(str::trim_end).filter(|l| !l.is_empty()).map(|l| BuildOutput::Line(l.into())).collect()
            });
            if sender.send(lines).await.is_err() {
                return;
            }
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(receiver)
}

/// `text` without terminal colour sequences (the engine colours a step's stderr).
fn without_colours(text: &str) -> String {
    let mut plain = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // ESC [ parameters… final letter
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
}

/// Tags a built `repository:tag` as `:latest` too and reads its id and size.
pub async fn finish_image(docker: &Docker, repository: &str, tag: &str) -> anyhow::Result<BuiltImage> {
    let versioned = format!("{repository}:{tag}");
    let inspected = docker.inspect_image(&versioned).await.context("inspecting the built image")?;
    let latest = TagImageOptionsBuilder::default().repo(repository).tag("latest").build();
    docker.tag_image(&versioned, Some(latest)).await.context("tagging the image :latest")?;
    Ok(BuiltImage {
        id: inspected.id.unwrap_or_default(),
        tags: vec![versioned, format!("{repository}:latest")],
        size: inspected.size,
    })
}

/// What an error of the engine's build stream means: the engine refusing the build (a
/// base image it cannot get, a bad Dockerfile) fails the build, reaching it failing is
/// worth another attempt.
fn engine_failure(error: bollard::errors::Error) -> anyhow::Error {
    use bollard::errors::Error;
    match error {
        Error::DockerResponseServerError { status_code, message } if status_code < 500 => {
            anyhow::Error::new(Refused(message))
        }
        Error::DockerStreamError { error } => anyhow::Error::new(Refused(error)),
        other => anyhow::anyhow!("the Docker engine failed: {other}"),
    }
}

/// The engine refused to build the image, for the reason it gave.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

#[cfg(test)]
mod tests {
    #[test]
    fn colours_are_taken_out_of_the_engine_output() {
        assert_eq!(super::without_colours("\u{1b}[91m    Updating index\n\u{1b}[0m"), "    Updating index\n");
        assert_eq!(super::without_colours("Step 1/2 : FROM x"), "Step 1/2 : FROM x");
    }
}
