//! The prompt editor (`/prompts/new`, `/prompts/<id>`): a prompt's name, category, type,
//! content and declared variables. Content and variables are saved as a new version made
//! on the version the editor loaded, so a save after someone else's is refused and said
//! plainly, with the user's text kept on screen and the latest a click away. Also the
//! prompt's versions with a line diff between any two, test runs with a value for each
//! variable, and the workspace's provider for those runs (also on Settings). The list of
//! prompts is the generic records list.

use std::collections::HashMap;

use kiln_proto::v1::{
    CreatePromptRequest, CreatePromptVersionRequest, DeletePromptProviderRequest, DiffPromptVersionsRequest,
    DiffPromptVersionsResponse, GetPromptProviderRequest, GetPromptRequest, ListPromptVersionsRequest, Prompt,
    PromptProvider, PromptVariable, PromptVersion, SetPromptProviderRequest, TestPromptRequest, TestPromptResponse,
    UpdatePromptRequest,
};
use sycamore::prelude::*;

use crate::{
    api::{Api, ApiError},
    app::use_shared,
    call,
    widgets::{ErrorNotice, Load, Loading, badge, errors_under, event_value, field_error, load_each, when},
};

const PROMPT_TYPES: [(&str, &str); 2] = [("llm", "LLM"), ("code_generation", "Code generation")];

/// One declared variable being edited.
#[derive(Clone, Copy, PartialEq)]
struct VariableDraft {
    key: u32,
    name: Signal<String>,
    description: Signal<String>,
    required: Signal<bool>,
    default: Signal<String>,
}

impl VariableDraft {
    fn new(key: u32, variable: Option<&PromptVariable>) -> VariableDraft {
        let v = variable.cloned().unwrap_or_default();
        VariableDraft {
            key,
            name: create_signal(v.name),
            description: create_signal(v.description),
            required: create_signal(v.required),
            default: create_signal(v.default_value),
        }
    }

    fn variable(&self) -> PromptVariable {
        PromptVariable {
            name: self.name.get_clone().trim().to_string(),
            description: self.description.get_clone().trim().to_string(),
            required: self.required.get(),
            default_value: self.default.get_clone(),
        }
    }
}

/// A save refused because someone else saved first: the version that is current, the
/// text the user had, and whether the latest was loaded since.
#[derive(Clone, PartialEq)]
struct Conflict {
    current: i32,
    mine: String,
    loaded_latest: bool,
}

