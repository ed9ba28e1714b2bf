//! Settings: the profile, the theme, the workspace's provider for prompt test runs, and
//! signing out.

use kiln_proto::v1::{GetProfileRequest, LogoutRequest, UpdateProfileRequest, User};
use sycamore::prelude::*;

use crate::{
    app::{theme, use_shared},
    call,
    widgets::{ErrorNotice, Load, Loading, event_value, load_each},
};

#[component]
pub fn Settings() -> View {
    let shared = use_shared();
    let profile = create_signal(Load::<User>::Loading);
    let display_name = create_signal(String::new());
    let saved = create_signal(None::<String>);
    let attempt = create_signal(0u32);
    let current_theme = create_signal(theme::stored());
    load_each(attempt, {
        let api = shared.api.clone();
        move || {
            let api = api.clone();
            async move {
                match call!(api, auth.get_profile(GetProfileRequest {})) {
                    Ok(found) => {
                        let user = found.user.unwrap_or_default();
                        display_name.set(user.display_name.clone());
                        profile.set(Load::Ready(user));
                    }
                    Err(error) => profile.set(Load::Failed(error)),
                }
            }
        }
    });
    let save = {
        let api = shared.api.clone();
        move |event: web_sys::SubmitEvent| {
            event.prevent_default();
            let api = api.clone();
            let request = UpdateProfileRequest { display_name: Some(display_name.get_clone()), ..Default::default() };
            sycamore::futures::spawn_local_scoped(async move {
                saved.set(Some(match call!(api, auth.update_profile(request)) {
                    Ok(_) => "Saved.".to_string(),
                    Err(error) => error.message,
                }));
            });
        }
    };
    let set_theme = {
        let api = shared.api.clone();
        move |chosen: &'static str| {
            theme::apply(chosen);
            current_theme.set(chosen.to_string());
            let api = api.clone();
            sycamore::futures::spawn_local_scoped(async move {
                let _ = call!(
                    api,
                    auth.update_profile(UpdateProfileRequest { theme: Some(chosen.into()), ..Default::default() })
                );
            });
        }
    };
    // Ends this session (or every session of the account) on the server, then here.
    let sign_out = {
        let api = shared.api.clone();
        move |everywhere: bool| {
            let api = api.clone();
            sycamore::futures::spawn_local_scoped(async move {
                if let Some(session) = api.session() {
                    let request = LogoutRequest { refresh_token: session.refresh_token, everywhere };
                    let _ = call!(api, auth.logout(request));
                }
                api.sign_out();
            });
        }
    };
    let sign_out_everywhere = sign_out.clone();
    let body = move || match profile.get_clone() {
        Load::Loading => view! { Loading {} },
        Load::Failed(error) => view! { ErrorNotice(error=error, retry=move || attempt.set(attempt.get() + 1)) },
        Load::Ready(user) => {
            let save = save.clone();
            view! {
                form(class="form card", on:submit=save) {
                    h2(style="margin-top:0") { "Profile" }
                    p(class="muted") { (user.email) }
                    div(class="field") {
                        label(r#for="display-name") { "Name" }
                        input(id="display-name", prop:value=display_name.get_clone(), on:input=move |e: web_sys::Event| display_name.set(event_value(&e)))
                    }
                    (saved.get_clone().map(|m| view! { p(role="status") { (m) } }))
                    button(class="primary", r#type="submit") { "Save" }
                }
            }
        }
    };
    let (light, dark) = (set_theme.clone(), set_theme);
    view! {
        h1 { "Settings" }
        (body())
        super::prompts::ProviderSettings {}
        div(class="card", style="margin-top:1rem") {
            h2(style="margin-top:0") { "Theme" }
            div(class="form-actions", role="group", aria-label="Theme") {
                button(r#type="button", aria-pressed=move || (current_theme.get_clone() == "light").to_string(), on:click=move |_| light("light")) { "Light" }
                button(r#type="button", aria-pressed=move || (current_theme.get_clone() == "dark").to_string(), on:click=move |_| dark("dark")) { "Dark" }
            }
        }
        div(class="card", style="margin-top:1rem") {
            h2(style="margin-top:0") { "Session" }
            div(class="form-actions") {
                button(class="danger", r#type="button", on:click=move |_| sign_out(false)) { "Log out" }
                button(class="danger", r#type="button", on:click=move |_| sign_out_everywhere(true)) { "Log out everywhere" }
            }
        }
    }
}
