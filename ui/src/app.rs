//! The app's frame: its routes, the state every page shares (the connection, the
//! workspace's models, the theme), the navigation built from the models, and the rule
//! that a signed-out visitor goes to `/login` and comes back where they were going.

use kiln_proto::v1::{ListModelsRequest, Model};
use sycamore::prelude::*;
use sycamore_router::{HistoryIntegration, Route, Router, navigate_replace};

use crate::{
    api::{Api, ApiError},
    call,
    nav::Navigation,
    pages,
    widgets::Load,
};

#[derive(Route, Clone, Debug, PartialEq)]
pub enum AppRoute {
    #[to("/")]
    Home,
    #[to("/login")]
    Login,
    #[to("/register")]
    Register,
    #[to("/dashboard")]
    Dashboard,
    #[to("/models")]
    Models,
    #[to("/models/new")]
    NewModel,
    #[to("/models/<id>")]
    Model { id: String },
    #[to("/models/<id>/edit")]
    EditModel { id: String },
    #[to("/applications")]
    Applications,
    #[to("/applications/<id>")]
    Application { id: String },
    #[to("/builds/<id>")]
    Build { id: String },
    #[to("/settings")]
    Settings,
    #[to("/webhooks")]
    Webhooks,
    #[to("/webhooks/<id>")]
    Webhook { id: String },
    // Workflows and prompts open in screens of their own; their lists are the generic ones.
    #[to("/workflows/new")]
    NewWorkflow,
    #[to("/workflows/<id>")]
    Workflow { id: String },
    #[to("/prompts/new")]
    NewPrompt,
    #[to("/prompts/<id>")]
    Prompt { id: String },
    #[to("/<plural>")]
    Records { plural: String },
    #[to("/<plural>/new")]
    NewRecord { plural: String },
    #[to("/<plural>/<id>")]
    Record { plural: String, id: String },
    #[to("/<plural>/<id>/edit")]
    EditRecord { plural: String, id: String },
    #[not_found]
    NotFound,
}

impl AppRoute {
    fn public(&self) -> bool {
        matches!(self, AppRoute::Login | AppRoute::Register)
    }
}

/// What every page shares.
#[derive(Clone)]
pub struct Shared {
    pub api: Api,
    /// The workspace's models, as `ListModels` last said.
    pub models: Signal<Load<Vec<Model>>>,
    pub signed_in: Signal<bool>,
}

impl Shared {
    /// The model whose plural is `plural`, if it is loaded.
    pub fn model(&self, plural: &str) -> Option<Model> {
        self.models.with(|models| match models {
            Load::Ready(models) => models.iter().find(|m| m.plural == plural).cloned(),
            _ => None,
        })
    }

    /// Asks for the models again (after one was created, changed or deleted).
    pub fn reload_models(&self) {
        let shared = self.clone();
        sycamore::futures::spawn_local(async move {
            let loaded = list_models(&shared.api).await;
            match loaded {
                Ok(models) => shared.models.set(Load::Ready(models)),
                Err(error) => {
                    if !matches!(shared.models.get_clone(), Load::Ready(_)) {
                        shared.models.set(Load::Failed(error));
                    }
                }
            }
        });
    }
}

async fn list_models(api: &Api) -> Result<Vec<Model>, ApiError> {
    let mut models = Vec::new();
    let mut page_token = String::new();
    loop {
        let page =
            call!(api, models.list_models(ListModelsRequest { page_size: 100, page_token: page_token.clone() }))?;
        models.extend(page.models);
        if page.next_page_token.is_empty() {
            return Ok(models);
        }
        page_token = page.next_page_token;
    }
}

pub fn use_shared() -> Shared {
    use_context::<Shared>()
}

/// Where the gateway is: the page's `<meta name="kiln-api">` when set (the UI served on
/// a port of its own), else this page's origin.
fn gateway_url() -> String {
    let document = document();
    let configured = document
        .query_selector("meta[name=kiln-api]")
        .ok()
        .flatten()
        .and_then(|meta| meta.get_attribute("content"))
        .filter(|content| !content.is_empty());
    configured.unwrap_or_else(|| window().location().origin().unwrap_or_default())
}

