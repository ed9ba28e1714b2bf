//! Small pieces every page uses: the loading and error states (an error always comes
//! with a way to try again), and the state of one asynchronous load.

use sycamore::prelude::*;

use crate::api::ApiError;

/// What a page has of something it loads.
#[derive(Debug, Clone, PartialEq)]
pub enum Load<T> {
    Loading,
    Ready(T),
    Failed(ApiError),
}

/// Runs `load` now and again whenever `attempt` changes (the "Try again" of a page),
/// tied to the page: it stops when the page goes.
pub fn load_each<F, Fut>(attempt: Signal<u32>, load: F)
where
    F: Fn() -> Fut + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    create_effect(move || {
        attempt.track();
        sycamore::futures::spawn_local_scoped(load());
    });
}

/// A message for a failed call, with a button that runs `retry`.
#[component(inline_props)]
pub fn ErrorNotice<F: Fn() + 'static>(error: ApiError, retry: F) -> View {
    let message = error.message.clone();
    view! {
        div(class="notice error", role="alert") {
            span { (message) }
            button(r#type="button", on:click=move |_| retry()) { "Try again" }
        }
    }
}

/// A placeholder of the page's height while it loads (no layout shift when it arrives).
#[component(inline_props)]
pub fn Loading(#[prop(default)] what: &'static str) -> View {
    let text = if what.is_empty() { "Loading…".to_string() } else { format!("Loading {what}…") };
    view! { div(class="skeleton", role="status", aria-live="polite") { (text) } }
}

/// A field's error under its input, if it has one.
pub fn field_error(errors: Signal<Vec<(String, String)>>, name: String) -> View {
    view! {
        (errors.with(|errors| {
            errors.iter().find(|(field, _)| *field == name).map(|(_, message)| {
                let message = message.clone();
                view! { div(class="field-error", role="alert") { (message) } }
            })
        }))
    }
}

/// A status as a coloured badge; `data-status` carries it for tests and styles.
pub fn badge(status: &str) -> View {
    let (class, text, attribute) = (format!("badge {status}"), status.to_string(), status.to_string());
    view! { span(class=class, data-status=attribute) { (text) } }
}

/// The server's errors about `prefix` or any part of it (`actions[1].config.record`
/// shows `…record.amount` too, saying which part), under the input of `prefix`.
pub fn errors_under(errors: Signal<Vec<(String, String)>>, prefix: String) -> View {
    view! {
        (errors.with(|all| {
            all.iter()
                .filter(|(field, _)| crate::workflow::covers(&prefix, field))
                .map(|(field, message)| {
                    let part = field[prefix.len()..].trim_start_matches('.');
                    let text = if part.is_empty() { message.clone() } else { format!("{part}: {message}") };
                    view! { div(class="field-error", role="alert") { (text) } }
                })
                .collect::<Vec<View>>()
        }))
    }
}

/// Whether the server refused `prefix` or any part of it.
pub fn has_error_under(errors: Signal<Vec<(String, String)>>, prefix: &str) -> bool {
    errors.with(|all| all.iter().any(|(field, _)| crate::workflow::covers(prefix, field)))
}

/// JSON of a Struct, laid out, as the run views show settings, inputs and outputs.
pub fn struct_json(value: Option<&kiln_proto::wkt::Struct>) -> String {
    use kiln_proto::wkt::{Value, value::Kind};
    match value {
        Some(s) => crate::fields::to_pretty_json(&Value { kind: Some(Kind::StructValue(s.clone())) }),
        None => String::new(),
    }
}

/// The value of the input, select or textarea an event came from.
pub fn event_value(event: &web_sys::Event) -> String {
    use sycamore::web::wasm_bindgen::JsCast;
    let Some(target) = event.target() else { return String::new() };
    if let Some(input) = target.dyn_ref::<web_sys::HtmlInputElement>() {
        if input.type_() == "checkbox" {
            return input.checked().to_string();
        }
        return input.value();
    }
    if let Some(select) = target.dyn_ref::<web_sys::HtmlSelectElement>() {
        return select.value();
    }
    target.dyn_ref::<web_sys::HtmlTextAreaElement>().map(|area| area.value()).unwrap_or_default()
}

/// A timestamp as the UI shows it (UTC, to the second).
pub fn when(time: Option<&kiln_proto::wkt::Timestamp>) -> String {
    let Some(time) = time else { return String::new() };
    let date = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(time.seconds as f64 * 1000.0));
    let iso: String = date.to_iso_string().into();
    iso.chars().take(19).collect::<String>().replace('T', " ")
}
