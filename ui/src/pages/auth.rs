//! Signing in and registering. Both end where the visitor was going (`?next=`), or on
//! the dashboard.

use kiln_proto::v1::{LoginRequest, RegisterRequest};
use sycamore::prelude::*;
use sycamore_router::navigate_replace;

use crate::{
    api::{ApiError, CALL_DEADLINE_MS, sleep_ms, within},
    app::{theme, use_shared},
    widgets::{event_value, field_error},
};

/// Where to go after signing in: the `next` of a sign-in page's address if it is a
/// path of this app; the page itself when the visitor is still on the page that sent
/// them here (the address changes just after the sign-in form is made).
fn next_page() -> String {
    let location = window().location();
    let (path, search) = (location.pathname().unwrap_or_default(), location.search().unwrap_or_default());
    let next = if path.starts_with("/login") || path.starts_with("/register") {
        search
            .trim_start_matches('?')
            .split('&')
            .find_map(|pair| pair.strip_prefix("next="))
            .and_then(|raw| js_sys::decode_uri_component(raw).ok())
            .map(String::from)
    } else {
        Some(format!("{path}{search}"))
    };
    next.filter(|path| path.starts_with('/') && !path.starts_with("//") && path != "/")
        .filter(|path| !path.starts_with("/login") && !path.starts_with("/register"))
        .unwrap_or_else(|| "/dashboard".into())
}

#[component]
pub fn Login() -> View {
    view! { AuthForm(register=false) }
}

#[component]
pub fn Register() -> View {
    view! { AuthForm(register=true) }
}

#[component(inline_props)]
fn AuthForm(register: bool) -> View {
    let shared = use_shared();
    let email = create_signal(String::new());
    let password = create_signal(String::new());
    let display_name = create_signal(String::new());
    let busy = create_signal(false);
    let error = create_signal(None::<String>);
    let fields = create_signal(Vec::<(String, String)>::new());
    let submit = move |event: web_sys::SubmitEvent| {
        event.prevent_default();
        if busy.get() {
            return;
        }
        busy.set(true);
        error.set(None);
        fields.set(Vec::new());
        let shared = shared.clone();
        sycamore::futures::spawn_local_scoped(async move {
            let mut auth = shared.api.auth();
            let deadline = sleep_ms(CALL_DEADLINE_MS);
            let answer = if register {
                let request = RegisterRequest {
                    email: email.get_clone(),
                    password: password.get_clone(),
                    display_name: display_name.get_clone(),
                };
                within(auth.register(request), deadline).await.map(|r| {
                    let r = r.into_inner();
                    (r.user, r.tokens)
                })
            } else {
                let request = LoginRequest { email: email.get_clone(), password: password.get_clone() };
                within(auth.login(request), deadline).await.map(|r| {
                    let r = r.into_inner();
                    (r.user, r.tokens)
                })
            };
            busy.set(false);
            match answer.map_err(ApiError::from) {
                Ok((user, Some(tokens))) => {
                    // The theme chosen on another browser comes along with the account.
                    if let Some(settings) = user.and_then(|u| u.settings) {
                        theme::follow(&settings.theme);
                    }
                    shared.api.sign_in(&tokens);
                    shared.signed_in.set(true);
                    shared.reload_models();
                    navigate_replace(&next_page());
                }
                Ok((_, None)) => error.set(Some("The server answered without a session.".into())),
                Err(failure) => {
                    fields.set(failure.fields.clone());
                    error.set(Some(failure.message));
                }
            }
        });
    };
    let (title, action, other, other_href, other_text) = if register {
        ("Create your workspace", "Create account", "Have an account?", "/login", "Sign in")
    } else {
        ("Sign in to Kiln", "Sign in", "New here?", "/register", "Create an account")
    };
    let other_href = format!("{other_href}?next={}", js_sys::encode_uri_component(&next_page()));
    view! {
        div(class="auth") {
            div(class="card") {
                h1 { (title) }
                (error.get_clone().map(|message| view! { div(class="notice error", role="alert") { (message) } }))
                form(on:submit=submit, novalidate=true) {
                    (if register {
                        view! {
                            div(class="field") {
                                label(r#for="display_name") { "Name " span(class="hint") { "(optional)" } }
                                input(id="display_name", name="display_name", autocomplete="name",
                                    on:input=move |e: web_sys::Event| display_name.set(event_value(&e)))
                                (field_error(fields, "display_name".into()))
                            }
                        }
                    } else { view! {} })
                    div(class="field") {
                        label(r#for="email") { "Email" }
                        input(id="email", name="email", r#type="email", autocomplete="email", required=true,
                            on:input=move |e: web_sys::Event| email.set(event_value(&e)))
                        (field_error(fields, "email".into()))
                    }
                    div(class="field") {
                        label(r#for="password") { "Password" }
                        input(id="password", name="password", r#type="password", required=true,
                            autocomplete=if register { "new-password" } else { "current-password" },
                            on:input=move |e: web_sys::Event| password.set(event_value(&e)))
                        (field_error(fields, "password".into()))
                    }
                    div(class="form-actions") {
                        button(class="primary", r#type="submit", disabled=busy.get()) {
                            (if busy.get() { "Please wait…" } else { action })
                        }
                    }
                }
                p(class="muted") { (other) " " a(href=other_href, rel="external") { (other_text) } }
            }
        }
    }
}