pub fn mount() {
    let root = document().get_element_by_id("app");
    let app = || {
        let api = Api::new(gateway_url());
        let shared = Shared { signed_in: create_signal(api.signed_in()), models: create_signal(Load::Loading), api };
        theme::apply(&theme::stored());
        provide_context(shared.clone());
        {
            let shared = shared.clone();
            shared.api.clone().on_signed_out(move || {
                shared.signed_in.set(false);
                shared.models.set(Load::Loading);
                go_to_login();
            });
        }
        if shared.signed_in.get() {
            shared.reload_models();
        }
        reload_models_on_return(shared.clone());
        view! { App {} }
    };
    match root {
        Some(root) => {
            root.set_inner_html("");
            sycamore::render_to(app, &root);
        }
        None => sycamore::render(app),
    }
}

/// Models changed elsewhere (another tab, a teammate) appear when the user comes back
/// to this window. Registered once, for the life of the page.
fn reload_models_on_return(shared: Shared) {
    use wasm_bindgen::{JsCast, closure::Closure};
    let on_focus = Closure::<dyn Fn()>::new(move || {
        if shared.signed_in.get() {
            shared.reload_models();
        }
    });
    let _ = window().add_event_listener_with_callback("focus", on_focus.as_ref().unchecked_ref());
    on_focus.forget();
}

/// To `/login`, remembering where the visitor was going.
pub fn go_to_login() {
    let location = window().location();
    let here = format!("{}{}", location.pathname().unwrap_or_default(), location.search().unwrap_or_default());
    if here.starts_with("/login") || here.starts_with("/register") {
        return;
    }
    let next = js_sys::encode_uri_component(&here);
    navigate_replace(&format!("/login?next={next}"));
}

#[component]
fn App() -> View {
    let shared = use_shared();
    view! {
        Router(
            integration=HistoryIntegration::new(),
            view=move |route: ReadSignal<AppRoute>| {
                let shared = shared.clone();
                // A signed-out visitor of a private page goes to /login (and back after).
                create_effect({
                    let shared = shared.clone();
                    move || {
                        let current = route.get_clone();
                        if !shared.signed_in.get() && !current.public() {
                            go_to_login();
                        } else if current == AppRoute::Home {
                            navigate_replace("/dashboard");
                        }
                    }
                });
                view! {
                    div(class="root") {
                        (match route.get_clone() {
                            AppRoute::Login => view! { pages::auth::Login {} },
                            AppRoute::Register => view! { pages::auth::Register {} },
                            other => {
                                if shared.signed_in.get() {
                                    view! { Shell(route=other) }
                                } else {
                                    view! { div(class="boot") { "Signing in…" } }
                                }
                            }
                        })
                    }
                }
            }
        )
    }
}

/// The page with the navigation beside it.
#[component(inline_props)]
fn Shell(route: AppRoute) -> View {
    let page = match route.clone() {
        AppRoute::Home | AppRoute::Dashboard => view! { pages::dashboard::Dashboard {} },
        AppRoute::Models => view! { pages::models::ModelList {} },
        AppRoute::NewModel => view! { pages::models::ModelBuilder() },
        AppRoute::EditModel { id } => view! { pages::models::ModelBuilder(id=id) },
        AppRoute::Model { id } => view! { pages::models::ModelDetail(id=id) },
        AppRoute::Applications => view! { pages::applications::ApplicationList {} },
        AppRoute::Application { id } => view! { pages::applications::ApplicationDetail(id=id) },
        AppRoute::Build { id } => view! { pages::applications::BuildPage(id=id) },
        AppRoute::Settings => view! { pages::settings::Settings {} },
        AppRoute::Webhooks => view! { pages::webhooks::WebhookList {} },
        AppRoute::Webhook { id } => view! { pages::webhooks::WebhookDetail(id=id) },
        AppRoute::NewWorkflow => view! { pages::workflows::WorkflowDesigner() },
        AppRoute::Workflow { id } => view! { pages::workflows::WorkflowDesigner(id=id) },
        AppRoute::NewPrompt => view! { pages::prompts::PromptEditor() },
        AppRoute::Prompt { id } => view! { pages::prompts::PromptEditor(id=id) },
        AppRoute::Records { plural } => view! { pages::records::RecordList(plural=plural) },
        AppRoute::NewRecord { plural } => view! { pages::records::RecordForm(plural=plural) },
        AppRoute::EditRecord { plural, id } => view! { pages::records::RecordForm(plural=plural, id=id) },
        AppRoute::Record { plural, id } => view! { pages::records::RecordDetail(plural=plural, id=id) },
        AppRoute::Login | AppRoute::Register | AppRoute::NotFound => view! { NotFound {} },
    };
    let path = window().location().pathname().unwrap_or_default();
    view! {
        div(class="shell") {
            Navigation(path=path)
            main(class="page", id="main") { (page) }
        }
    }
}