#[component(inline_props)]
pub fn PromptEditor(id: Option<String>) -> View {
    let shared = use_shared();
    let api = shared.api.clone();
    let editing = id.is_some();
    let name = create_signal(String::new());
    let category = create_signal(String::new());
    let kind = create_signal("llm".to_string());
    let content = create_signal(String::new());
    let note = create_signal(String::new());
    let variables = create_signal(Vec::<VariableDraft>::new());
    let next_key = create_signal(0u32);
    // The prompt as last loaded or saved: what "changed" is measured against, and the
    // version the next save is made on.
    let loaded = create_signal(None::<Prompt>);
    let errors = create_signal(Vec::<(String, String)>::new());
    let failure = create_signal(None::<ApiError>);
    let status = create_signal(None::<String>);
    let conflict = create_signal(None::<Conflict>);
    let busy = create_signal(false);
    let attempt = create_signal(0u32);
    let versions_changed = create_signal(0u32);
    let add = move |variable: Option<&PromptVariable>| {
        let key = next_key.get_untracked();
        next_key.set(key + 1);
        variables.update(|v| v.push(VariableDraft::new(key, variable)));
    };
    let fill = move |prompt: Prompt| {
        name.set(prompt.name.clone());
        category.set(prompt.category.clone());
        kind.set(if prompt.r#type.is_empty() { "llm".into() } else { prompt.r#type.clone() });
        content.set(prompt.content.clone());
        variables.set(Vec::new());
        for variable in &prompt.variables {
            add(Some(variable));
        }
        loaded.set(Some(prompt));
    };
    if let Some(id) = id.clone() {
        let api = api.clone();
        load_each(attempt, move || {
            let (api, id) = (api.clone(), id.clone());
            async move {
                match call!(api, prompts.get_prompt(GetPromptRequest { id })) {
                    Ok(found) => {
                        fill(found.prompt.unwrap_or_default());
                        failure.set(None);
                    }
                    Err(error) => failure.set(Some(error)),
                }
            }
        });
    }
    let load_latest = {
        let (api, id) = (api.clone(), id.clone());
        move |_| {
            let (api, id) = (api.clone(), id.clone().unwrap_or_default());
            sycamore::futures::spawn_local_scoped(async move {
                match call!(api, prompts.get_prompt(GetPromptRequest { id })) {
                    Ok(found) => {
                        fill(found.prompt.unwrap_or_default());
                        conflict.update(|c| {
                            if let Some(c) = c {
                                c.loaded_latest = true;
                            }
                        });
                        versions_changed.set(versions_changed.get_untracked() + 1);
                    }
                    Err(error) => failure.set(Some(error)),
                }
            });
        }
    };
    let save = {
        let (api, id) = (api.clone(), id.clone());
        move |event: web_sys::SubmitEvent| {
            event.prevent_default();
            if busy.get() {
                return;
            }
            let declared: Vec<PromptVariable> = variables.get_clone().iter().map(VariableDraft::variable).collect();
            let mut found = Vec::new();
            if name.with(|n| n.trim().is_empty()) {
                found.push(("name".to_string(), "is required".to_string()));
            }
            if content.with(|c| c.trim().is_empty()) {
                found.push(("content".into(), "is required".into()));
            }
            for (i, variable) in declared.iter().enumerate() {
                if variable.name.is_empty() {
                    found.push((format!("variables[{i}].name"), "is required".into()));
                }
            }
            errors.set(found.clone());
            status.set(None);
            let refused = ApiError::found_in_form(found, "field");
            let stop = refused.is_some();
            failure.set(refused);
            if stop {
                return;
            }
            busy.set(true);
            let (api, id) = (api.clone(), id.clone());
            let (typed_name, typed_category, typed_kind, typed_content) = (
                name.get_clone().trim().to_string(),
                category.get_clone().trim().to_string(),
                kind.get_clone(),
                content.get_clone(),
            );
            sycamore::futures::spawn_local_scoped(async move {
                let outcome = match id {
                    None => {
                        let request = CreatePromptRequest {
                            name: typed_name,
                            category: typed_category,
                            r#type: typed_kind,
                            content: typed_content,
                            variables: declared,
                        };
                        match call!(api, prompts.create_prompt(request)) {
                            Ok(created) => {
                                // Last: the page (and this task's signals) goes with it.
                                let id = created.prompt.map(|p| p.id).unwrap_or_default();
                                busy.set(false);
                                sycamore_router::navigate(&format!("/prompts/{id}"));
                                return;
                            }
                            Err(error) => Err(error),
                        }
                    }
                    Some(id) => {
                        save_changes(
                            &api,
                            id,
                            loaded,
                            typed_name,
                            typed_category,
                            typed_kind,
                            typed_content,
                            declared,
                            note,
                        )
                        .await
                    }
                };
                busy.set(false);
                match outcome {
                    Ok(Some(message)) => {
                        errors.set(Vec::new());
                        note.set(String::new());
                        status.set(Some(message));
                        versions_changed.set(versions_changed.get_untracked() + 1);
                    }
                    Ok(None) => {}
                    Err(error) => match error.current_version() {
                        Some(current) => {
                            conflict.set(Some(Conflict { current, mine: content.get_clone(), loaded_latest: false }))
                        }
                        None => {
                            errors.set(error.fields.clone());
                            failure.set(Some(error));
                        }
                    },
                }
            });
        }
    };
    let conflict_view = move || {
        let load_latest = load_latest.clone();
        conflict.get_clone().map(|c| {
            let message = if c.loaded_latest {
                format!(
                    "Version {} is loaded in the editor. Your text is below: copy what you need into it, then save.",
                    c.current
                )
            } else {
                format!(
                    "Someone else saved version {} while you were editing, so your change was not saved. Your text is kept below so you can copy it.",
                    c.current
                )
            };
            let button = if c.loaded_latest {
                view! { button(r#type="button", on:click=move |_| conflict.set(None)) { "Dismiss" } }
            } else {
                let label = format!("Load version {}", c.current);
                view! { button(class="primary", r#type="button", on:click=load_latest) { (label) } }
            };
            let mine = c.mine.clone();
            view! {
                div(class="notice error conflict", role="alert", data-testid="conflict") {
                    p(style="margin-top:0") { (message) }
                    label(r#for="my-text") { "Your text" }
                    textarea(id="my-text", class="code", rows="6", readonly=true, prop:value=mine)
                    div(class="form-actions") { (button) }
                }
            }
        })
    };
    let rows = move || {
        let all = variables.get_clone();
        all.into_iter().enumerate().map(|(i, draft)| variable_row(i, draft, variables, errors)).collect::<Vec<View>>()
    };
    let types: Vec<View> = PROMPT_TYPES
        .iter()
        .map(|(value, label)| view! { option(value=*value, selected=kind.get_clone() == *value) { (*label) } })
        .collect();
    let heading = move || {
        let typed = name.get_clone();
        if !editing {
            "New prompt".to_string()
        } else if typed.trim().is_empty() {
            "Prompt".to_string()
        } else {
            typed
        }
    };
    let version_note = move || {
        loaded.with(|p| p.as_ref().map(|p| format!("editing on version {}", p.current_version))).unwrap_or_default()
    };
    let ready = move || !editing || loaded.with(Option::is_some);
    let extras = id.clone().map(|id| {
        let (versions_id, test_id) = (id.clone(), id);
        view! {
            PromptVersions(id=versions_id, changed=versions_changed)
            TestPanel(id=test_id, variables=variables)
            ProviderSettings {}
        }
    });
    view! {
        div(class="page-head") { a(href="/prompts") { "← Prompts" } }
        div(class="page-head") {
            h1 { (heading()) }
            span(class="muted", data-testid="base-version") { (version_note()) }
        }
        (failure.get_clone().map(|error| if ready() {
            view! { div(class="notice error", role="alert") { (error.message) } }
        } else {
            view! { ErrorNotice(error=error, retry=move || attempt.set(attempt.get() + 1)) }
        }))
        (conflict_view())
        form(class="card prompt-form", on:submit=save, novalidate=true, aria-busy=move || (!ready()).to_string()) {
            div(class="prompt-meta") {
                div(class="field") {
                    label(r#for="prompt-name") { "Name *" }
                    input(id="prompt-name", prop:value=name.get_clone(), on:input=move |e: web_sys::Event| name.set(event_value(&e)))
                    (field_error(errors, "name".into()))
                }
                div(class="field") {
                    label(r#for="prompt-category") { "Category" }
                    input(id="prompt-category", placeholder="support", prop:value=category.get_clone(),
                        on:input=move |e: web_sys::Event| category.set(event_value(&e)))
                    (field_error(errors, "category".into()))
                }
                div(class="field") {
                    label(r#for="prompt-type") { "Type" }
                    select(id="prompt-type", on:change=move |e: web_sys::Event| kind.set(event_value(&e))) { (types) }
                    (field_error(errors, "type".into()))
                }
            }
            div(class="field") {
                label(r#for="prompt-content") { "Content * " span(class="hint") { "a template: {{ variable }} for each variable" } }
                textarea(id="prompt-content", class="code", rows="12", prop:value=content.get_clone(),
                    on:input=move |e: web_sys::Event| content.set(event_value(&e)))
                (field_error(errors, "content".into()))
            }
            h2 { "Variables" }
            (field_error(errors, "variables".into()))
            ul(class="variables-list", data-testid="variables") { (rows()) }
            div(class="form-actions") {
                button(r#type="button", on:click=move |_| add(None)) { "Add variable" }
            }
            (if editing {
                view! {
                    div(class="field", style="margin-top:1rem") {
                        label(r#for="prompt-note") { "Change note" }
                        input(id="prompt-note", placeholder="what changed and why", prop:value=note.get_clone(),
                            on:input=move |e: web_sys::Event| note.set(event_value(&e)))
                        (field_error(errors, "change_note".into()))
                    }
                }
            } else { view! {} })
            div(class="form-actions") {
                button(class="primary", r#type="submit", disabled=busy.get() || !ready()) {
                    (if busy.get() { "Saving…" } else if editing { "Save" } else { "Create prompt" })
                }
                (status.get_clone().map(|m| view! { span(role="status", class="muted") { (m) } }))
            }
        }
        (extras)
    }
}

/// Saves what changed of a loaded prompt: name, category and type (UpdatePrompt), content
/// and variables as a version made on the one loaded (CreatePromptVersion). What to say,
/// or the refusal.
#[allow(clippy::too_many_arguments)]
async fn save_changes(
    api: &Api,
    id: String,
    loaded: Signal<Option<Prompt>>,
    name: String,
    category: String,
    kind: String,
    content: String,
    declared: Vec<PromptVariable>,
    note: Signal<String>,
) -> Result<Option<String>, ApiError> {
    let Some(base) = loaded.get_clone() else { return Ok(None) };
    let mut said = Vec::new();
    if base.name != name || base.category != category || base.r#type != kind {
        let request = UpdatePromptRequest {
            id: id.clone(),
            name: Some(name.clone()),
            category: Some(category.clone()),
            r#type: Some(kind.clone()),
        };
        call!(api, prompts.update_prompt(request))?;
        loaded.update(|p| {
            if let Some(p) = p {
                (p.name, p.category, p.r#type) = (name, category, kind);
            }
        });
        said.push("Saved the name, category and type.".to_string());
    }
    if base.content != content || base.variables != declared {
        let request = CreatePromptVersionRequest {
            id,
            content: content.clone(),
            variables: declared.clone(),
            change_note: note.get_clone().trim().to_string(),
            base_version: Some(base.current_version),
        };
        let version = call!(api, prompts.create_prompt_version(request))?.version.unwrap_or_default();
        loaded.update(|p| {
            if let Some(p) = p {
                (p.content, p.variables, p.current_version) = (content, declared, version.version);
            }
        });
        said.push(format!("Saved version {}.", version.version));
    }
    Ok(Some(if said.is_empty() { "Nothing changed.".to_string() } else { said.join(" ") }))
}

fn variable_row(
    i: usize,
    draft: VariableDraft,
    variables: Signal<Vec<VariableDraft>>,
    errors: Signal<Vec<(String, String)>>,
) -> View {
    let key = draft.key;
    let row_errors = errors_under(errors, format!("variables[{i}]"));
    let label = format!("Variable {}", i + 1);
    view! {
        li(class="variable-row", aria-label=label) {
            input(aria-label="Variable name", placeholder="name", class="code", prop:value=draft.name.get_clone(),
                on:input=move |e: web_sys::Event| draft.name.set(event_value(&e)))
            input(aria-label="Description", placeholder="what it is", prop:value=draft.description.get_clone(),
                on:input=move |e: web_sys::Event| draft.description.set(event_value(&e)))
            input(aria-label="Default", placeholder="default", prop:value=draft.default.get_clone(),
                on:input=move |e: web_sys::Event| draft.default.set(event_value(&e)))
            label(class="hint toggle") {
                input(r#type="checkbox", prop:checked=draft.required.get(),
                    on:change=move |e: web_sys::Event| draft.required.set(event_value(&e) == "true"))
                "required"
            }
            button(r#type="button", class="danger", aria-label="Remove variable",
                on:click=move |_| { variables.update(|v| v.retain(|x| x.key != key)); errors.set(Vec::new()); }) { "✕" }
            div(class="variable-errors") { (row_errors) }
        }
    }
}

/// A prompt's versions, newest first, and the difference between any two.
#[component(inline_props)]
fn PromptVersions(id: String, changed: Signal<u32>) -> View {
    let shared = use_shared();
    let api = shared.api.clone();
    let versions = create_signal(Load::<Vec<PromptVersion>>::Loading);
    let attempt = create_signal(0u32);
    let from = create_signal(0i32);
    let to = create_signal(0i32);
    let diff = create_signal(None::<Result<DiffPromptVersionsResponse, ApiError>>);
    load_each(attempt, {
        let (api, id) = (api.clone(), id.clone());
        move || {
            changed.track();
            let (api, id) = (api.clone(), id.clone());
            async move {
                match call!(
                    api,
                    prompts.list_prompt_versions(ListPromptVersionsRequest {
                        id,
                        page_size: 100,
                        ..Default::default()
                    })
                ) {
                    Ok(page) => {
                        // The two newest are compared unless two others were picked.
                        let numbers: Vec<i32> = page.versions.iter().map(|v| v.version).collect();
                        if !numbers.contains(&to.get_untracked()) || !numbers.contains(&from.get_untracked()) {
                            to.set(numbers.first().copied().unwrap_or_default());
                            from.set(numbers.get(1).or(numbers.first()).copied().unwrap_or_default());
                        }
                        versions.set(Load::Ready(page.versions));
                    }
                    Err(error) => versions.set(Load::Failed(error)),
                }
            }
        }
    });
    let compare = {
        let (api, id) = (api.clone(), id.clone());
        move |_| {
            let request = DiffPromptVersionsRequest { id: id.clone(), from: from.get(), to: to.get() };
            let api = api.clone();
            sycamore::futures::spawn_local_scoped(async move {
                diff.set(Some(call!(api, prompts.diff_prompt_versions(request))));
            });
        }
    };
    let picker = move |label: &'static str, id: &'static str, chosen: Signal<i32>, numbers: Vec<i32>| {
        let options: Vec<View> = numbers
            .into_iter()
            .map(|n| {
                let text = format!("version {n}");
                view! { option(value=n.to_string(), selected=chosen.get() == n) { (text) } }
            })
            .collect();
        view! {
            label(r#for=id, class="hint") { (label) }
            select(id=id, style="width:auto", on:change=move |e: web_sys::Event| chosen.set(event_value(&e).parse().unwrap_or_default())) { (options) }
        }
    };
    let body = move || match versions.get_clone() {
        Load::Loading => view! { Loading(what="versions") },
        Load::Failed(error) => view! { ErrorNotice(error=error, retry=move || attempt.set(attempt.get() + 1)) },
        Load::Ready(listed) => {
            let numbers: Vec<i32> = listed.iter().map(|v| v.version).collect();
            let rows: Vec<View> = listed
                .into_iter()
                .map(|v| {
                    let (number, note, at) =
                        (v.version.to_string(), v.change_note.clone(), when(v.created_at.as_ref()));
                    let attribute = number.clone();
                    view! { tr(data-version=attribute) { td { (number) } td { (note) } td(class="muted") { (at) } } }
                })
                .collect();
            let compare = compare.clone();
            let (from_picker, to_picker) =
                (picker("From", "diff-from", from, numbers.clone()), picker("To", "diff-to", to, numbers.clone()));
            let tools = if numbers.len() > 1 {
                view! {
                    div(class="toolbar", style="margin-top:.75rem") {
                        (from_picker)
                        (to_picker)
                        button(r#type="button", on:click=compare) { "Compare" }
                    }
                }
            } else {
                view! { p(class="hint") { "A second version can be compared with this one once it is saved." } }
            };
            view! {
                div(class="table-wrap") {
                    table {
                        thead { tr { th { "Version" } th { "Change note" } th { "Saved (UTC)" } } }
                        tbody { (rows) }
                    }
                }
                (tools)
            }
        }
    };
    let shown = move || {
        diff.get_clone().map(|d| match d {
            Ok(d) => diff_view(d),
            Err(error) => view! { div(class="notice error", role="alert") { (error.message) } },
        })
    };
    view! {
        section(data-testid="versions") {
            h2 { "Versions" }
            (body())
            (shown())
        }
    }
}

/// A line diff, coloured, and the variables one version adds or drops.
fn diff_view(diff: DiffPromptVersionsResponse) -> View {
    let lines: Vec<View> = diff
        .lines
        .iter()
        .map(|line| {
            let (class, mark) = match line.op.as_str() {
                "insert" => ("diff-line insert", "+ "),
                "delete" => ("diff-line delete", "- "),
                _ => ("diff-line", "  "),
            };
            let (op, text) = (line.op.clone(), format!("{mark}{}", line.text));
            view! { div(class=class, data-op=op) { (text) } }
        })
        .collect();
    let heading = format!("From version {} to version {}", diff.from, diff.to);
    let changes = [("Variables added", &diff.variables_added), ("Variables removed", &diff.variables_removed)]
        .into_iter()
        .filter(|(_, names)| !names.is_empty())
        .map(|(what, names)| {
            let text = format!("{what}: {}", names.join(", "));
            view! { p(class="hint") { (text) } }
        })
        .collect::<Vec<View>>();
    let same = diff.lines.iter().all(|l| l.op == "equal");
    view! {
        div(class="card diff", data-testid="diff") {
            h3(style="margin-top:0") { (heading) }
            (if same { view! { p(class="muted") { "The content is the same." } } } else { view! {} })
            pre(class="diff-lines") { (lines) }
            (changes)
        }
    }
}

/// Test runs of the current version: a value for each declared variable, then what was
/// rendered and, with a provider, what came back.
#[component(inline_props)]
fn TestPanel(id: String, variables: Signal<Vec<VariableDraft>>) -> View {
    let shared = use_shared();
    let api = shared.api.clone();
    let values = create_signal(HashMap::<String, String>::new());
    let errors = create_signal(Vec::<(String, String)>::new());
    let result = create_signal(None::<Result<TestPromptResponse, ApiError>>);
    let running = create_signal(false);
    let names = create_memo(move || {
        variables.with(|all| {
            all.iter()
                .map(|v| {
                    (
                        v.name.get_clone().trim().to_string(),
                        v.description.get_clone(),
                        v.required.get(),
                        v.default.get_clone(),
                    )
                })
                .filter(|(name, ..)| !name.is_empty())
                .collect::<Vec<_>>()
        })
    });
    let run = move |_| {
        if running.get() {
            return;
        }
        running.set(true);
        // Empty inputs are not sent: a variable's default applies, a required one is named.
        let given: HashMap<String, String> = values
            .get_clone()
            .into_iter()
            .filter(|(name, value)| !value.is_empty() && names.with(|n| n.iter().any(|(known, ..)| known == name)))
            .collect();
        let (api, request) = (api.clone(), TestPromptRequest { id: id.clone(), version: 0, variables: given });
        sycamore::futures::spawn_local_scoped(async move {
            let answer = call!(api, prompts.test_prompt(request));
            running.set(false);
            errors.set(answer.as_ref().err().map(|e| e.fields.clone()).unwrap_or_default());
            result.set(Some(answer));
        });
    };
    let inputs = move || {
        names
            .get_clone()
            .into_iter()
            .map(|(name, description, required, default)| {
                let id = format!("test-var-{name}");
                let label_for = id.clone();
                let current = values.with_untracked(|v| v.get(&name).cloned().unwrap_or_default());
                let key = name.clone();
                let label = format!("{name}{}", if required { " *" } else { "" });
                let hint = if description.is_empty() { String::new() } else { format!(" {description}") };
                let error = field_error(errors, format!("variables.{name}"));
                view! {
                    div(class="field") {
                        label(r#for=label_for) { code { (label) } span(class="hint") { (hint) } }
                        input(id=id, placeholder=default, value=current,
                            on:input=move |e: web_sys::Event| { let typed = event_value(&e); values.update(|v| { v.insert(key.clone(), typed); }); })
                        (error)
                    }
                }
            })
            .collect::<Vec<View>>()
    };
    let outcome = move || {
        result.get_clone().map(|answer| match answer {
            Err(error) => view! { div(class="notice error", role="alert") { (error.message) } },
            Ok(answer) => {
                let run = answer.run.unwrap_or_default();
                let status = badge(&run.status);
                let facts = format!(
                    "{}latency {} ms · tokens: {} prompt, {} completion, {} total",
                    if run.model.is_empty() { String::new() } else { format!("{} · ", run.model) },
                    run.latency_ms,
                    run.prompt_tokens,
                    run.completion_tokens,
                    run.total_tokens
                );
                let (rendered, output, error) = (answer.rendered.clone(), run.output.clone(), run.error.clone());
                let output = if output.is_empty() {
                    view! {}
                } else {
                    view! { p(class="hint") { "Output" } pre(class="log", data-testid="test-output") { (output) } }
                };
                let error = if error.is_empty() {
                    view! {}
                } else {
                    view! { div(class="notice error", data-testid="test-error") { (error) } }
                };
                view! {
                    div(class="card test-result", data-testid="test-result") {
                        div(class="action-head") { (status) span(class="muted", data-testid="test-facts") { (facts) } }
                        (error)
                        (output)
                        p(class="hint") { "Rendered" }
                        pre(class="log", data-testid="test-rendered") { (rendered) }
                    }
                }
            }
        })
    };
    view! {
        section(data-testid="test") {
            h2 { "Test" }
            div(class="card") {
                p(class="hint", style="margin-top:0") { "Runs the saved current version. Leave a value empty to use its default." }
                (inputs())
                div(class="form-actions") {
                    button(class="primary", r#type="button", disabled=running.get(), on:click=run) {
                        (if running.get() { "Running…" } else { "Run test" })
                    }
                }
            }
            (outcome())
        }
    }
}

/// The workspace's OpenAI-compatible endpoint for test runs. The key is write-only: the
/// server tells only whether one is kept and its last characters.
#[component]
pub fn ProviderSettings() -> View {
    let shared = use_shared();
    let api = shared.api.clone();
    let provider = create_signal(Load::<Option<PromptProvider>>::Loading);
    let attempt = create_signal(0u32);
    let url = create_signal(String::new());
    let model = create_signal(String::new());
    let key = create_signal(String::new());
    let errors = create_signal(Vec::<(String, String)>::new());
    let notice = create_signal(None::<Result<String, String>>);
    let busy = create_signal(false);
    let show = move |found: Option<PromptProvider>| {
        let shown = found.clone().unwrap_or_default();
        url.set(shown.url);
        model.set(shown.model);
        key.set(String::new());
        provider.set(Load::Ready(found));
    };
    load_each(attempt, {
        let api = api.clone();
        move || {
            let api = api.clone();
            async move {
                match call!(api, prompts.get_prompt_provider(GetPromptProviderRequest {})) {
                    Ok(found) => show(found.provider),
                    Err(error) => provider.set(Load::Failed(error)),
                }
            }
        }
    });
    let save = {
        let api = api.clone();
        move |event: web_sys::SubmitEvent| {
            event.prevent_default();
            if busy.get() {
                return;
            }
            busy.set(true);
            let typed_key = key.get_clone();
            let request = SetPromptProviderRequest {
                url: url.get_clone().trim().to_string(),
                model: model.get_clone().trim().to_string(),
                key: (!typed_key.is_empty()).then_some(typed_key),
            };
            let api = api.clone();
            sycamore::futures::spawn_local_scoped(async move {
                let saved = call!(api, prompts.set_prompt_provider(request));
                busy.set(false);
                match saved {
                    Ok(saved) => {
                        errors.set(Vec::new());
                        show(saved.provider);
                        notice.set(Some(Ok("Provider saved.".into())));
                    }
                    Err(error) => {
                        errors.set(error.fields.clone());
                        notice.set(Some(Err(error.message)));
                    }
                }
            });
        }
    };
    let remove = {
        let api = api.clone();
        move |_| {
            let api = api.clone();
            sycamore::futures::spawn_local_scoped(async move {
                match call!(api, prompts.delete_prompt_provider(DeletePromptProviderRequest {})) {
                    Ok(_) => {
                        show(None);
                        notice.set(Some(Ok("Provider removed: test runs only render.".into())));
                    }
                    Err(error) => notice.set(Some(Err(error.message))),
                }
            });
        }
    };
    let body = move || match provider.get_clone() {
        Load::Loading => view! { Loading(what="the provider") },
        Load::Failed(error) => view! { ErrorNotice(error=error, retry=move || attempt.set(attempt.get() + 1)) },
        Load::Ready(found) => {
            let kept = match &found {
                Some(p) if p.has_key => format!("A key is kept (…{}). Type a new one to replace it.", p.key_hint),
                Some(_) => "No key is kept.".to_string(),
                None => "No provider is configured: test runs only render.".to_string(),
            };
            let configured = found.is_some();
            let (save, remove) = (save.clone(), remove.clone());
            view! {
                form(class="form", on:submit=save, novalidate=true) {
                    p(class="hint", data-testid="provider-state") { (kept) }
                    div(class="field") {
                        label(r#for="provider-url") { "Base URL " span(class="hint") { "the part before /chat/completions, e.g. http://llm.internal:8080/v1" } }
                        input(id="provider-url", r#type="url", prop:value=url.get_clone(), on:input=move |e: web_sys::Event| url.set(event_value(&e)))
                        (field_error(errors, "url".into()))
                    }
                    div(class="field") {
                        label(r#for="provider-model") { "Model" }
                        input(id="provider-model", placeholder="gpt-4o-mini", prop:value=model.get_clone(), on:input=move |e: web_sys::Event| model.set(event_value(&e)))
                        (field_error(errors, "model".into()))
                    }
                    div(class="field") {
                        label(r#for="provider-key") { "API key " span(class="hint") { "write-only; empty keeps the one kept" } }
                        input(id="provider-key", r#type="password", autocomplete="off", prop:value=key.get_clone(),
                            on:input=move |e: web_sys::Event| key.set(event_value(&e)))
                        (field_error(errors, "key".into()))
                    }
                    (notice.get_clone().map(|n| match n {
                        Ok(m) => view! { p(role="status", class="muted") { (m) } },
                        Err(m) => view! { div(class="notice error", role="alert") { (m) } },
                    }))
                    div(class="form-actions") {
                        button(class="primary", r#type="submit", disabled=busy.get()) { "Save provider" }
                        (if configured { let remove = remove.clone(); view! { button(class="danger", r#type="button", on:click=remove) { "Remove provider" } } } else { view! {} })
                    }
                }
            }
        }
    };
    view! {
        section(class="card provider", data-testid="provider", style="margin-top:1rem") {
            h2(style="margin-top:0") { "Provider for test runs" }
            (body())
        }
    }
}
