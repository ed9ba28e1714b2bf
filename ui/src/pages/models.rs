//! Models: the list, a model's fields and versions, and the builder that creates or
//! changes one. Fields are added, removed, renamed and reordered (dragged, or moved with
//! Alt+↑/↓); a change to an existing model is first shown as the server's plan, and a
//! change that would lose data says what and waits for a confirmation.

use kiln_proto::v1::{
    CreateModelRequest, Field, GetModelRequest, ListModelVersionsRequest, Model, ModelVersion, PlanModelChangeRequest,
    Relation, SchemaChange, UpdateModelRequest,
};
use sycamore::prelude::*;

use crate::{
    api::ApiError,
    app::use_shared,
    call,
    widgets::{ErrorNotice, Load, Loading, event_value, field_error, load_each, when},
};

const FIELD_TYPES: [&str; 13] = [
    "text",
    "long_text",
    "integer",
    "decimal",
    "boolean",
    "date",
    "datetime",
    "email",
    "url",
    "enum",
    "json",
    "uuid",
    "relation",
];

#[component]
pub fn ModelList() -> View {
    let shared = use_shared();
    let models = shared.models;
    let body = move || match models.get_clone() {
        Load::Loading => view! { Loading(what="models") },
        Load::Failed(error) => {
            let shared = shared.clone();
            view! { ErrorNotice(error=error, retry=move || shared.reload_models()) }
        }
        Load::Ready(models) => {
            let mut models = models;
            models.sort_by(|a, b| {
                (a.is_system, a.label_plural.to_lowercase()).cmp(&(b.is_system, b.label_plural.to_lowercase()))
            });
            let rows: Vec<View> = models
                .into_iter()
                .map(|m| {
                    let href = format!("/models/{}", m.id);
                    let kind = if m.is_system { "platform" } else { "yours" };
                    let fields = m.fields.len().to_string();
                    let version = m.version.to_string();
                    view! { tr { td { a(href=href) { (m.label_plural) } } td { code { (m.plural) } } td { (fields) } td { (version) } td(class="muted") { (kind) } } }
                })
                .collect();
            view! {
                div(class="table-wrap") {
                    table {
                        thead { tr { th { "Model" } th { "API name" } th { "Fields" } th { "Version" } th { "" } } }
                        tbody { (rows) }
                    }
                }
            }
        }
    };
    view! {
        div(class="page-head") { h1 { "Models" } a(class="button primary", href="/models/new") { "New model" } }
        (body())
    }
}

