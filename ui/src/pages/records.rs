//! The generic views of a model's records, drawn from the model's fields: a list with
//! columns, sorting, a filter and pages; a detail; a form whose inputs follow the field
//! types, checked against the field rules before it is sent and showing the server's
//! field errors next to their fields. Every model, system or user, gets them. The list
//! and the detail follow the records' changes (`WatchEntities`), so what others change
//! shows without a reload.

use std::collections::HashMap;

use futures_util::StreamExt as _;
use kiln_proto::{
    v1::{
        CreateEntityRequest, DeleteEntityRequest, EntityChange, Field, GetEntityRequest, ListEntitiesRequest, Model,
        UpdateEntityRequest, WatchEntitiesRequest,
    },
    wkt::{Struct, Value, value::Kind},
};
use sycamore::prelude::*;

use crate::{
    api::ApiError,
    app::{Shared, use_shared},
    call,
    fields::{self, Input},
    widgets::{ErrorNotice, Load, Loading, event_value, field_error, load_each},
};

/// Renders `page` with the model named `plural` once the models are loaded.
fn with_model(shared: &Shared, plural: String, page: impl Fn(Model) -> View + 'static) -> View {
    let shared = shared.clone();
    let models = shared.models;
    view! {
        (match models.get_clone() {
            Load::Loading => view! { Loading(what="models") },
            Load::Failed(error) => {
                let shared = shared.clone();
                view! { ErrorNotice(error=error, retry=move || shared.reload_models()) }
            }
            Load::Ready(_) => match shared.model(&plural) {
                Some(model) => page(model),
                None => {
                    let plural = plural.clone();
                    view! { div(class="empty") { h1 { "Not found" } p { "There is no model “" (plural) "” in this workspace." } } }
                }
            },
        })
    }
}

fn title(model: &Model) -> String {
    if model.label_plural.is_empty() { model.plural.clone() } else { model.label_plural.clone() }
}

fn singular_label(model: &Model) -> String {
    if model.label.is_empty() { model.singular.clone() } else { model.label.clone() }
}

fn field_label(field: &Field) -> String {
    if field.label.is_empty() { field.name.clone() } else { field.label.clone() }
}

fn text_of(record: &Struct, name: &str) -> String {
    match record.fields.get(name).and_then(|v| v.kind.as_ref()) {
        Some(Kind::StringValue(s)) => s.clone(),
        _ => String::new(),
    }
}

