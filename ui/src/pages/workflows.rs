//! The workflow designer (`/workflows/new`, `/workflows/<id>`): a workflow's trigger and
//! its actions as cards in order, reordered by dragging a card or with its Move up/down
//! buttons, each action's settings as a form that fits its kind. Saved whole
//! (CreateWorkflow / UpdateWorkflow), with the server's field errors by their inputs. A
//! saved workflow runs on demand (ExecuteWorkflow); its runs are listed newest first and
//! one opens with each action's status, input, output, error, attempts and duration, and
//! can be run again. The list of workflows is the generic records list.

use kiln_proto::{
    v1::{
        Action, CreateWorkflowRequest, DeleteWorkflowRequest, ExecuteWorkflowRequest, GetWorkflowRequest,
        GetWorkflowRunRequest, ListWorkflowRunsRequest, RerunWorkflowRunRequest, Trigger, UpdateWorkflowRequest,
        Workflow, WorkflowRun,
    },
    wkt::{Struct, Timestamp},
};
use sycamore::prelude::*;

use crate::{
    api::{Api, ApiError},
    app::use_shared,
    call,
    widgets::{
        ErrorNotice, Load, Loading, badge, errors_under, event_value, field_error, has_error_under, load_each,
        struct_json, when,
    },
    workflow::{self, Setting, SettingInput},
};

/// One action being edited.
#[derive(Clone, Copy, PartialEq)]
struct ActionDraft {
    key: u32,
    name: Signal<String>,
    kind: Signal<String>,
    retries: Signal<String>,
    backoff: Signal<String>,
    /// What was typed for every setting key of every kind (`workflow::all_keys`), so a
    /// change of kind and back loses nothing.
    settings: Signal<Vec<(&'static str, Signal<String>)>>,
}

impl ActionDraft {
    fn new(key: u32, action: Option<&Action>) -> ActionDraft {
        let kind = action.map_or_else(|| "http_request".to_string(), |a| a.kind.clone());
        let config = action.and_then(|a| a.config.clone()).unwrap_or_default();
        let settings = workflow::all_keys()
            .into_iter()
            .map(|key| {
                let shown = workflow::find_setting(&kind, key)
                    .map(|setting| workflow::to_input(setting, config.fields.get(key)))
                    .unwrap_or_default();
                (key, create_signal(shown))
            })
            .collect();
        ActionDraft {
            key,
            name: create_signal(action.map(|a| a.name.clone()).unwrap_or_default()),
            kind: create_signal(kind),
            retries: create_signal(action.map_or_else(|| "0".into(), |a| a.retries.to_string())),
            backoff: create_signal(action.map_or_else(|| "1000".into(), |a| a.backoff_ms.to_string())),
            settings: create_signal(settings),
        }
    }

    fn setting(&self, key: &str) -> Option<Signal<String>> {
        self.settings.with_untracked(|all| all.iter().find(|(k, _)| *k == key).map(|(_, value)| *value))
    }

    /// The action as the API takes it, or what is wrong, by the field's name within the
    /// action (`name`, `config.url`, …).
    fn action(&self) -> Result<Action, Vec<(String, String)>> {
        let mut broken = Vec::new();
        let name = self.name.get_clone().trim().to_string();
        if name.is_empty() {
            broken.push(("name".to_string(), "is required".to_string()));
        }
        let kind = self.kind.get_clone();
        let config = workflow::config(&kind, |key| self.setting(key).map(|v| v.get_clone()).unwrap_or_default())
            .map_err(|wrong| broken.extend(wrong.into_iter().map(|(key, why)| (format!("config.{key}"), why))))
            .ok();
        let retries = workflow::parse_count(&self.retries.get_clone(), 0)
            .map_err(|why| broken.push(("retries".into(), why)))
            .unwrap_or_default();
        let backoff_ms = workflow::parse_count(&self.backoff.get_clone(), 1000)
            .map_err(|why| broken.push(("backoff_ms".into(), why)))
            .unwrap_or_default();
        if !broken.is_empty() {
            return Err(broken);
        }
        Ok(Action { name, kind, config, retries, backoff_ms })
    }
}

/// The trigger being edited; every kind's settings are kept while the kind changes.
#[derive(Clone, Copy)]
struct TriggerDraft {
    kind: Signal<String>,
    events: Signal<String>,
    model: Signal<String>,
    condition: Signal<String>,
    cron: Signal<String>,
}

impl TriggerDraft {
    fn set(&self, trigger: Trigger) {
        self.kind.set(if trigger.kind.is_empty() { "manual".into() } else { trigger.kind });
        self.events.set(trigger.events.join(", "));
        self.model.set(trigger.model);
        self.condition.set(trigger.condition);
        self.cron.set(trigger.cron);
    }