#[component(inline_props)]
pub fn ModelDetail(id: String) -> View {
    let shared = use_shared();
    let model = create_signal(Load::<Model>::Loading);
    let versions = create_signal(Vec::<ModelVersion>::new());
    let attempt = create_signal(0u32);
    load_each(attempt, {
        let (api, id) = (shared.api.clone(), id.clone());
        move || {
            let (api, id) = (api.clone(), id.clone());
            async move {
                match call!(api, models.get_model(GetModelRequest { id: id.clone() })) {
                    Ok(found) => model.set(Load::Ready(found.model.unwrap_or_default())),
                    Err(error) => model.set(Load::Failed(error)),
                }
                let request = ListModelVersionsRequest { id, page_size: 50, ..Default::default() };
                if let Ok(listed) = call!(api, models.list_model_versions(request)) {
                    versions.set(listed.versions);
                }
            }
        }
    });
    let content = move || match model.get_clone() {
        Load::Loading => view! { Loading {} },
        Load::Failed(error) => view! { ErrorNotice(error=error, retry=move || attempt.set(attempt.get() + 1)) },
        Load::Ready(model) => {
            let fields: Vec<View> = model
                .fields
                .iter()
                .map(|f| {
                    let rules = rules_of(f);
                    let (name, kind) = (f.name.clone(), f.r#type.clone());
                    view! { tr { td { code { (name) } } td { (kind) } td(class="muted") { (rules) } } }
                })
                .collect();
            let records = format!("/{}", model.plural);
            let edit = format!("/models/{}/edit", model.id);
            let heading = model.label_plural.clone();
            let system = model.is_system;
            let table = model.table_name.clone();
            view! {
                div(class="page-head") {
                    h1 { (heading) }
                    a(class="button", href=records) { "Records" }
                    (if system { view! {} } else { let edit = edit.clone(); view! { a(class="button primary", href=edit) { "Edit fields" } } })
                }
                p(class="muted") { "Table " code { (table) } }
                div(class="table-wrap") {
                    table { thead { tr { th { "Field" } th { "Type" } th { "Rules" } } } tbody { (fields) } }
                }
                h2 { "Versions" }
                div(class="table-wrap") {
                    table {
                        thead { tr { th { "Version" } th { "Change" } th { "When" } } }
                        tbody {
                            (versions.get_clone().into_iter().map(|v| {
                                let (number, summary, at) = (v.version.to_string(), v.summary.clone(), when(v.created_at.as_ref()));
                                view! { tr { td { (number) } td { (summary) } td(class="muted") { (at) } } }
                            }).collect::<Vec<View>>())
                        }
                    }
                }
            }
        }
    };
    view! { (content()) }
}

fn rules_of(field: &Field) -> String {
    let mut rules = Vec::new();
    if field.required {
        rules.push("required".to_string());
    }
    if field.unique {
        rules.push("unique".into());
    }
    if let Some(min) = field.min {
        rules.push(format!("≥ {min}"));
    }
    if let Some(max) = field.max {
        rules.push(format!("≤ {max}"));
    }
    if let Some(max) = field.max_length {
        rules.push(format!("at most {max} characters"));
    }
    if !field.enum_values.is_empty() {
        rules.push(field.enum_values.join(" | "));
    }
    if let Some(relation) = &field.relation {
        rules.push(format!("→ {}", relation.target));
    }
    rules.join(", ")
}

/// One field being edited in the builder.
#[derive(Clone, Copy, PartialEq)]
struct Draft {
    key: u32,
    name: Signal<String>,
    kind: Signal<String>,
    required: Signal<bool>,
    /// Enum values, comma-separated.
    values: Signal<String>,
    target: Signal<String>,
    unique: Signal<bool>,
    /// Bounds and length limits as typed (empty: none).
    min: Signal<String>,
    max: Signal<String>,
    max_length: Signal<String>,
    pattern: Signal<String>,
    /// The field as it was (its other rules are kept; its name is its previous name).
    original: Signal<Option<Field>>,
}

impl Draft {
    fn new(key: u32, field: Option<Field>) -> Draft {
        let f = field.clone().unwrap_or_else(|| Field { r#type: "text".into(), ..Field::default() });
        Draft {
            key,
            name: create_signal(f.name.clone()),
            kind: create_signal(f.r#type.clone()),
            required: create_signal(f.required),
            values: create_signal(f.enum_values.join(", ")),
            target: create_signal(f.relation.as_ref().map(|r| r.target.clone()).unwrap_or_default()),
            unique: create_signal(f.unique),
            min: create_signal(f.min.map(|n| n.to_string()).unwrap_or_default()),
            max: create_signal(f.max.map(|n| n.to_string()).unwrap_or_default()),
            max_length: create_signal(f.max_length.map(|n| n.to_string()).unwrap_or_default()),
            pattern: create_signal(f.pattern.clone()),
            original: create_signal(field),
        }
    }

    fn field(&self) -> Field {
        let mut field = self.original.get_clone().unwrap_or_default();
        let previous = field.name.clone();
        field.previous_name =
            if !previous.is_empty() && previous != self.name.get_clone() { previous } else { String::new() };
        field.name = self.name.get_clone().trim().to_string();
        field.r#type = self.kind.get_clone();
        field.required = self.required.get();
        field.unique = self.unique.get();
        // A bound that is not a number is left for the server to name (it is sent as is
        // only when it parses; the field's error says what was wrong otherwise).
        field.min = self.min.with(|v| v.trim().parse().ok());
        field.max = self.max.with(|v| v.trim().parse().ok());
        field.max_length = self.max_length.with(|v| v.trim().parse().ok());
        field.pattern = self.pattern.get_clone().trim().to_string();
        field.enum_values = if field.r#type == "enum" {
            self.values.get_clone().split(',').map(|v| v.trim().to_string()).filter(|v| !v.is_empty()).collect()
        } else {
            Vec::new()
        };
        field.relation = (field.r#type == "relation")
            .then(|| Relation { target: self.target.get_clone(), ..field.relation.clone().unwrap_or_default() });
        field
    }
}

/// A field's rules, folded away until asked for: unique, bounds for numbers, length and
/// pattern for text. The server's errors for them show here too.
fn rules(i: usize, draft: Draft) -> View {
    let numeric = move || matches!(draft.kind.get_clone().as_str(), "integer" | "decimal");
    let textual = move || matches!(draft.kind.get_clone().as_str(), "text" | "long_text" | "email" | "url");
    let rule_errors = field_error_any(i);
    let number_input = move |label: &'static str, value: Signal<String>| {
        view! {
            label(class="hint", style="display:flex;gap:.25rem;align-items:center;margin:0") {
                (label)
                input(r#type="number", step="any", aria-label=label, style="width:7rem", prop:value=value.get_clone(),
                    on:input=move |e: web_sys::Event| value.set(event_value(&e)))
            }
        }
    };
    view! {
        details(class="rules") {
            summary(class="hint") { "Rules" }
            div(style="display:flex;gap:.75rem;flex-wrap:wrap;align-items:center;margin-top:.5rem") {
                label(class="hint", style="display:flex;gap:.25rem;align-items:center;margin:0") {
                    input(r#type="checkbox", checked=draft.unique.get(), on:change=move |e: web_sys::Event| draft.unique.set(event_value(&e) == "true"))
                    "unique"
                }
                (if numeric() { view! { (number_input("min", draft.min)) (number_input("max", draft.max)) } } else { view! {} })
                (if textual() {
                    view! {
                        (number_input("max length", draft.max_length))
                        label(class="hint", style="display:flex;gap:.25rem;align-items:center;margin:0") {
                            "pattern"
                            input(aria-label="pattern", placeholder="^INV-[0-9]+$", prop:value=draft.pattern.get_clone(),
                                on:input=move |e: web_sys::Event| draft.pattern.set(event_value(&e)))
                        }
                    }
                } else { view! {} })
            }
            (rule_errors)
        }
    }
}

/// The server's errors for a field's rules (`fields[i].min`, …), by the rules.
fn field_error_any(i: usize) -> View {
    let errors = use_context::<BuilderErrors>().0;
    let prefix = format!("fields[{i}].");
    view! {
        (errors.with(|all| {
            all.iter()
                .filter(|(field, _)| field.starts_with(&prefix) && !field.ends_with(".name"))
                .map(|(field, message)| {
                    let text = format!("{}: {message}", field.trim_start_matches(&prefix));
                    view! { div(class="field-error", role="alert") { (text) } }
                })
                .collect::<Vec<View>>()
        }))
    }
}

/// The builder's field errors, for the rows' rule sections.
#[derive(Clone, Copy)]
struct BuilderErrors(Signal<Vec<(String, String)>>);

#[component(inline_props)]
pub fn ModelBuilder(id: Option<String>) -> View {
    let shared = use_shared();
    let editing = id.is_some();
    let name = create_signal(String::new());
    let drafts = create_signal(Vec::<Draft>::new());
    let next_key = create_signal(0u32);
    let errors = create_signal(Vec::<(String, String)>::new());
    provide_context(BuilderErrors(errors));
    let failure = create_signal(None::<ApiError>);
    let plan = create_signal(None::<(Vec<SchemaChange>, bool)>);
    let confirmed = create_signal(false);
    let busy = create_signal(false);
    let loaded = create_signal(!editing);
    let dragged = create_signal(None::<u32>);
    let add = move |field: Option<Field>| {
        let key = next_key.get();
        next_key.set(key + 1);
        drafts.update(|d| d.push(Draft::new(key, field)));
    };
    let attempt = create_signal(0u32);
    if let Some(id) = id.clone() {
        let api = shared.api.clone();
        load_each(attempt, move || {
            let (api, id) = (api.clone(), id.clone());
            async move {
                match call!(api, models.get_model(GetModelRequest { id })) {
                    Ok(found) => {
                        let model = found.model.unwrap_or_default();
                        name.set(model.name.clone());
                        drafts.set(Vec::new());
                        for field in model.fields {
                            add(Some(field));
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
    let move_field = move |key: u32, by: isize| {
        drafts.update(|d| crate::reorder::step(d, |x| x.key, key, by));
        plan.set(None);
    };
    let drop_on = move |key: u32| {
        if let Some(from) = dragged.get() {
            drafts.update(|d| crate::reorder::onto(d, |x| x.key, from, key));
        }
        dragged.set(None);
        plan.set(None);
    };
    let targets = {
        let shared = shared.clone();
        move || match shared.models.get_clone() {
            Load::Ready(models) => models.into_iter().map(|m| m.plural).collect::<Vec<_>>(),
            _ => Vec::new(),
        }
    };
    let save = {
        let (shared, id) = (shared.clone(), id.clone());
        move |event: web_sys::SubmitEvent| {
            event.prevent_default();
            if busy.get() {
                return;
            }
            let fields: Vec<Field> = drafts.get_clone().iter().map(Draft::field).collect();
            let mut found = Vec::new();
            if !editing && name.get_clone().trim().is_empty() {
                found.push(("name".to_string(), "is required".to_string()));
            }
            for (i, field) in fields.iter().enumerate() {
                if field.name.is_empty() {
                    found.push((format!("fields[{i}].name"), "is required".into()));
                }
            }
            errors.set(found.clone());
            if !found.is_empty() {
                return;
            }
            busy.set(true);
            failure.set(None);
            let (shared, id) = (shared.clone(), id.clone());
            sycamore::futures::spawn_local_scoped(async move {
                let api = shared.api.clone();
                let outcome = match id {
                    None => {
                        let request = CreateModelRequest {
                            name: name.get_clone().trim().to_string(),
                            fields,
                            ..Default::default()
                        };
                        call!(api, models.create_model(request)).map(|r| r.model.map(|m| m.id))
                    }
                    Some(id) if plan.with(Option::is_none) => {
                        // First the plan; saving is the second step.
                        match call!(api, models.plan_model_change(PlanModelChangeRequest { id, fields })) {
                            Ok(planned) => {
                                plan.set(Some((planned.changes, planned.destructive)));
                                Ok(None)
                            }
                            Err(error) => Err(error),
                        }
                    }
                    Some(id) => {
                        let request = UpdateModelRequest {
                            id,
                            fields,
                            confirm_data_loss: confirmed.get(),
                            summary: "changed in the model builder".into(),
                            ..Default::default()
                        };
                        call!(api, models.update_model(request)).map(|r| r.model.map(|m| m.id))
                    }
                };
                busy.set(false);
                match outcome {
                    Ok(Some(model_id)) => {
                        shared.reload_models();
                        sycamore_router::navigate(&format!("/models/{model_id}"));
                    }
                    Ok(None) => {}
                    Err(error) => {
                        errors.set(error.fields.clone());
                        failure.set(Some(error));
                    }
                }
            });
        }
    };
    let rows = move || {
        let all = drafts.get_clone();
        let count = all.len();
        all.into_iter()
            .enumerate()
            .map(|(i, draft)| {
                let key = draft.key;
                let options: Vec<View> = FIELD_TYPES.iter().map(|t| view! { option(value=*t, selected=draft.kind.get_clone() == *t) { (*t) } }).collect();
                let name_id = format!("field-name-{i}");
                let extra = move || match draft.kind.get_clone().as_str() {
                    "enum" => view! {
                        input(aria-label="Values, separated by commas", placeholder="draft, sent, paid",
                            prop:value=draft.values.get_clone(), on:input=move |e: web_sys::Event| draft.values.set(event_value(&e)))
                    },
                    "relation" => {
                        let target_options: Vec<View> = targets()
                            .into_iter()
                            .map(|t| {
                                let (value, label, chosen) = (t.clone(), t.clone(), draft.target.get_clone() == t);
                                view! { option(value=value, selected=chosen) { (label) } }
                            })
                            .collect();
                        view! {
                            select(aria-label="Related model", on:change=move |e: web_sys::Event| draft.target.set(event_value(&e))) {
                                option(value="") { "related model…" }
                                (target_options)
                            }
                        }
                    }
                    _ => view! {},
                };
                let label = format!("Field {} of {count}", i + 1);
                view! {
                    li(class=move || if dragged.get() == Some(key) { "field-row dragging" } else { "field-row" },
                        draggable="true", aria-label=label,
                        on:dragstart=move |e: web_sys::DragEvent| {
                            // Firefox starts a drag only when it carries data.
                            if let Some(transfer) = e.data_transfer() {
                                let _ = transfer.set_data("text/plain", &key.to_string());
                                transfer.set_effect_allowed("move");
                            }
                            dragged.set(Some(key));
                        },
                        on:dragend=move |_| dragged.set(None),
                        on:dragover=move |e: web_sys::DragEvent| e.prevent_default(),
                        on:drop=move |e: web_sys::DragEvent| { e.prevent_default(); drop_on(key); },
                        on:keydown=move |e: web_sys::KeyboardEvent| {
                            if e.alt_key() && e.key() == "ArrowUp" { e.prevent_default(); move_field(key, -1); }
                            if e.alt_key() && e.key() == "ArrowDown" { e.prevent_default(); move_field(key, 1); }
                        }) {
                        span(class="handle", aria-hidden="true", title="Drag to reorder") { "⋮⋮" }
                        div {
                            input(id=name_id, aria-label="Field name", placeholder="field_name", prop:value=draft.name.get_clone(),
                                on:input=move |e: web_sys::Event| { draft.name.set(event_value(&e)); plan.set(None); })
                            (field_error(errors, format!("fields[{i}].name")))
                            (extra())
                            (rules(i, draft))
                        }
                        select(aria-label="Type", on:change=move |e: web_sys::Event| { draft.kind.set(event_value(&e)); plan.set(None); }) { (options) }
                        div(style="display:flex;gap:.25rem;align-items:center;flex-wrap:wrap") {
                            label(class="hint", style="display:flex;gap:.25rem;align-items:center;margin:0") {
                                input(r#type="checkbox", checked=draft.required.get(), on:change=move |e: web_sys::Event| { draft.required.set(event_value(&e) == "true"); plan.set(None); })
                                "required"
                            }
                            button(r#type="button", aria-label="Move up", disabled=i == 0, on:click=move |_| move_field(key, -1)) { "↑" }
                            button(r#type="button", aria-label="Move down", disabled=i + 1 == count, on:click=move |_| move_field(key, 1)) { "↓" }
                            button(r#type="button", class="danger", aria-label="Remove field",
                                on:click=move |_| { drafts.update(|d| d.retain(|x| x.key != key)); plan.set(None); }) { "✕" }
                        }
                    }
                }
            })
            .collect::<Vec<View>>()
    };
    let planned = move || {
        plan.get_clone().map(|(changes, destructive)| {
            let items: Vec<View> = changes
                .into_iter()
                .map(|c| {
                    let class = if c.destructive { "field-error" } else { "" };
                    view! { li(class=class) { (c.description) } }
                })
                .collect();
            let empty = items.is_empty();
            view! {
                div(class="card", data-testid="plan") {
                    h2 { "What saving will do" }
                    (if empty { view! { p(class="muted") { "Nothing changes." } } } else { view! { ul { (items) } } })
                    (if destructive {
                        view! {
                            label(class="notice error", style="display:flex;gap:.5rem;align-items:center") {
                                input(r#type="checkbox", on:change=move |e: web_sys::Event| confirmed.set(event_value(&e) == "true"))
                                "I understand that this deletes data."
                            }
                        }
                    } else { view! {} })
                }
            }
        })
    };
    let heading = if editing { "Edit fields" } else { "New model" };
    let action = move || {
        if !editing {
            "Create model"
        } else if plan.with(Option::is_none) {
            "Review changes"
        } else {
            "Save changes"
        }
    };
    let blocked =
        move || busy.get() || !loaded.get() || plan.with(|p| p.as_ref().is_some_and(|(_, d)| *d)) && !confirmed.get();
    view! {
        h1 { (heading) }
        (failure.get_clone().map(|error| if loaded.get() {
            view! { div(class="notice error", role="alert") { (error.message) } }
        } else {
            // The model did not load: nothing to edit until it does.
            view! { ErrorNotice(error=error, retry=move || attempt.set(attempt.get() + 1)) }
        }))
        form(class="form", on:submit=save, novalidate=true) {
            (if editing { view! {} } else {
                view! {
                    div(class="field") {
                        label(r#for="model-name") { "Name " span(class="hint") { "singular, e.g. Invoice" } }
                        input(id="model-name", prop:value=name.get_clone(), on:input=move |e: web_sys::Event| name.set(event_value(&e)))
                        (field_error(errors, "name".into()))
                    }
                }
            })
            h2 { "Fields" }
            p(class="hint") { "Drag a field, or press Alt+↑ / Alt+↓ on it, to reorder." }
            ul(class="fields-list") { (rows()) }
            div(class="form-actions") {
                button(r#type="button", on:click=move |_| { add(None); plan.set(None); }) { "Add field" }
            }
            (planned())
            div(class="form-actions") {
                button(class="primary", r#type="submit", disabled=blocked()) { (action()) }
                a(class="button", href="/models") { "Cancel" }
            }
        }
    }
}