/// The words a record goes by: its title field, else its id.
fn record_title(model: &Model, record: &Struct) -> String {
    let field = if model.title_field.is_empty() {
        model.fields.first().map(|f| f.name.as_str())
    } else {
        Some(model.title_field.as_str())
    };
    let kind =
        field.and_then(|f| model.fields.iter().find(|x| x.name == f)).map(|f| f.r#type.clone()).unwrap_or_default();
    let shown = field.map(|f| fields::display(&kind, record.fields.get(f))).unwrap_or_default();
    if shown.is_empty() { text_of(record, "id") } else { shown }
}

/// Follows the committed changes of `plural`'s records while the page is shown: `changed`
/// gets each change, and `None` after the watch was opened again (changes made meanwhile
/// were not seen: the page reads again).
fn follow_changes(api: crate::api::Api, plural: String, changed: impl Fn(Option<EntityChange>) + 'static) {
    sycamore::futures::spawn_local_scoped(async move {
        let (mut pause, mut reopened) = (crate::api::FIRST_REOPEN_PAUSE_MS, false);
        loop {
            if let Ok(mut changes) = call!(api, entities.watch_entities(WatchEntitiesRequest { model: plural.clone() }))
            {
                if reopened {
                    changed(None);
                }
                while let Some(Ok(change)) = changes.next().await {
                    pause = crate::api::FIRST_REOPEN_PAUSE_MS;
                    changed(Some(change));
                }
            }
            crate::api::sleep_ms(pause).await;
            (pause, reopened) = (crate::api::next_reopen_pause(pause), true);
        }
    });
}

#[component(inline_props)]
pub fn RecordList(plural: String) -> View {
    let shared = use_shared();
    let api = shared.api.clone();
    with_model(&shared, plural, move |model| list_view(api.clone(), model))
}

fn list_view(api: crate::api::Api, model: Model) -> View {
    let plural = model.plural.clone();
    let columns: Vec<Field> = model.fields.iter().take(6).cloned().collect();
    let sort = create_signal(String::from("-created_at"));
    let filter_field = create_signal(columns.first().map(|f| f.name.clone()).unwrap_or_default());
    let filter_value = create_signal(String::new());
    let applied = create_signal(None::<(String, String)>);
    // Page tokens: the first page's is empty; the last is the page shown.
    let pages = create_signal(vec![String::new()]);
    let next_token = create_signal(String::new());
    let rows = create_signal(Load::<Vec<Struct>>::Loading);
    let attempt = create_signal(0u32);
    // A change by anyone reads the page shown again, in place (no "Loading…" between).
    let changed = create_signal(0u32);
    let in_place = create_signal(false);
    follow_changes(api.clone(), plural.clone(), move |_| {
        in_place.set(true);
        changed.set(changed.get_untracked() + 1);
    });
    create_effect({
        let (api, plural) = (api.clone(), plural.clone());
        move || {
            let request = ListEntitiesRequest {
                model: plural.clone(),
                page_size: 20,
                page_token: pages.with(|p| p.last().cloned().unwrap_or_default()),
                sort: sort.get_clone(),
                filter: applied.get_clone().into_iter().collect::<HashMap<_, _>>(),
            };
            attempt.track();
            changed.track();
            if !in_place.get_untracked() {
                rows.set(Load::Loading);
            }
            in_place.set(false);
            let api = api.clone();
            sycamore::futures::spawn_local_scoped(async move {
                match call!(api, entities.list_entities(request)) {
                    Ok(page) => {
                        next_token.set(page.next_page_token);
                        rows.set(Load::Ready(page.records));
                    }
                    Err(error) => rows.set(Load::Failed(error)),
                }
            });
        }
    });
    let sort_by = move |name: String| {
        let current = sort.get_clone();
        sort.set(if current == name { format!("-{name}") } else { name });
        pages.set(vec![String::new()]);
    };
    let headers: Vec<View> = columns
        .iter()
        .map(|field| {
            let (name, label) = (field.name.clone(), field_label(field));
            let marker = {
                let name = name.clone();
                move || {
                    let current = sort.get_clone();
                    if current == name { " ▲" } else if current == format!("-{name}") { " ▼" } else { "" }
                }
            };
            let aria = {
                let name = name.clone();
                move || {
                    let current = sort.get_clone();
                    if current == name { "ascending" } else if current == format!("-{name}") { "descending" } else { "none" }
                }
            };
            view! { th(aria-sort=aria()) { button(r#type="button", on:click=move |_| sort_by(name.clone())) { (label) (marker()) } } }
        })
        .collect();
    let filter_options: Vec<View> = columns
        .iter()
        .map(|f| {
            let (name, label) = (f.name.clone(), field_label(f));
            view! { option(value=name) { (label) } }
        })
        .collect();
    let apply_filter = move |event: web_sys::SubmitEvent| {
        event.prevent_default();
        let value = filter_value.get_clone();
        applied.set((!value.trim().is_empty()).then(|| (filter_field.get_clone(), value.trim().to_string())));
        pages.set(vec![String::new()]);
    };
    let body = {
        let (model, plural, columns) = (model.clone(), plural.clone(), columns.clone());
        let span = (columns.len() + 1).to_string();
        move || match rows.get_clone() {
            Load::Loading => {
                let span = span.clone();
                view! { tr { td(colspan=span, class="muted") { "Loading…" } } }
            }
            Load::Failed(error) => {
                let span = span.clone();
                view! {
                    tr { td(colspan=span) { ErrorNotice(error=error, retry=move || attempt.set(attempt.get() + 1)) } }
                }
            }
            Load::Ready(records) if records.is_empty() => {
                let text =
                    if applied.with(Option::is_some) { "No records match the filter." } else { "No records yet." };
                let span = span.clone();
                view! { tr { td(colspan=span, class="empty") { (text) } } }
            }
            Load::Ready(records) => {
                let rows: Vec<View> = records
                    .iter()
                    .map(|record| {
                        let id = text_of(record, "id");
                        let href = format!("/{plural}/{id}");
                        let cells: Vec<View> = columns
                            .iter()
                            .enumerate()
                            .map(|(i, field)| {
                                let shown = fields::display(&field.r#type, record.fields.get(&field.name));
                                if i == 0 {
                                    let shown = if shown.is_empty() { record_title(&model, record) } else { shown };
                                    let href = href.clone();
                                    view! { td { a(href=href) { (shown) } } }
                                } else {
                                    view! { td { (shown) } }
                                }
                            })
                            .collect();
                        let created = fields::display("datetime", record.fields.get("created_at"));
                        view! { tr { (cells) td(class="muted") { (created) } } }
                    })
                    .collect();
                view! { (rows) }
            }
        }
    };
    let heading = title(&model);
    let new_href = format!("/{plural}/new");
    let new_label = format!("New {}", singular_label(&model).to_lowercase());
    view! {
        div(class="page-head") {
            h1 { (heading) }
            a(class="button primary", href=new_href) { (new_label) }
        }
        form(class="toolbar", on:submit=apply_filter, role="search") {
            label(class="hint", r#for="filter-field") { "Filter" }
            select(id="filter-field", aria-label="Field", on:change=move |e: web_sys::Event| filter_field.set(event_value(&e))) { (filter_options) }
            input(id="filter-value", aria-label="Equals", placeholder="equals…", on:input=move |e: web_sys::Event| filter_value.set(event_value(&e)))
            button(r#type="submit") { "Apply" }
            (if applied.with(Option::is_some) {
                view! { button(r#type="button", class="link", on:click=move |_| { applied.set(None); pages.set(vec![String::new()]); }) { "Clear" } }
            } else { view! {} })
        }
        div(class="table-wrap") {
            table(aria-busy=move || rows.with(|r| matches!(r, Load::Loading)).to_string()) {
                thead { tr { (headers) th { "Created" } } }
                tbody { (body) }
            }
        }
        div(class="pager") {
            button(r#type="button", disabled=pages.with(|p| p.len() <= 1),
                on:click=move |_| pages.update(|p| { p.pop(); })) { "Previous" }
            span(class="muted") { "Page " (pages.with(Vec::len)) }
            button(r#type="button", disabled=next_token.with(String::is_empty),
                on:click=move |_| { let token = next_token.get_clone(); pages.update(|p| p.push(token)); }) { "Next" }
        }
    }
}

#[component(inline_props)]
pub fn RecordDetail(plural: String, id: String) -> View {
    let shared = use_shared();
    let api = shared.api.clone();
    with_model(&shared, plural, move |model| detail_view(api.clone(), model, id.clone()))
}

fn detail_view(api: crate::api::Api, model: Model, id: String) -> View {
    let record = create_signal(Load::<Struct>::Loading);
    let attempt = create_signal(0u32);
    let deleting = create_signal(None::<ApiError>);
    load_each(attempt, {
        let (api, model, id) = (api.clone(), model.plural.clone(), id.clone());
        move || {
            let (api, request) = (api.clone(), GetEntityRequest { model: model.clone(), id: id.clone() });
            async move {
                match call!(api, entities.get_entity(request)) {
                    Ok(found) => record.set(Load::Ready(found.record.unwrap_or_default())),
                    Err(error) => record.set(Load::Failed(error)),
                }
            }
        }
    });
    // Another person's edit shows at once; their delete says so.
    follow_changes(api.clone(), model.plural.clone(), {
        let (id, label) = (id.clone(), singular_label(&model).to_lowercase());
        move |change| match change {
            None => attempt.set(attempt.get_untracked() + 1),
            Some(change) if change.id != id => {}
            Some(change) if change.kind == "deleted" => record.set(Load::Failed(ApiError {
                code: tonic::Code::NotFound,
                message: format!("This {label} was deleted."),
                fields: Vec::new(),
            })),
            Some(change) => {
                if let Some(now) = change.record {
                    record.set(Load::Ready(now));
                }
            }
        }
    });
    let delete = {
        let (api, plural, id, label) =
            (api.clone(), model.plural.clone(), id.clone(), singular_label(&model).to_lowercase());
        move |_| {
            let asked =
                window().confirm_with_message(&format!("Delete this {label}? This cannot be undone.")).unwrap_or(false);
            if !asked {
                return;
            }
            let (api, plural, id) = (api.clone(), plural.clone(), id.clone());
            sycamore::futures::spawn_local_scoped(async move {
                match call!(api, entities.delete_entity(DeleteEntityRequest { model: plural.clone(), id })) {
                    Ok(_) => sycamore_router::navigate(&format!("/{plural}")),
                    Err(error) => deleting.set(Some(error)),
                }
            });
        }
    };
    let content = {
        let model = model.clone();
        move || match record.get_clone() {
            Load::Loading => view! { Loading {} },
            Load::Failed(error) => view! { ErrorNotice(error=error, retry=move || attempt.set(attempt.get() + 1)) },
            Load::Ready(record) => {
                let shown: Vec<(String, String, String)> = model
                    .fields
                    .iter()
                    .map(|f| (f.name.clone(), f.r#type.clone(), field_label(f)))
                    .chain([
                        ("id".to_string(), "uuid".to_string(), "ID".to_string()),
                        ("created_at".into(), "datetime".into(), "Created".into()),
                        ("updated_at".into(), "datetime".into(), "Updated".into()),
                    ])
                    .collect();
                let rows: Vec<View> = shown
                    .into_iter()
                    .map(|(name, kind, label)| {
                        let shown = fields::display(&kind, record.fields.get(&name));
                        let shown = if shown.is_empty() { "—".to_string() } else { shown };
                        view! { dt { (label) } dd(data-field=name) { (shown) } }
                    })
                    .collect();
                let heading = record_title(&model, &record);
                view! {
                    h1 { (heading) }
                    div(class="card") { dl(class="detail") { (rows) } }
                }
            }
        }
    };
    let back = format!("/{}", model.plural);
    let edit = format!("/{}/{}/edit", model.plural, id);
    let back_label = format!("← {}", title(&model));
    view! {
        div(class="page-head") {
            a(href=back) { (back_label) }
            span(style="flex:1") {}
            a(class="button", href=edit) { "Edit" }
            button(class="danger", r#type="button", on:click=delete) { "Delete" }
        }
        (deleting.get_clone().map(|error| view! { div(class="notice error", role="alert") { (error.message) } }))
        (content())
    }
}

#[component(inline_props)]
pub fn RecordForm(plural: String, id: Option<String>) -> View {
    let shared = use_shared();
    let api = shared.api.clone();
    with_model(&shared, plural, move |model| form_view(api.clone(), model, id.clone()))
}

fn form_view(api: crate::api::Api, model: Model, id: Option<String>) -> View {
    let values: Vec<(Field, Signal<String>)> =
        model.fields.iter().map(|f| (f.clone(), create_signal(fields::to_input(f, None)))).collect();
    let errors = create_signal(Vec::<(String, String)>::new());
    let failure = create_signal(None::<String>);
    let busy = create_signal(false);
    let loaded = create_signal(id.is_none());
    if let Some(id) = id.clone() {
        let (api, plural, values) = (api.clone(), model.plural.clone(), values.clone());
        sycamore::futures::spawn_local_scoped(async move {
            match call!(api, entities.get_entity(GetEntityRequest { model: plural, id })) {
                Ok(found) => {
                    let record = found.record.unwrap_or_default();
                    for (field, value) in &values {
                        value.set(fields::to_input(field, record.fields.get(&field.name)));
                    }
                    loaded.set(true);
                }
                Err(error) => failure.set(Some(error.message)),
            }
        });
    }
    let submit = {
        let (api, plural, values, id) = (api.clone(), model.plural.clone(), values.clone(), id.clone());
        move |event: web_sys::SubmitEvent| {
            event.prevent_default();
            if busy.get() {
                return;
            }
            let mut record = Struct::default();
            let mut found = Vec::new();
            for (field, value) in &values {
                match fields::parse(field, &value.get_clone()) {
                    Ok(Some(v)) => {
                        record.fields.insert(field.name.clone(), v);
                    }
                    Ok(None) => {
                        record.fields.insert(field.name.clone(), Value { kind: Some(Kind::NullValue(0)) });
                    }
                    Err(message) => found.push((field.name.clone(), message)),
                }
            }
            errors.set(found.clone());
            if !found.is_empty() {
                failure.set(Some(format!(
                    "{} field{} need{} a look.",
                    found.len(),
                    if found.len() == 1 { "" } else { "s" },
                    if found.len() == 1 { "s" } else { "" }
                )));
                focus_field(&found[0].0);
                return;
            }
            failure.set(None);
            busy.set(true);
            let (api, plural, id) = (api.clone(), plural.clone(), id.clone());
            sycamore::futures::spawn_local_scoped(async move {
                let saved = match id {
                    Some(id) => call!(
                        api,
                        entities.update_entity(UpdateEntityRequest {
                            model: plural.clone(),
                            id,
                            record: Some(record),
                            partial: true
                        })
                    )
                    .map(|r| r.record),
                    None => call!(
                        api,
                        entities.create_entity(CreateEntityRequest { model: plural.clone(), record: Some(record) })
                    )
                    .map(|r| r.record),
                };
                busy.set(false);
                match saved {
                    Ok(saved) => sycamore_router::navigate(&format!(
                        "/{plural}/{}",
                        saved.map(|r| text_of(&r, "id")).unwrap_or_default()
                    )),
                    Err(error) => {
                        errors.set(error.fields.clone());
                        if let Some((field, _)) = error.fields.first() {
                            focus_field(field);
                        }
                        failure.set(Some(error.message));
                    }
                }
            });
        }
    };
    let inputs: Vec<View> = values.iter().map(|(field, value)| input_view(&api, field, *value, errors)).collect();
    let heading = match id {
        Some(_) => format!("Edit {}", singular_label(&model).to_lowercase()),
        None => format!("New {}", singular_label(&model).to_lowercase()),
    };
    let cancel = match &id {
        Some(id) => format!("/{}/{id}", model.plural),
        None => format!("/{}", model.plural),
    };
    let empty = model.fields.is_empty();
    view! {
        h1 { (heading) }
        (failure.get_clone().map(|message| view! { div(class="notice error", role="alert") { (message) } }))
        (if empty { view! { p(class="muted") { "This model has no fields yet." } } } else { view! {} })
        form(class="form card", on:submit=submit, novalidate=true, aria-busy=move || (!loaded.get()).to_string()) {
            (inputs)
            div(class="form-actions") {
                button(class="primary", r#type="submit", disabled=busy.get() || !loaded.get()) { (if busy.get() { "Saving…" } else { "Save" }) }
                a(class="button", href=cancel) { "Cancel" }
            }
        }
    }
}

fn focus_field(name: &str) {
    if let Some(element) = document().get_element_by_id(&format!("field-{name}")) {
        use sycamore::web::wasm_bindgen::JsCast;
        if let Some(element) = element.dyn_ref::<web_sys::HtmlElement>() {
            let _ = element.focus();
        }
    }
}

/// One field's label, input and error.
fn input_view(
    api: &crate::api::Api,
    field: &Field,
    value: Signal<String>,
    errors: Signal<Vec<(String, String)>>,
) -> View {
    let id = format!("field-{}", field.name);
    let label = field_label(field);
    let required = field.required;
    let help = field.help_text.clone();
    let name = field.name.clone();
    let field_attribute = name.clone();
    let error_view = field_error(errors, name.clone());
    let invalid = {
        let name = name.clone();
        move || errors.with(|e| e.iter().any(|(f, _)| *f == name))
    };
    let set = move |e: web_sys::Event| value.set(event_value(&e));
    let input_id = {
        let id = id.clone();
        move || id.clone()
    };
    let input = match fields::input_for(field) {
        Input::Checkbox => view! {
            input(id=input_id(), r#type="checkbox", checked=value.with(|v| v == "true"), on:change=set)
        },
        Input::TextArea => view! { textarea(id=input_id(), prop:value=value.get_clone(), on:input=set) },
        Input::Json => json_editor(id.clone(), value),
        Input::Select(options) => {
            let options: Vec<View> = options
                .into_iter()
                .map(|o| {
                    let value = o.clone();
                    view! { option(value=value) { (o) } }
                })
                .collect();
            view! {
                select(id=input_id(), prop:value=value.get_clone(), on:change=set) {
                    option(value="") { "—" }
                    (options)
                }
            }
        }
        Input::Relation { target } => relation_input(api, id.clone(), target, value),
        other => {
            let (kind, step) = match other {
                Input::Number { step } => ("number", step),
                Input::Date => ("date", ""),
                Input::DateTime => ("datetime-local", ""),
                Input::Email => ("email", ""),
                Input::Url => ("url", ""),
                _ => ("text", ""),
            };
            let step = if kind == "datetime-local" { "1" } else { step };
            view! { input(id=input_id(), r#type=kind, step=step, prop:value=value.get_clone(), on:input=set) }
        }
    };
    view! {
        div(class=move || if invalid() { "field invalid" } else { "field" }, data-field=field_attribute) {
            label(r#for=id) { (label) (if required { " *" } else { "" }) }
            (input)
            (if help.is_empty() { view! {} } else { let help = help.clone(); view! { div(class="hint") { (help) } } })
            (error_view)
        }
    }
}

/// A JSON value's editor: monospaced, checked as it is typed (where it breaks, by line and
/// column), laid out on request.
fn json_editor(id: String, value: Signal<String>) -> View {
    let status_id = format!("{id}-json");
    let described = status_id.clone();
    let problem = create_memo(move || value.with(|text| fields::json_problem(text)));
    let format = move |_| {
        if let Some(laid_out) = value.with(|text| fields::format_json(text)) {
            value.set(laid_out);
        }
    };
    view! {
        textarea(id=id, class="code", rows="8", aria-describedby=described,
            aria-invalid=move || problem.with(Option::is_some).to_string(),
            prop:value=value.get_clone(), on:input=move |e: web_sys::Event| value.set(event_value(&e)))
        div(class="json-status") {
            span(id=status_id, class=move || if problem.with(Option::is_some) { "hint bad" } else { "hint" }, aria-live="polite") {
                (problem.get_clone().unwrap_or_else(|| "JSON".into()))
            }
            button(r#type="button", class="link", disabled=move || problem.with(Option::is_some), on:click=format) { "Format" }
        }
    }
}

/// A searchable picker of a record of `target`: typing searches the target's records by
/// their title; the value is the picked record's id.
fn relation_input(api: &crate::api::Api, id: String, target: String, value: Signal<String>) -> View {
    let shared = use_shared();
    let options = create_signal(Vec::<(String, String)>::new());
    let list_id = format!("{id}-options");
    let list_attribute = list_id.clone();
    {
        let (api, target) = (api.clone(), target.clone());
        let model = shared.model(&target);
        sycamore::futures::spawn_local_scoped(async move {
            let request = ListEntitiesRequest { model: target, page_size: 100, ..Default::default() };
            if let (Ok(page), Some(model)) = (call!(api, entities.list_entities(request)), model) {
                options.set(page.records.iter().map(|r| (text_of(r, "id"), record_title(&model, r))).collect());
            }
        });
    }
    let choices = move || {
        options.get_clone().into_iter().map(|(id, title)| view! { option(value=id) { (title) } }).collect::<Vec<View>>()
    };
    view! {
        input(id=id, list=list_attribute, autocomplete="off", placeholder="Search or paste an id",
            prop:value=value.get_clone(), on:input=move |e: web_sys::Event| value.set(event_value(&e)))
        datalist(id=list_id) { (choices()) }
    }
}