    /// Only the chosen kind's settings are sent.
    fn trigger(&self) -> Trigger {
        let kind = self.kind.get_clone();
        match kind.as_str() {
            "on_event" => Trigger {
                kind,
                events: workflow::event_list(&self.events.get_clone()),
                model: self.model.get_clone().trim().to_string(),
                condition: self.condition.get_clone().trim().to_string(),
                ..Trigger::default()
            },
            "schedule" => Trigger { kind, cron: self.cron.get_clone().trim().to_string(), ..Trigger::default() },
            _ => Trigger { kind, ..Trigger::default() },
        }
    }
}

fn millis(time: Option<&Timestamp>) -> Option<i64> {
    time.map(|t| t.seconds * 1000 + i64::from(t.nanos) / 1_000_000)
}

/// How long a run took (so far, while it runs).
fn run_duration(run: &WorkflowRun) -> String {
    match (millis(run.started_at.as_ref()), millis(run.finished_at.as_ref())) {
        (Some(start), Some(end)) => format!("{} ms", (end - start).max(0)),
        _ => String::new(),
    }
}

#[component(inline_props)]
pub fn WorkflowDesigner(id: Option<String>) -> View {
    let shared = use_shared();
    let api = shared.api.clone();
    let editing = id.is_some();
    let name = create_signal(String::new());
    let description = create_signal(String::new());
    let enabled = create_signal(true);
    let trigger = TriggerDraft {
        kind: create_signal("manual".to_string()),
        events: create_signal(String::new()),
        model: create_signal(String::new()),
        condition: create_signal(String::new()),
        cron: create_signal(String::new()),
    };
    let drafts = create_signal(Vec::<ActionDraft>::new());
    let next_key = create_signal(0u32);
    let dragged = create_signal(None::<u32>);
    let errors = create_signal(Vec::<(String, String)>::new());
    let failure = create_signal(None::<ApiError>);
    let saved = create_signal(None::<String>);
    let busy = create_signal(false);
    let loaded = create_signal(!editing);
    let attempt = create_signal(0u32);
    let add = move |action: Option<&Action>| {
        let key = next_key.get();
        next_key.set(key + 1);
        drafts.update(|d| d.push(ActionDraft::new(key, action)));
    };
    if let Some(id) = id.clone() {
        let api = api.clone();
        load_each(attempt, move || {
            let (api, id) = (api.clone(), id.clone());
            async move {
                match call!(api, workflows.get_workflow(GetWorkflowRequest { id })) {
                    Ok(found) => {
                        let workflow = found.workflow.unwrap_or_default();
                        fill(&workflow, name, description, enabled, trigger);
                        drafts.set(Vec::new());
                        for action in &workflow.actions {
                            add(Some(action));
                        }
                        failure.set(None);
                        loaded.set(true);
                    }
                    Err(error) => failure.set(Some(error)),
                }
            }
        });
    } else {
        add(None);
    }
    // Errors name actions by their place: after a move they would name the wrong card.
    let move_action = move |key: u32, by: isize| {
        drafts.update(|d| crate::reorder::step(d, |x| x.key, key, by));
        errors.set(Vec::new());
    };
    let drop_on = move |key: u32| {
        if let Some(from) = dragged.get() {
            drafts.update(|d| crate::reorder::onto(d, |x| x.key, from, key));
            errors.set(Vec::new());
        }
        dragged.set(None);
    };
    let save = {
        let (api, id) = (api.clone(), id.clone());
        move |event: web_sys::SubmitEvent| {
            event.prevent_default();
            if busy.get() {
                return;
            }
            let mut found = Vec::new();
            if name.with(|n| n.trim().is_empty()) {
                found.push(("name".to_string(), "is required".to_string()));
            }
            let mut actions = Vec::new();
            for (i, draft) in drafts.get_clone().iter().enumerate() {
                match draft.action() {
                    Ok(action) => actions.push(action),
                    Err(wrong) => {
                        found.extend(wrong.into_iter().map(|(field, why)| (format!("actions[{i}].{field}"), why)))
                    }
                }
            }
            errors.set(found.clone());
            saved.set(None);
            let refused = ApiError::found_in_form(found, "setting");
            let stop = refused.is_some();
            failure.set(refused);
            if stop {
                return;
            }
            busy.set(true);
            let (api, id) = (api.clone(), id.clone());
            let (name, description, trigger, enabled) = (
                name.get_clone().trim().to_string(),
                description.get_clone(),
                Some(trigger.trigger()),
                Some(enabled.get()),
            );
            sycamore::futures::spawn_local_scoped(async move {
                let outcome = match id {
                    None => {
                        let request = CreateWorkflowRequest { name, description, trigger, actions, enabled };
                        call!(api, workflows.create_workflow(request)).map(|r| r.workflow.map(|w| w.id))
                    }
                    Some(id) => {
                        let request = UpdateWorkflowRequest { id, name, description, trigger, actions, enabled };
                        call!(api, workflows.update_workflow(request)).map(|_| None)
                    }
                };
                busy.set(false);
                match outcome {
                    Ok(Some(created)) => sycamore_router::navigate(&format!("/workflows/{created}")),
                    Ok(None) => saved.set(Some("Saved.".into())),
                    Err(error) => {
                        errors.set(error.fields.clone());
                        failure.set(Some(error));
                    }
                }
            });
        }
    };
    let delete = {
        let (api, id) = (api.clone(), id.clone());
        move |_| {
            let Some(id) = id.clone() else { return };
            if !window().confirm_with_message("Delete this workflow? Its past runs are kept.").unwrap_or(false) {
                return;
            }
            let api = api.clone();
            sycamore::futures::spawn_local_scoped(async move {
                match call!(api, workflows.delete_workflow(DeleteWorkflowRequest { id })) {
                    Ok(_) => sycamore_router::navigate("/workflows"),
                    Err(error) => failure.set(Some(error)),
                }
            });
        }
    };
    let models = {
        let shared = shared.clone();
        move || match shared.models.get_clone() {
            Load::Ready(models) => models.into_iter().map(|m| m.plural).collect::<Vec<_>>(),
            _ => Vec::new(),
        }
    };
    let cards = move || {
        let all = drafts.get_clone();
        let count = all.len();
        all.into_iter()
            .enumerate()
            .map(|(i, draft)| action_card(i, count, draft, errors, dragged, move_action, drop_on, drafts))
            .collect::<Vec<View>>()
    };
    let heading = move || {
        let typed = name.get_clone();
        if !editing {
            "New workflow".to_string()
        } else if typed.trim().is_empty() {
            "Workflow".to_string()
        } else {
            typed
        }
    };
    let runs = id.clone().map(|id| view! { RunHistory(api=api.clone(), id=id) });
    let trigger_kinds: Vec<View> = workflow::TRIGGER_KINDS
        .iter()
        .map(|(kind, label)| view! { option(value=*kind, selected=trigger.kind.get_clone() == *kind) { (*label) } })
        .collect();
    let model_options = move || models().into_iter().map(|p| view! { option(value=p) }).collect::<Vec<View>>();
    view! {
        div(class="page-head") {
            a(href="/workflows") { "← Workflows" }
        }
        div(class="page-head") {
            h1 { (heading()) }
            (if editing { view! { span(class="muted") { (if enabled.get() { "enabled" } else { "disabled" }) } } } else { view! {} })
        }
        (failure.get_clone().map(|error| if loaded.get() {
            view! { div(class="notice error", role="alert") { (error.message) } }
        } else {
            view! { ErrorNotice(error=error, retry=move || attempt.set(attempt.get() + 1)) }
        }))
        form(class="designer", on:submit=save, novalidate=true, aria-busy=move || (!loaded.get()).to_string()) {
            div(class="card") {
                div(class=move || if has_error_under(errors, "name") { "field invalid" } else { "field" }) {
                    label(r#for="workflow-name") { "Name *" }
                    input(id="workflow-name", prop:value=name.get_clone(), on:input=move |e: web_sys::Event| name.set(event_value(&e)))
                    (errors_under(errors, "name".into()))
                }
                div(class="field") {
                    label(r#for="workflow-description") { "Description" }
                    textarea(id="workflow-description", rows="2", prop:value=description.get_clone(),
                        on:input=move |e: web_sys::Event| description.set(event_value(&e)))
                }
                label(class="toggle") {
                    input(id="workflow-enabled", r#type="checkbox", prop:checked=enabled.get(),
                        on:change=move |e: web_sys::Event| enabled.set(event_value(&e) == "true"))
                    "Enabled "
                    span(class="hint") { "a disabled workflow is not started by its trigger; Run now still runs it" }
                }
            }
            div(class="card trigger-card", data-testid="trigger") {
                h2 { "Trigger" }
                div(class="field") {
                    label(r#for="trigger-kind") { "Starts" }
                    select(id="trigger-kind", on:change=move |e: web_sys::Event| trigger.kind.set(event_value(&e))) { (trigger_kinds) }
                    (errors_under(errors, "trigger.kind".into()))
                    (field_error(errors, "trigger".into()))
                }
                (match trigger.kind.get_clone().as_str() {
                    "on_event" => view! {
                        div(class="field") {
                            label(r#for="trigger-events") { "Events * " span(class="hint") { "e.g. entity.created, entity.* or build.failed; separated by commas" } }
                            input(id="trigger-events", placeholder="entity.created", prop:value=trigger.events.get_clone(),
                                on:input=move |e: web_sys::Event| trigger.events.set(event_value(&e)))
                            (errors_under(errors, "trigger.events".into()))
                        }
                        div(class="field") {
                            label(r#for="trigger-model") { "Model " span(class="hint") { "a plural, e.g. invoices; empty for any" } }
                            input(id="trigger-model", list="trigger-models", prop:value=trigger.model.get_clone(),
                                on:input=move |e: web_sys::Event| trigger.model.set(event_value(&e)))
                            datalist(id="trigger-models") { (model_options()) }
                            (errors_under(errors, "trigger.model".into()))
                        }
                        div(class="field") {
                            label(r#for="trigger-condition") { "Condition " span(class="hint") { "JavaScript over the record, e.g. amount > 1000; empty for every event" } }
                            input(id="trigger-condition", class="code", prop:value=trigger.condition.get_clone(),
                                on:input=move |e: web_sys::Event| trigger.condition.set(event_value(&e)))
                            (errors_under(errors, "trigger.condition".into()))
                        }
                    },
                    "schedule" => view! {
                        div(class="field") {
                            label(r#for="trigger-cron") { "Cron * " span(class="hint") { "five fields (minute first) or six (second first), in UTC, e.g. 0 9 * * 1-5" } }
                            input(id="trigger-cron", class="code", placeholder="0 9 * * 1-5", prop:value=trigger.cron.get_clone(),
                                on:input=move |e: web_sys::Event| trigger.cron.set(event_value(&e)))
                            (errors_under(errors, "trigger.cron".into()))
                        }
                    },
                    _ => view! { p(class="hint") { "Runs only when started with Run now (or ExecuteWorkflow)." } },
                })
            }
            h2 { "Actions" }
            p(class="hint") { "They run in this order; each reads the outputs of those before it by name. Drag a card by its handle, or use its Move buttons, to reorder." }
            (field_error(errors, "actions".into()))
            ol(class="actions-list", data-testid="actions") { (cards()) }
            div(class="form-actions") {
                button(r#type="button", on:click=move |_| add(None)) { "Add action" }
            }
            div(class="form-actions") {
                button(class="primary", r#type="submit", disabled=busy.get() || !loaded.get()) {
                    (if busy.get() { "Saving…" } else if editing { "Save" } else { "Create workflow" })
                }
                (if editing { let delete = delete.clone(); view! { button(class="danger", r#type="button", on:click=delete) { "Delete" } } } else { view! {} })
                (saved.get_clone().map(|m| view! { span(role="status", class="muted") { (m) } }))
            }
        }
        (runs)
    }
}

fn fill(
    workflow: &Workflow,
    name: Signal<String>,
    description: Signal<String>,
    enabled: Signal<bool>,
    trigger: TriggerDraft,
) {
    name.set(workflow.name.clone());
    description.set(workflow.description.clone());
    enabled.set(workflow.enabled);
    trigger.set(workflow.trigger.clone().unwrap_or_default());
}

/// One action's card: its name, kind, settings, retries, and the controls that move or
/// remove it.
#[allow(clippy::too_many_arguments)]
fn action_card(
    i: usize,
    count: usize,
    draft: ActionDraft,
    errors: Signal<Vec<(String, String)>>,
    dragged: Signal<Option<u32>>,
    move_action: impl Fn(u32, isize) + Copy + 'static,
    drop_on: impl Fn(u32) + Copy + 'static,
    drafts: Signal<Vec<ActionDraft>>,
) -> View {
    let key = draft.key;
    let at = format!("actions[{i}]");
    let kinds: Vec<View> = workflow::ACTION_KINDS
        .iter()
        .map(|(kind, label)| view! { option(value=*kind, selected=draft.kind.get_clone() == *kind) { (*label) } })
        .collect();
    let settings_form = {
        let at = at.clone();
        move || {
            let kind = draft.kind.get_clone();
            workflow::settings(&kind)
                .iter()
                .map(|setting| setting_input(draft, setting, &at, errors))
                .collect::<Vec<View>>()
        }
    };
    let label = format!("Action {} of {count}", i + 1);
    let number = format!("{}.", i + 1);
    let (name_id, kind_id, retries_id, backoff_id) = (
        format!("action-{key}-name"),
        format!("action-{key}-kind"),
        format!("action-{key}-retries"),
        format!("action-{key}-backoff"),
    );
    let invalid = {
        let at = at.clone();
        move |part: &str| has_error_under(errors, &format!("{at}.{part}"))
    };
    let invalid_name = invalid.clone();
    let (name_for, kind_for, retries_for, backoff_for) =
        (name_id.clone(), kind_id.clone(), retries_id.clone(), backoff_id.clone());
    let name_errors = errors_under(errors, format!("{at}.name"));
    let kind_errors = errors_under(errors, format!("{at}.kind"));
    // Only the config as a whole: each setting shows its own under its input.
    let config_errors = field_error(errors, format!("{at}.config"));
    let retries_errors = errors_under(errors, format!("{at}.retries"));
    let backoff_errors = errors_under(errors, format!("{at}.backoff_ms"));
    view! {
        li(class=move || if dragged.get() == Some(key) { "card action-card dragging" } else { "card action-card" },
            aria-label=label, data-testid="action",
            on:dragover=move |e: web_sys::DragEvent| e.prevent_default(),
            on:drop=move |e: web_sys::DragEvent| { e.prevent_default(); drop_on(key); }) {
            div(class="action-head") {
                span(class="handle", draggable="true", title="Drag to reorder", aria-hidden="true",
                    on:dragstart=move |e: web_sys::DragEvent| {
                        // Firefox starts a drag only when it carries data.
                        if let Some(transfer) = e.data_transfer() {
                            let _ = transfer.set_data("text/plain", &key.to_string());
                            transfer.set_effect_allowed("move");
                        }
                        dragged.set(Some(key));
                    },
                    on:dragend=move |_| dragged.set(None)) { "⋮⋮" }
                strong { (number) " " (draft.name.get_clone()) }
                span(style="flex:1") {}
                button(r#type="button", aria-label="Move up", disabled=i == 0, on:click=move |_| move_action(key, -1)) { "↑" }
                button(r#type="button", aria-label="Move down", disabled=i + 1 == count, on:click=move |_| move_action(key, 1)) { "↓" }
                button(r#type="button", class="danger", aria-label="Remove action",
                    on:click=move |_| { drafts.update(|d| d.retain(|x| x.key != key)); errors.set(Vec::new()); }) { "✕" }
            }
            div(class="action-grid") {
                div(class=move || if invalid_name("name") { "field invalid" } else { "field" }) {
                    label(r#for=name_for) { "Name *" }
                    input(id=name_id, placeholder="notify", prop:value=draft.name.get_clone(),
                        on:input=move |e: web_sys::Event| draft.name.set(event_value(&e)))
                    (name_errors)
                }
                div(class="field") {
                    label(r#for=kind_for) { "Kind" }
                    select(id=kind_id, on:change=move |e: web_sys::Event| draft.kind.set(event_value(&e))) { (kinds) }
                    (kind_errors)
                }
            }
            (settings_form())
            (config_errors)
            details(class="rules") {
                summary(class="hint") { "Retries" }
                div(class="action-grid") {
                    div(class=move || if invalid("retries") { "field invalid" } else { "field" }) {
                        label(r#for=retries_for) { "Retries " span(class="hint") { "0 to 10" } }
                        input(id=retries_id, r#type="number", min="0", max="10", step="1", prop:value=draft.retries.get_clone(),
                            on:input=move |e: web_sys::Event| draft.retries.set(event_value(&e)))
                        (retries_errors)
                    }
                    div(class="field") {
                        label(r#for=backoff_for) { "First wait (ms) " span(class="hint") { "doubles for each next retry" } }
                        input(id=backoff_id, r#type="number", min="0", step="1", prop:value=draft.backoff.get_clone(),
                            on:input=move |e: web_sys::Event| draft.backoff.set(event_value(&e)))
                        (backoff_errors)
                    }
                }
            }
        }
    }
}

/// One setting's label, input, hint and errors.
fn setting_input(
    draft: ActionDraft,
    setting: &'static Setting,
    at: &str,
    errors: Signal<Vec<(String, String)>>,
) -> View {
    let Some(value) = draft.setting(setting.key) else { return view! {} };
    let id = format!("action-{}-{}", draft.key, setting.key);
    let prefix = format!("{at}.config.{}", setting.key);
    let set = move |e: web_sys::Event| value.set(event_value(&e));
    let label_for = id.clone();
    let input = match setting.input {
        SettingInput::Text => view! { input(id=id.clone(), prop:value=value.get_clone(), on:input=set) },
        SettingInput::Number => {
            view! { input(id=id.clone(), r#type="number", step="1", prop:value=value.get_clone(), on:input=set) }
        }
        SettingInput::Json => view! {
            textarea(id=id.clone(), class="code", rows="4", prop:value=value.get_clone(), on:input=set)
        },
        SettingInput::Code => view! {
            textarea(id=id.clone(), class="code", rows="6", prop:value=value.get_clone(), on:input=set)
        },
        SettingInput::Choice(options) => {
            let options: Vec<View> =
                options.iter().map(|o| view! { option(value=*o, selected=value.get_clone() == *o) { (*o) } }).collect();
            view! { select(id=id.clone(), on:change=set) { option(value="") { "—" } (options) } }
        }
    };
    let invalid = {
        let prefix = prefix.clone();
        move || has_error_under(errors, &prefix)
    };
    let hint = setting.hint;
    let setting_errors = errors_under(errors, prefix);
    view! {
        div(class=move || if invalid() { "field invalid" } else { "field" }, data-setting=setting.key) {
            label(r#for=label_for) { (setting.label) (if setting.required { " *" } else { "" }) }
            (input)
            (if hint.is_empty() { view! {} } else { view! { div(class="hint") { (hint) } } })
            (setting_errors)
        }
    }
}

/// A saved workflow's runs, newest first, Run now, and the opened run.
#[component(inline_props)]
fn RunHistory(api: Api, id: String) -> View {
    let runs = create_signal(Load::<Vec<WorkflowRun>>::Loading);
    let attempt = create_signal(0u32);
    let opened = create_signal(None::<Load<WorkflowRun>>);
    let opened_id = create_signal(None::<String>);
    let failure = create_signal(None::<String>);
    let input = create_signal(String::from("{}"));
    let starting = create_signal(false);
    load_each(attempt, {
        let (api, id) = (api.clone(), id.clone());
        move || {
            let (api, id) = (api.clone(), id.clone());
            async move {
                let request = ListWorkflowRunsRequest { id, page_size: 20, ..Default::default() };
                match call!(api, workflows.list_workflow_runs(request)) {
                    Ok(page) => runs.set(Load::Ready(page.runs)),
                    Err(error) => runs.set(Load::Failed(error)),
                }
            }
        }
    });
    // Shows run `run` and follows it while it runs; the list is read again when it ends.
    let open = {
        let api = api.clone();
        move |run: String| {
            opened_id.set(Some(run.clone()));
            opened.set(Some(Load::Loading));
            let api = api.clone();
            sycamore::futures::spawn_local_scoped(async move {
                let mut pause = 300;
                loop {
                    if opened_id.with_untracked(|o| o.as_deref() != Some(run.as_str())) {
                        return;
                    }
                    let answer = call!(api, workflows.get_workflow_run(GetWorkflowRunRequest { id: run.clone() }));
                    if opened_id.with_untracked(|o| o.as_deref() != Some(run.as_str())) {
                        return;
                    }
                    match answer {
                        Ok(found) => {
                            let found = found.run.unwrap_or_default();
                            let running = found.status == "running";
                            opened.set(Some(Load::Ready(found)));
                            if !running {
                                attempt.set(attempt.get_untracked() + 1);
                                return;
                            }
                        }
                        Err(error) => {
                            opened.set(Some(Load::Failed(error)));
                            return;
                        }
                    }
                    crate::api::sleep_ms(pause).await;
                    pause = (pause * 2).min(3000);
                }
            });
        }
    };
    let run_now = {
        let (api, id, open) = (api.clone(), id.clone(), open.clone());
        move |_| {
            let given = input.get_clone();
            let given = given.trim();
            let input = if given.is_empty() {
                None
            } else {
                match serde_json::from_str::<Struct>(given) {
                    Ok(input) => Some(input),
                    Err(e) => {
                        failure.set(Some(format!("The input must be a JSON object: {e}")));
                        return;
                    }
                }
            };
            failure.set(None);
            starting.set(true);
            let (api, id, open) = (api.clone(), id.clone(), open.clone());
            sycamore::futures::spawn_local_scoped(async move {
                let started = call!(api, workflows.execute_workflow(ExecuteWorkflowRequest { id, input }));
                starting.set(false);
                match started {
                    Ok(started) => {
                        attempt.set(attempt.get_untracked() + 1);
                        if let Some(run) = started.run {
                            open(run.id);
                        }
                    }
                    Err(error) => failure.set(Some(error.message)),
                }
            });
        }
    };
    let rerun = {
        let (api, open) = (api.clone(), open.clone());
        move |run: String| {
            let (api, open) = (api.clone(), open.clone());
            sycamore::futures::spawn_local_scoped(async move {
                match call!(api, workflows.rerun_workflow_run(RerunWorkflowRunRequest { id: run })) {
                    Ok(again) => {
                        attempt.set(attempt.get_untracked() + 1);
                        if let Some(run) = again.run {
                            open(run.id);
                        }
                    }
                    Err(error) => failure.set(Some(error.message)),
                }
            });
        }
    };
    let list = {
        let open = open.clone();
        move || match runs.get_clone() {
            Load::Loading => view! { Loading(what="runs") },
            Load::Failed(error) => view! { ErrorNotice(error=error, retry=move || attempt.set(attempt.get() + 1)) },
            Load::Ready(listed) if listed.is_empty() => view! { p(class="muted") { "No runs yet." } },
            Load::Ready(listed) => {
                let rows: Vec<View> = listed
                    .into_iter()
                    .map(|run| {
                        let open = open.clone();
                        let (started, duration, trigger) =
                            (when(run.started_at.as_ref()), run_duration(&run), run.trigger.clone());
                        let (run_id, chosen, row_id) = (run.id.clone(), run.id.clone(), run.id.clone());
                        let current = move || opened_id.with(|o| o.as_deref() == Some(chosen.as_str()));
                        let status = badge(&run.status);
                        view! {
                            tr(data-run=row_id, aria-current=move || current().to_string()) {
                                td { button(r#type="button", class="link", on:click=move |_| open(run_id.clone())) { (started) } }
                                td { (trigger) }
                                td { (status) }
                                td(class="muted") { (duration) }
                            }
                        }
                    })
                    .collect();
                view! {
                    div(class="table-wrap") {
                        table {
                            thead { tr { th { "Started (UTC)" } th { "By" } th { "Status" } th { "Took" } } }
                            tbody { (rows) }
                        }
                    }
                }
            }
        }
    };
    let detail = move || {
        let rerun = rerun.clone();
        opened.get_clone().map(|run| match run {
            Load::Loading => view! { Loading(what="the run") },
            Load::Failed(error) => {
                let retry_id = opened_id.get_clone();
                let open = open.clone();
                view! { ErrorNotice(error=error, retry=move || if let Some(id) = retry_id.clone() { open(id) }) }
            }
            Load::Ready(run) => run_view(run, rerun),
        })
    };
    view! {
        section(data-testid="runs") {
            h2 { "Runs" }
            div(class="card run-now") {
                div(class="field") {
                    label(r#for="run-input") { "Input " span(class="hint") { "a JSON object the actions read as input" } }
                    textarea(id="run-input", class="code", rows="2", prop:value=input.get_clone(),
                        on:input=move |e: web_sys::Event| input.set(event_value(&e)))
                }
                div(class="form-actions") {
                    button(class="primary", r#type="button", disabled=starting.get(), on:click=run_now) { "Run now" }
                    span(class="hint") { "runs the saved workflow" }
                }
                (failure.get_clone().map(|m| view! { div(class="notice error", role="alert") { (m) } }))
            }
            (list())
            (detail())
        }
    }
}

/// One run: its status, what started it, its input and output, and each action's result.
fn run_view(run: WorkflowRun, rerun: impl Fn(String) + Clone + 'static) -> View {
    let steps: Vec<View> = run
        .steps
        .iter()
        .enumerate()
        .map(|(i, step)| {
            let title = format!("{}. {}", i + 1, step.action);
            let facts = format!(
                "{} · {} attempt{} · {} ms",
                step.kind,
                step.attempts,
                if step.attempts == 1 { "" } else { "s" },
                step.duration_ms
            );
            let (input, output, error) =
                (struct_json(step.input.as_ref()), struct_json(step.output.as_ref()), step.error.clone());
            let (action, status, status_badge) = (step.action.clone(), step.status.clone(), badge(&step.status));
            view! {
                li(class="card step", data-action=action, data-status=status) {
                    div(class="action-head") {
                        strong { (title) }
                        (status_badge)
                        span(class="muted") { (facts) }
                    }
                    (if error.is_empty() { view! {} } else { let error = error.clone(); view! { div(class="field-error") { (error) } } })
                    details {
                        summary(class="hint") { "Input and output" }
                        p(class="hint") { "Input (settings as run)" }
                        pre(class="log") { (input) }
                        p(class="hint") { "Output" }
                        pre(class="log") { (output) }
                    }
                }
            }
        })
        .collect();
    let heading = format!("Run of {}", when(run.started_at.as_ref()));
    let facts = format!(
        "started by {}{} · {}",
        run.trigger,
        if run.rerun_of.is_empty() { String::new() } else { format!(" (again, of {})", run.rerun_of) },
        run_duration(&run)
    );
    let (run_input, run_output, error, status, id) = (
        struct_json(run.input.as_ref()),
        struct_json(run.output.as_ref()),
        run.error.clone(),
        run.status.clone(),
        run.id.clone(),
    );
    let no_steps = steps.is_empty();
    let status_badge = badge(&status);
    view! {
        div(class="card run", data-testid="run", data-status=status) {
            div(class="action-head") {
                h3(style="margin:0") { (heading) }
                (status_badge)
                span(style="flex:1") {}
                button(r#type="button", on:click=move |_| rerun(id.clone())) { "Re-run" }
            }
            p(class="muted") { (facts) }
            (if error.is_empty() { view! {} } else { let error = error.clone(); view! { div(class="notice error") { (error) } } })
            details {
                summary(class="hint") { "Run input and output" }
                p(class="hint") { "Input" }
                pre(class="log") { (run_input) }
                p(class="hint") { "Output (the last action's)" }
                pre(class="log") { (run_output) }
            }
            (if no_steps { view! { p(class="muted") { "No action has run yet." } } } else { view! {} })
            ol(class="steps") { (steps) }
        }
    }
}
