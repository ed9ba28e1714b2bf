//! Applications and their builds: create one from models, a template set and build args;
//! generate it and follow the build live (`WatchBuild`), with its steps as progress;
//! past builds; the artifact downloaded over the same grpc-web connection; run an image
//! and see its deployment.

use std::collections::HashMap;

use futures_util::StreamExt as _;
use kiln_proto::v1::{
    Application, ApplicationConfig, Build, BuildLogLine, CancelBuildRequest, CreateApplicationRequest,
    DeleteDeploymentRequest, Deployment, GenerateApplicationRequest, GetApplicationRequest, GetBuildArtifactRequest,
    GetBuildRequest, ListApplicationsRequest, ListBuildsRequest, ListDeploymentsRequest, RunBuildRequest,
    WatchBuildRequest, build_event,
};
use sycamore::prelude::*;

use crate::{
    api::ApiError,
    app::use_shared,
    call,
    widgets::{ErrorNotice, Load, Loading, badge, event_value, field_error, load_each, when},
};

const FINAL: [&str; 3] = ["succeeded", "failed", "cancelled"];

#[component]
pub fn ApplicationList() -> View {
    let shared = use_shared();
    let listed = create_signal(Load::<Vec<Application>>::Loading);
    let attempt = create_signal(0u32);
    let creating = create_signal(false);
    load_each(attempt, {
        let api = shared.api.clone();
        move || {
            let api = api.clone();
            async move {
                match call!(
                    api,
                    applications.list_applications(ListApplicationsRequest { page_size: 100, ..Default::default() })
                ) {
                    Ok(page) => listed.set(Load::Ready(page.applications)),
                    Err(error) => listed.set(Load::Failed(error)),
                }
            }
        }
    });
    let body = move || match listed.get_clone() {
        Load::Loading => view! { Loading(what="applications") },
        Load::Failed(error) => view! { ErrorNotice(error=error, retry=move || attempt.set(attempt.get() + 1)) },
        Load::Ready(apps) if apps.is_empty() => view! {
            div(class="empty card") { p { "No applications yet. An application turns some of your models into a service you can build and run." } }
        },
        Load::Ready(apps) => {
            let rows: Vec<View> = apps
                .into_iter()
                .map(|a| {
                    let href = format!("/applications/{}", a.id);
                    let models = a.model_ids.len().to_string();
                    view! { tr { td { a(href=href) { (a.name) } } td { code { (a.slug) } } td { (a.template_set) } td { (models) } } }
                })
                .collect();
            view! {
                div(class="table-wrap") {
                    table { thead { tr { th { "Application" } th { "Image name" } th { "Templates" } th { "Models" } } } tbody { (rows) } }
                }
            }
        }
    };
    view! {
        div(class="page-head") {
            h1 { "Applications" }
            button(class="primary", r#type="button", on:click=move |_| creating.set(!creating.get())) { "New application" }
        }
        (if creating.get() { view! { NewApplication {} } } else { view! {} })
        (body())
    }
}

#[component]
fn NewApplication() -> View {
    let shared = use_shared();
    let name = create_signal(String::new());
    let template_set = create_signal("rust-axum".to_string());
    let picked = create_signal(Vec::<String>::new());
    let build_args = create_signal(String::new());
    let errors = create_signal(Vec::<(String, String)>::new());
    let failure = create_signal(None::<String>);
    let busy = create_signal(false);
    let user_models = {
        let shared = shared.clone();
        move || match shared.models.get_clone() {
            Load::Ready(models) => models.into_iter().filter(|m| !m.is_system).collect::<Vec<_>>(),
            _ => Vec::new(),
        }
    };
    let submit = {
        let shared = shared.clone();
        move |event: web_sys::SubmitEvent| {
            event.prevent_default();
            let mut args = HashMap::new();
            for line in build_args.get_clone().lines().filter(|l| !l.trim().is_empty()) {
                match line.split_once('=') {
                    Some((key, value)) => {
                        args.insert(key.trim().to_string(), value.trim().to_string());
                    }
                    None => {
                        errors.set(vec![("config.build_args".into(), format!("“{line}” is not NAME=value"))]);
                        return;
                    }
                }
            }
            busy.set(true);
            let request = CreateApplicationRequest {
                name: name.get_clone(),
                model_ids: picked.get_clone(),
                template_set: template_set.get_clone(),
                config: Some(ApplicationConfig { build_args: args, port: 8080, ..Default::default() }),
                ..Default::default()
            };
            let api = shared.api.clone();
            sycamore::futures::spawn_local_scoped(async move {
                let created = call!(api, applications.create_application(request));
                busy.set(false);
                match created {
                    Ok(created) => sycamore_router::navigate(&format!(
                        "/applications/{}",
                        created.application.map(|a| a.id).unwrap_or_default()
                    )),
                    Err(error) => {
                        errors.set(error.fields.clone());
                        failure.set(Some(error.message));
                    }
                }
            });
        }
    };
    let choices = move || {
        user_models()
            .into_iter()
            .map(|m| {
                let id = m.id.clone();
                let checked = picked.with(|p| p.contains(&id));
                view! {
                    label(style="display:flex;gap:.5rem;align-items:center;font-weight:400") {
                        input(r#type="checkbox", checked=checked, on:change=move |e: web_sys::Event| {
                            let on = event_value(&e) == "true";
                            let id = id.clone();
                            picked.update(|p| { p.retain(|x| *x != id); if on { p.push(id); } });
                        })
                        (m.label_plural)
                    }
                }
            })
            .collect::<Vec<View>>()
    };
    view! {
        form(class="form card", on:submit=submit, novalidate=true, style="margin-bottom:1rem") {
            (failure.get_clone().map(|m| view! { div(class="notice error", role="alert") { (m) } }))
            div(class="field") {
                label(r#for="app-name") { "Name" }
                input(id="app-name", on:input=move |e: web_sys::Event| name.set(event_value(&e)))
                (field_error(errors, "name".into()))
            }
            div(class="field") {
                label { "Models" }
                (choices())
                (field_error(errors, "model_ids".into()))
            }
            div(class="field") {
                label(r#for="app-templates") { "Template set" }
                input(id="app-templates", prop:value=template_set.get_clone(), on:input=move |e: web_sys::Event| template_set.set(event_value(&e)))
                (field_error(errors, "template_set".into()))
            }
            div(class="field") {
                label(r#for="app-args") { "Build args " span(class="hint") { "one NAME=value per line" } }
                textarea(id="app-args", class="code", on:input=move |e: web_sys::Event| build_args.set(event_value(&e)))
                (field_error(errors, "config.build_args".into()))
            }
            div(class="form-actions") { button(class="primary", r#type="submit", disabled=busy.get()) { "Create application" } }
        }
    }
}

#[component(inline_props)]
pub fn ApplicationDetail(id: String) -> View {
    let shared = use_shared();
    let application = create_signal(Load::<Application>::Loading);
    let builds = create_signal(Vec::<Build>::new());
    let deployments = create_signal(Vec::<Deployment>::new());
    let attempt = create_signal(0u32);
    let failure = create_signal(None::<ApiError>);
    let busy = create_signal(false);
    load_each(attempt, {
        let (api, id) = (shared.api.clone(), id.clone());
        move || {
            let (api, id) = (api.clone(), id.clone());
            async move {
                match call!(api, applications.get_application(GetApplicationRequest { id: id.clone() })) {
                    Ok(found) => application.set(Load::Ready(found.application.unwrap_or_default())),
                    Err(error) => application.set(Load::Failed(error)),
                }
                let request = ListBuildsRequest { application_id: id.clone(), page_size: 20, ..Default::default() };
                if let Ok(listed) = call!(api, builds.list_builds(request)) {
                    builds.set(listed.builds);
                }
                if let Ok(listed) = call!(api, builds.list_deployments(ListDeploymentsRequest { application_id: id })) {
                    deployments.set(listed.deployments);
                }
            }
        }
    });
    let generate = {
        let (api, id) = (shared.api.clone(), id.clone());
        move |_| {
            busy.set(true);
            let (api, id) = (api.clone(), id.clone());
            sycamore::futures::spawn_local_scoped(async move {
                let generated = call!(api, applications.generate_application(GenerateApplicationRequest { id }));
                busy.set(false);
                match generated {
                    Ok(generated) => sycamore_router::navigate(&format!(
                        "/builds/{}",
                        generated.build.map(|b| b.id).unwrap_or_default()
                    )),
                    Err(error) => failure.set(Some(error)),
                }
            });
        }
    };
    // Each part follows its own signal, so a list arriving never replaces the header
    // (and the Generate button under the pointer).
    let build_list = move || {
        let rows: Vec<View> = builds
            .get_clone()
            .into_iter()
            .map(|b| {
                let href = format!("/builds/{}", b.id);
                let (number, at) = (format!("#{}", b.number), when(b.created_at.as_ref()));
                view! { tr { td { a(href=href) { (number) } } td { (badge(&b.status)) } td(class="muted") { (at) } } }
            })
            .collect();
        if rows.is_empty() {
            view! { p(class="muted") { "No builds yet: Generate starts one." } }
        } else {
            view! { div(class="table-wrap") { table { thead { tr { th { "Build" } th { "Status" } th { "Started" } } } tbody { (rows) } } } }
        }
    };
    // Stops a deployment's container (after asking) and drops it from the list.
    let stop = {
        let (api, application) = (shared.api.clone(), id.clone());
        move |deployment: String| {
            if !window().confirm_with_message("Stop this deployment and remove its container?").unwrap_or(false) {
                return;
            }
            let (api, application_id) = (api.clone(), application.clone());
            sycamore::futures::spawn_local_scoped(async move {
                let request = DeleteDeploymentRequest { application_id, id: deployment.clone() };
                match call!(api, builds.delete_deployment(request)) {
                    Ok(_) => deployments.update(|list| list.retain(|d| d.id != deployment)),
                    Err(error) => failure.set(Some(error)),
                }
            });
        }
    };
    let deployment_list = move || {
        let rows: Vec<View> = deployments
            .get_clone()
            .into_iter()
            .map(|d| {
                let (number, url, href) = (format!("#{}", d.build_number), d.url.clone(), d.url.clone());
                let (stop, id) = (stop.clone(), d.id.clone());
                view! {
                    tr {
                        td { (number) } td { (badge(&d.status)) } td { (d.health) }
                        td { a(href=href, rel="external", target="_blank") { (url) } }
                        td { button(r#type="button", class="danger", on:click=move |_| stop(id.clone())) { "Stop" } }
                    }
                }
            })
            .collect();
        if rows.is_empty() {
            view! { p(class="muted") { "Nothing runs yet: run a succeeded build from its page." } }
        } else {
            view! { div(class="table-wrap") { table { thead { tr { th { "Build" } th { "Status" } th { "Health" } th { "URL" } th { span(class="visually-hidden") { "Actions" } } } } tbody { (rows) } } } }
        }
    };
    let content = move || match application.get_clone() {
        Load::Loading => view! { Loading {} },
        Load::Failed(error) => view! { ErrorNotice(error=error, retry=move || attempt.set(attempt.get() + 1)) },
        Load::Ready(app) => {
            let (generate, deployment_list) = (generate.clone(), deployment_list.clone());
            let (name, slug, set) = (app.name.clone(), app.slug.clone(), app.template_set.clone());
            let models = app.model_ids.len().to_string();
            view! {
                div(class="page-head") {
                    h1 { (name) }
                    button(class="primary", r#type="button", disabled=busy.get(), on:click=generate) { (if busy.get() { "Starting…" } else { "Generate" }) }
                }
                (failure.get_clone().map(|e| view! { div(class="notice error", role="alert") { (e.message) } }))
                div(class="card") {
                    dl(class="detail") {
                        dt { "Image name" } dd { code { (slug) } }
                        dt { "Template set" } dd { (set) }
                        dt { "Models" } dd { (models) }
                    }
                }
                h2 { "Builds" }
                (build_list())
                h2 { "Deployments" }
                (deployment_list())
            }
        }
    };
    view! { (content()) }
}

#[component(inline_props)]
pub fn BuildPage(id: String) -> View {
    let shared = use_shared();
    let build = create_signal(None::<Build>);
    let lines = create_signal(Vec::<BuildLogLine>::new());
    let failure = create_signal(None::<ApiError>);
    let notice = create_signal(None::<String>);
    let deployment = create_signal(None::<Deployment>);
    let attempt = create_signal(0u32);
    create_effect({
        let (api, id) = (shared.api.clone(), id.clone());
        move || {
            attempt.track();
            failure.set(None);
            let (api, id) = (api.clone(), id.clone());
            sycamore::futures::spawn_local_scoped(async move {
                match call!(api, builds.get_build(GetBuildRequest { id: id.clone() })) {
                    Ok(found) => build.set(found.build),
                    Err(error) => {
                        failure.set(Some(error));
                        return;
                    }
                }
                // Follow the log from the last line seen (a retry picks up where it broke).
                let after = lines.with(|l| l.last().map(|l| l.sequence).unwrap_or(0));
                let mut stream = match call!(api, builds.watch_build(WatchBuildRequest { id, after_sequence: after })) {
                    Ok(stream) => stream,
                    Err(error) => {
                        failure.set(Some(error));
                        return;
                    }
                };
                while let Some(event) = stream.next().await {
                    match event.map(|e| e.event) {
                        Ok(Some(build_event::Event::Log(line))) => lines.update(|l| l.push(line)),
                        Ok(Some(build_event::Event::Build(now))) => build.set(Some(now)),
                        Ok(None) => {}
                        Err(status) => {
                            let finished =
                                build.with(|b| b.as_ref().is_some_and(|b| FINAL.contains(&b.status.as_str())));
                            if !finished {
                                failure.set(Some(ApiError::from(status)));
                            }
                            return;
                        }
                    }
                }
            });
        }
    });
    let cancel = {
        let (api, id) = (shared.api.clone(), id.clone());
        move |_| {
            let (api, id) = (api.clone(), id.clone());
            sycamore::futures::spawn_local_scoped(async move {
                if let Err(error) = call!(api, builds.cancel_build(CancelBuildRequest { id })) {
                    notice.set(Some(error.message));
                }
            });
        }
    };
    let run = {
        let (api, id) = (shared.api.clone(), id.clone());
        move |_| {
            let (api, id) = (api.clone(), id.clone());
            sycamore::futures::spawn_local_scoped(async move {
                match call!(api, builds.run_build(RunBuildRequest { id })) {
                    Ok(ran) => deployment.set(ran.deployment),
                    Err(error) => notice.set(Some(error.message)),
                }
            });
        }
    };
    let download = {
        let (api, id) = (shared.api.clone(), id.clone());
        move |_| {
            let (api, id) = (api.clone(), id.clone());
            sycamore::futures::spawn_local_scoped(async move {
                match download_artifact(&api, id).await {
                    Ok(()) => {}
                    Err(error) => notice.set(Some(error.message)),
                }
            });
        }
    };
    let progress = move || {
        build.with(|b| match b {
            None => (0, 3),
            Some(b) if FINAL.contains(&b.status.as_str()) => (3, 3),
            Some(b) => match b.status.as_str() {
                "queued" => (0, 3),
                "rendering" => (1, 3),
                _ => (2, 3),
            },
        })
    };
    let header = move || {
        build.get_clone().map(|b| {
            let (cancel, run, download) = (cancel.clone(), run.clone(), download.clone());
            let title = format!("Build #{}", b.number);
            let running = !FINAL.contains(&b.status.as_str());
            let succeeded = b.status == "succeeded";
            let runnable = succeeded && !b.image_skipped;
            let app = format!("/applications/{}", b.application_id);
            let detail = if !b.error.is_empty() {
                b.error.clone()
            } else if b.image_skipped {
                format!("No image: {}", b.image_skipped_reason)
            } else {
                b.image_tags.first().cloned().unwrap_or_default()
            };
            view! {
                div(class="page-head") {
                    a(href=app) { "← Application" }
                    h1 { (title) }
                    (badge(&b.status))
                }
                p(class="muted", data-testid="build-detail") { (detail) }
                div(class="form-actions", style="margin:0 0 1rem") {
                    (if running { view! { button(r#type="button", class="danger", on:click=cancel) { "Cancel" } } } else { view! {} })
                    (if succeeded { view! { button(r#type="button", on:click=download) { "Download source" } } } else { view! {} })
                    (if runnable { view! { button(r#type="button", class="primary", on:click=run) { "Run" } } } else { view! {} })
                }
            }
        })
    };
    view! {
        (match failure.get_clone() {
            Some(error) => view! { ErrorNotice(error=error, retry=move || attempt.set(attempt.get() + 1)) },
            None => view! {},
        })
        (if build.with(Option::is_none) && failure.with(Option::is_none) { view! { Loading(what="the build") } } else { view! {} })
        (header())
        (notice.get_clone().map(|m| view! { div(class="notice error", role="alert") { (m) } }))
        (deployment.get_clone().map(|d| {
            let (url, href) = (d.url.clone(), d.url.clone());
            view! { div(class="card", style="margin-bottom:1rem") { "Running at " a(href=href, rel="external", target="_blank") { (url) } " (" (d.status) ")" } }
        }))
        progress(max=progress().1.to_string(), value=progress().0.to_string(), aria-label="Build progress") {}
        h2 { "Log" }
        pre(class="log", data-testid="build-log", aria-live="polite") {
            (lines.get_clone().into_iter().map(|l| format!("{}\n", l.message)).collect::<String>())
        }
    }
}

/// Streams the build's source archive over grpc-web and hands it to the browser as a file.
async fn download_artifact(api: &crate::api::Api, id: String) -> Result<(), ApiError> {
    let mut stream = call!(api, builds.get_build_artifact(GetBuildArtifactRequest { id }))?;
    let (mut bytes, mut file_name) = (Vec::new(), String::from("source.tar.gz"));
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(ApiError::from)?;
        if !chunk.file_name.is_empty() {
            file_name = chunk.file_name;
        }
        bytes.extend_from_slice(&chunk.data);
    }
    let parts = js_sys::Array::of1(&js_sys::Uint8Array::from(bytes.as_slice()));
    let options = web_sys::BlobPropertyBag::new();
    options.set_type("application/gzip");
    let failed = |_| ApiError {
        code: tonic::Code::Internal,
        message: "the browser could not save the file".into(),
        fields: Vec::new(),
    };
    let blob = web_sys::Blob::new_with_u8_array_sequence_and_options(&parts, &options).map_err(failed)?;
    let url = web_sys::Url::create_object_url_with_blob(&blob).map_err(failed)?;
    use sycamore::web::wasm_bindgen::JsCast;
    let link = document().create_element("a").map_err(failed)?.unchecked_into::<web_sys::HtmlAnchorElement>();
    link.set_href(&url);
    link.set_download(&file_name);
    link.click();
    let _ = web_sys::Url::revoke_object_url(&url);
    Ok(())
}
