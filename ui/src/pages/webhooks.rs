//! Webhooks (`/webhooks`, `/webhooks/<id>`): the workspace's subscriptions (URL, event
//! kinds, whether enabled and why not), made (the signing secret shown once, as the
//! server returns it only then), changed, enabled again, deleted; and per subscription its
//! delivery log, each delivery with every attempt (time, HTTP status, error, duration)
//! and a way to send it again. The log is read again every few seconds while it is shown,
//! so a delivery appears as it is made.

use kiln_proto::v1::{
    CreateWebhookRequest, DeleteWebhookRequest, GetWebhookRequest, ListWebhookDeliveriesRequest, ListWebhooksRequest,
    RedeliverWebhookDeliveryRequest, UpdateWebhookRequest, Webhook, WebhookDelivery,
};
use sycamore::prelude::*;

use crate::{
    api::ApiError,
    app::use_shared,
    call,
    widgets::{ErrorNotice, Load, Loading, badge, event_value, field_error, load_each, struct_json, when},
    workflow::event_list,
};

/// How often the delivery log is read again while it is shown.
const LOG_REFRESH_MS: i32 = 2_000;

#[component]
pub fn WebhookList() -> View {
    let shared = use_shared();
    let listed = create_signal(Load::<Vec<Webhook>>::Loading);
    let attempt = create_signal(0u32);
    let creating = create_signal(false);
    let url = create_signal(String::new());
    let events = create_signal(String::from("entity.created"));
    let description = create_signal(String::new());
    let errors = create_signal(Vec::<(String, String)>::new());
    let failure = create_signal(None::<String>);
    let busy = create_signal(false);
    // The new subscription's secret: the only time the server shows it.
    let made = create_signal(None::<Webhook>);
    load_each(attempt, {
        let api = shared.api.clone();
        move || {
            let api = api.clone();
            async move {
                match call!(api, webhooks.list_webhooks(ListWebhooksRequest { page_size: 100, ..Default::default() })) {
                    Ok(page) => listed.set(Load::Ready(page.webhooks)),
                    Err(error) => listed.set(Load::Failed(error)),
                }
            }
        }
    });
    let create = {
        let api = shared.api.clone();
        move |event: web_sys::SubmitEvent| {
            event.prevent_default();
            if busy.get() {
                return;
            }
            busy.set(true);
            let request = CreateWebhookRequest {
                url: url.get_clone().trim().to_string(),
                description: description.get_clone(),
                events: event_list(&events.get_clone()),
                secret: String::new(),
            };
            let api = api.clone();
            sycamore::futures::spawn_local_scoped(async move {
                let created = call!(api, webhooks.create_webhook(request));
                busy.set(false);
                match created {
                    Ok(created) => {
                        made.set(created.webhook);
                        errors.set(Vec::new());
                        failure.set(None);
                        creating.set(false);
                        url.set(String::new());
                        description.set(String::new());
                        attempt.set(attempt.get_untracked() + 1);
                    }
                    Err(error) => {
                        errors.set(error.fields.clone());
                        failure.set(Some(error.message));
                    }
                }
            });
        }
    };
    let form = move || {
        if !creating.get() {
            return view! {};
        }
        let create = create.clone();
        view! {
            form(class="form card", on:submit=create, novalidate=true, style="margin-bottom:1rem") {
                (failure.get_clone().map(|m| view! { div(class="notice error", role="alert") { (m) } }))
                (subscription_fields(url, events, description, errors))
                div(class="form-actions") {
                    button(class="primary", r#type="submit", disabled=busy.get()) { "Create subscription" }
                    button(r#type="button", on:click=move |_| creating.set(false)) { "Cancel" }
                }
            }
        }
    };
    let secret = move || {
        made.get_clone().map(|webhook| {
            let (secret, url, href) = (webhook.secret.clone(), webhook.url.clone(), format!("/webhooks/{}", webhook.id));
            view! {
                div(class="card secret", role="status", data-testid="new-secret") {
                    p { "Subscribed " code { (url) } ". Its signing secret, shown only now — keep it where the receiver checks signatures:" }
                    pre(class="log") { (secret) }
                    div(class="form-actions") {
                        a(class="button", href=href) { "Open its delivery log" }
                        button(r#type="button", on:click=move |_| made.set(None)) { "Done" }
                    }
                }
            }
        })
    };
    let body = move || match listed.get_clone() {
        Load::Loading => view! { Loading(what="webhooks") },
        Load::Failed(error) => view! { ErrorNotice(error=error, retry=move || attempt.set(attempt.get() + 1)) },
        Load::Ready(hooks) if hooks.is_empty() => view! {
            div(class="empty card") { p { "No webhooks yet. A webhook sends the workspace's events (a record created, a build failed…) to a URL of yours, signed." } }
        },
        Load::Ready(hooks) => {
            let rows: Vec<View> = hooks
                .into_iter()
                .map(|hook| {
                    let href = format!("/webhooks/{}", hook.id);
                    let events = hook.events.join(", ");
                    let state = state_view(&hook);
                    let created = when(hook.created_at.as_ref());
                    view! {
                        tr {
                            td { a(href=href) { (hook.url) } }
                            td { code { (events) } }
                            td { (state) }
                            td(class="muted") { (created) }
                        }
                    }
                })
                .collect();
            view! {
                div(class="table-wrap") {
                    table {
                        thead { tr { th { "URL" } th { "Events" } th { "State" } th { "Created (UTC)" } } }
                        tbody { (rows) }
                    }
                }
            }
        }
    };
    view! {
        div(class="page-head") {
            h1 { "Webhooks" }
            button(class="primary", r#type="button", on:click=move |_| creating.set(!creating.get())) { "New subscription" }
        }
        (secret())
        (form())
        (body())
    }
}

/// Enabled, or disabled with the reason.
fn state_view(hook: &Webhook) -> View {
    if hook.enabled {
        return badge("enabled");
    }
    let reason = hook.disabled_reason.clone();
    let state = badge("disabled");
    view! { (state) (if reason.is_empty() { view! {} } else { let reason = reason.clone(); view! { span(class="hint") { " " (reason) } } }) }
}

/// The inputs a subscription is made and changed with.
fn subscription_fields(
    url: Signal<String>,
    events: Signal<String>,
    description: Signal<String>,
    errors: Signal<Vec<(String, String)>>,
) -> View {
    view! {
        div(class="field") {
            label(r#for="webhook-url") { "URL *" }
            input(id="webhook-url", r#type="url", placeholder="https://example.com/hooks/kiln", prop:value=url.get_clone(),
                on:input=move |e: web_sys::Event| url.set(event_value(&e)))
            (field_error(errors, "url".into()))
        }
        div(class="field") {
            label(r#for="webhook-events") { "Events * " span(class="hint") { "e.g. entity.created, entity.* or build.failed; separated by commas" } }
            input(id="webhook-events", prop:value=events.get_clone(), on:input=move |e: web_sys::Event| events.set(event_value(&e)))
            (field_error(errors, "events".into()))
        }
        div(class="field") {
            label(r#for="webhook-description") { "Description" }
            input(id="webhook-description", prop:value=description.get_clone(),
                on:input=move |e: web_sys::Event| description.set(event_value(&e)))
            (field_error(errors, "description".into()))
        }
    }
}

#[component(inline_props)]
pub fn WebhookDetail(id: String) -> View {
    let shared = use_shared();
    let api = shared.api.clone();
    let hook = create_signal(Load::<Webhook>::Loading);
    let attempt = create_signal(0u32);
    let url = create_signal(String::new());
    let events = create_signal(String::new());
    let description = create_signal(String::new());
    let secret = create_signal(String::new());
    let enabled = create_signal(true);
    let errors = create_signal(Vec::<(String, String)>::new());
    let notice = create_signal(None::<Result<String, String>>);
    let busy = create_signal(false);
    let show = move |found: Webhook| {
        url.set(found.url.clone());
        events.set(found.events.join(", "));
        description.set(found.description.clone());
        enabled.set(found.enabled);
        secret.set(String::new());
        hook.set(Load::Ready(found));
    };
    load_each(attempt, {
        let (api, id) = (api.clone(), id.clone());
        move || {
            let (api, id) = (api.clone(), id.clone());
            async move {
                match call!(api, webhooks.get_webhook(GetWebhookRequest { id })) {
                    Ok(found) => show(found.webhook.unwrap_or_default()),
                    Err(error) => hook.set(Load::Failed(error)),
                }
            }
        }
    });
    // Saves the form; `enable` sets the subscription enabled whatever the checkbox says.
    let update = {
        let (api, id) = (api.clone(), id.clone());
        move |enable: bool| {
            if busy.get() {
                return;
            }
            busy.set(true);
            let request = UpdateWebhookRequest {
                id: id.clone(),
                url: url.get_clone().trim().to_string(),
                description: description.get_clone(),
                events: event_list(&events.get_clone()),
                secret: secret.get_clone().trim().to_string(),
                enabled: Some(enable || enabled.get()),
            };
            let api = api.clone();
            sycamore::futures::spawn_local_scoped(async move {
                let updated = call!(api, webhooks.update_webhook(request));
                busy.set(false);
                match updated {
                    Ok(updated) => {
                        errors.set(Vec::new());
                        show(updated.webhook.unwrap_or_default());
                        notice.set(Some(Ok(if enable { "Enabled again." } else { "Saved." }.into())));
                    }
                    Err(error) => {
                        errors.set(error.fields.clone());
                        notice.set(Some(Err(error.message)));
                    }
                }
            });
        }
    };
    let delete = {
        let (api, id) = (api.clone(), id.clone());
        move |_| {
            if !window().confirm_with_message("Delete this subscription and its delivery log?").unwrap_or(false) {
                return;
            }
            let (api, id) = (api.clone(), id.clone());
            sycamore::futures::spawn_local_scoped(async move {
                match call!(api, webhooks.delete_webhook(DeleteWebhookRequest { id })) {
                    Ok(_) => sycamore_router::navigate("/webhooks"),
                    Err(error) => notice.set(Some(Err(error.message))),
                }
            });
        }
    };
    let content = move || match hook.get_clone() {
        Load::Loading => view! { Loading {} },
        Load::Failed(error) => view! { ErrorNotice(error=error, retry=move || attempt.set(attempt.get() + 1)) },
        Load::Ready(found) => {
            let (save, enable, delete) = (update.clone(), update.clone(), delete.clone());
            let disabled = (!found.enabled).then(|| {
                let reason = if found.disabled_reason.is_empty() {
                    "This subscription is disabled: nothing is delivered to it.".to_string()
                } else {
                    format!("Disabled: {}", found.disabled_reason)
                };
                view! {
                    div(class="notice error", role="alert", data-testid="disabled") {
                        span { (reason) }
                        button(r#type="button", on:click=move |_| enable(true)) { "Enable again" }
                    }
                }
            });
            let failing = found.failing_since.as_ref().map(|since| {
                let text = format!("Deliveries have failed since {} (UTC).", when(Some(since)));
                view! { p(class="field-error") { (text) } }
            });
            let heading = found.url.clone();
            view! {
                div(class="page-head") { h1 { (heading) } }
                (disabled)
                (failing)
                form(class="form card", novalidate=true, on:submit=move |e: web_sys::SubmitEvent| { e.prevent_default(); save(false); }) {
                    (subscription_fields(url, events, description, errors))
                    div(class="field") {
                        label(r#for="webhook-secret") { "New signing secret " span(class="hint") { "whsec_…; empty keeps the current one" } }
                        input(id="webhook-secret", r#type="password", autocomplete="off", prop:value=secret.get_clone(),
                            on:input=move |e: web_sys::Event| secret.set(event_value(&e)))
                        (field_error(errors, "secret".into()))
                    }
                    label(class="toggle") {
                        input(id="webhook-enabled", r#type="checkbox", prop:checked=enabled.get(),
                            on:change=move |e: web_sys::Event| enabled.set(event_value(&e) == "true"))
                        "Enabled"
                    }
                    (notice.get_clone().map(|n| match n {
                        Ok(m) => view! { p(role="status", class="muted") { (m) } },
                        Err(m) => view! { div(class="notice error", role="alert") { (m) } },
                    }))
                    div(class="form-actions") {
                        button(class="primary", r#type="submit", disabled=busy.get()) { "Save" }
                        button(class="danger", r#type="button", on:click=delete) { "Delete" }
                    }
                }
            }
        }
    };
    let log = view! { DeliveryLog(id=id.clone()) };
    view! {
        div(class="page-head") { a(href="/webhooks") { "← Webhooks" } }
        (content())
        (log)
    }
}

/// A subscription's deliveries, newest first, read again every few seconds.
#[component(inline_props)]
fn DeliveryLog(id: String) -> View {
    let shared = use_shared();
    let api = shared.api.clone();
    let deliveries = create_signal(Load::<Vec<WebhookDelivery>>::Loading);
    let failure = create_signal(None::<ApiError>);
    let notice = create_signal(None::<String>);
    let read = {
        let (api, id) = (api.clone(), id.clone());
        move || {
            let (api, id) = (api.clone(), id.clone());
            async move {
                let request = ListWebhookDeliveriesRequest { id, page_size: 50, ..Default::default() };
                match call!(api, webhooks.list_webhook_deliveries(request)) {
                    Ok(page) => {
                        failure.set(None);
                        // Unchanged: nothing redrawn (an open payload stays open).
                        if deliveries.with_untracked(|d| !matches!(d, Load::Ready(now) if *now == page.deliveries)) {
                            deliveries.set(Load::Ready(page.deliveries));
                        }
                    }
                    Err(error) => {
                        if deliveries.with_untracked(|d| !matches!(d, Load::Ready(_))) {
                            deliveries.set(Load::Failed(error));
                        } else {
                            failure.set(Some(error));
                        }
                    }
                }
            }
        }
    };
    {
        let read = read.clone();
        sycamore::futures::spawn_local_scoped(async move {
            loop {
                read().await;
                crate::api::sleep_ms(LOG_REFRESH_MS).await;
            }
        });
    }
    let redeliver = {
        let api = api.clone();
        move |delivery: String| {
            let (api, read) = (api.clone(), read.clone());
            sycamore::futures::spawn_local_scoped(async move {
                match call!(api, webhooks.redeliver_webhook_delivery(RedeliverWebhookDeliveryRequest { id: delivery }))
                {
                    Ok(_) => notice.set(Some("Sent again.".into())),
                    Err(error) => notice.set(Some(error.message)),
                }
                read().await;
            });
        }
    };
    let list = move || match deliveries.get_clone() {
        Load::Loading => view! { Loading(what="deliveries") },
        Load::Failed(error) => view! { div(class="notice error", role="alert") { (error.message) } },
        Load::Ready(listed) if listed.is_empty() => view! {
            p(class="muted") { "Nothing delivered yet. Deliveries appear here as the subscribed events happen." }
        },
        Load::Ready(listed) => {
            let items: Vec<View> = listed.into_iter().map(|d| delivery_view(d, redeliver.clone())).collect();
            view! { ol(class="deliveries") { (items) } }
        }
    };
    view! {
        section(data-testid="deliveries") {
            h2 { "Deliveries" }
            (failure.get_clone().map(|e| view! { p(class="field-error") { "The log could not be read again: " (e.message) } }))
            (notice.get_clone().map(|m| view! { p(role="status", class="muted") { (m) } }))
            (list())
        }
    }
}

fn delivery_view(delivery: WebhookDelivery, redeliver: impl Fn(String) + 'static) -> View {
    let attempts: Vec<View> = delivery
        .attempts
        .iter()
        .map(|a| {
            let at = when(a.at.as_ref());
            let code = if a.status_code == 0 { "no answer".to_string() } else { a.status_code.to_string() };
            let (error, took) = (a.error.clone(), format!("{} ms", a.duration_ms));
            view! { tr { td(class="muted") { (at) } td(data-testid="http-status") { (code) } td { (error) } td { (took) } } }
        })
        .collect();
    let facts = format!(
        "{} · {} attempt{}",
        when(delivery.created_at.as_ref()),
        delivery.attempts.len(),
        if delivery.attempts.len() == 1 { "" } else { "s" }
    );
    let next = (delivery.status == "pending")
        .then(|| delivery.next_attempt_at.as_ref().map(|t| format!("next attempt at {} (UTC)", when(Some(t)))))
        .flatten();
    let (kind, status, id, payload) = (
        delivery.event_kind.clone(),
        delivery.status.clone(),
        delivery.id.clone(),
        struct_json(delivery.payload.as_ref()),
    );
    let status_badge = badge(&status);
    let next = next.map(|n| view! { p(class="hint") { (n) } });
    let tried = if attempts.is_empty() {
        view! {}
    } else {
        view! {
            div(class="table-wrap") {
                table {
                    thead { tr { th { "Attempted (UTC)" } th { "HTTP status" } th { "Error" } th { "Took" } } }
                    tbody { (attempts) }
                }
            }
        }
    };
    view! {
        li(class="card delivery", data-status=status) {
            div(class="action-head") {
                code { (kind) }
                (status_badge)
                span(class="muted") { (facts) }
                span(style="flex:1") {}
                button(r#type="button", on:click=move |_| redeliver(id.clone())) { "Redeliver" }
            }
            (next)
            (tried)
            details {
                summary(class="hint") { "Payload" }
                pre(class="log") { (payload) }
            }
        }
    }
}