#[component(inline_props)]
fn Navigation(path: String) -> View {
    let shared = use_shared();
    let open = create_signal(false);
    let tabs = create_memo({
        let shared = shared.clone();
        move || {
            shared.models.with(|models| {
                if let Load::Ready(models) = models { Navigation::from_models(models) } else { Default::default() }
            })
        }
    });
    let path = create_signal(path);
    let tab = move |href: String, label: String| {
        let active = {
            let href = href.clone();
            move || path.with(|p| *p == href || p.starts_with(&format!("{href}/")))
        };
        let class = move || if active() { "tab active" } else { "tab" };
        view! { a(class=class(), href=href, on:click=move |_| open.set(false)) { (label) } }
    };
    let group = move |heading: &'static str, tabs: Vec<crate::nav::Tab>, testid: &'static str| {
        let links: Vec<View> = tabs.into_iter().map(|t| tab(t.href, t.label)).collect();
        view! {
            div(class="nav-group", data-testid=testid) {
                p(class="nav-heading") { (heading) }
                (links)
            }
        }
    };
    let failed = {
        let shared = shared.clone();
        move || matches!(shared.models.get_clone(), Load::Failed(_))
    };
    let retry = {
        let shared = shared.clone();
        move || shared.reload_models()
    };
    view! {
        nav(class=move || if open.get() { "nav open" } else { "nav" }, aria-label="Main") {
            div(class="nav-top") {
                a(class="brand", href="/dashboard") { "Kiln" }
                button(class="nav-toggle", r#type="button", aria-expanded=move || open.get().to_string(),
                    on:click=move |_| open.set(!open.get())) { "Menu" }
            }
            div(class="nav-body") {
                (tab("/dashboard".into(), "Dashboard".into()))
                (if failed() {
                    let retry = retry.clone();
                    view! { div(class="notice error") { "Models did not load. " button(class="link", on:click=move |_| retry()) { "Retry" } } }
                } else { view! {} })
                (group("Your models", tabs.with(|t| t.user.clone()), "user-models"))
                (group("Platform", tabs.with(|t| t.system.clone()), "system-models"))
                div(class="nav-group") {
                    (tab("/webhooks".into(), "Webhooks".into()))
                    (tab("/settings".into(), "Settings".into()))
                }
            }
        }
    }
}

#[component]
fn NotFound() -> View {
    view! {
        div(class="empty") {
            h1 { "Not found" }
            p { "There is no page here." }
            a(class="button", href="/dashboard") { "Go to the dashboard" }
        }
    }
}

/// The light or dark theme: kept in this browser, applied as `data-theme` on `<html>`.
pub mod theme {
    use sycamore::prelude::*;

    const KEY: &str = "kiln.theme";

    pub fn stored() -> String {
        let storage = window().local_storage().ok().flatten();
        let stored = storage.and_then(|s| s.get_item(KEY).ok().flatten());
        stored.unwrap_or_else(|| {
            let dark = window().match_media("(prefers-color-scheme: dark)").ok().flatten().is_some_and(|m| m.matches());
            if dark { "dark".into() } else { "light".into() }
        })
    }

    /// Takes the theme saved in the user's profile, when it names one.
    pub fn follow(profile_theme: &str) {
        if matches!(profile_theme, "light" | "dark") {
            apply(profile_theme);
        }
    }

    pub fn apply(theme: &str) {
        if let Some(html) = document().document_element() {
            let _ = html.set_attribute("data-theme", theme);
        }
        if let Some(storage) = window().local_storage().ok().flatten() {
            let _ = storage.set_item(KEY, theme);
        }
    }
}
