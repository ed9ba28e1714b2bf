//! The dashboard: how many records each of the user's models holds, the records changed
//! last, and recent builds.

use kiln_proto::v1::{Build, ListBuildsRequest, ListEntitiesRequest};
use sycamore::prelude::*;

use crate::{
    app::use_shared,
    call, fields,
    widgets::{Load, Loading, when},
};

#[component]
pub fn Dashboard() -> View {
    let shared = use_shared();
    let counts = create_signal(Vec::<(String, String, String)>::new());
    // (when, model label, record title, link), newest first.
    let changes = create_signal(Vec::<(String, String, String, String)>::new());
    let builds = create_signal(Load::<Vec<Build>>::Loading);
    create_effect({
        let shared = shared.clone();
        move || {
            let models = match shared.models.get_clone() {
                Load::Ready(models) => models,
                _ => return,
            };
            let api = shared.api.clone();
            sycamore::futures::spawn_local_scoped(async move {
                let mut found = Vec::new();
                let mut recent = Vec::new();
                for model in models.iter().filter(|m| !m.is_system) {
                    let request = ListEntitiesRequest {
                        model: model.plural.clone(),
                        page_size: 100,
                        sort: "-updated_at".into(),
                        ..Default::default()
                    };
                    if let Ok(page) = call!(api, entities.list_entities(request)) {
                        let more = if page.next_page_token.is_empty() { "" } else { "+" };
                        found.push((
                            model.label_plural.clone(),
                            format!("/{}", model.plural),
                            format!("{}{more}", page.records.len()),
                        ));
                        for record in page.records.iter().take(5) {
                            let text = |name: &str| fields::display("text", record.fields.get(name));
                            let title = model
                                .fields
                                .first()
                                .map(|f| fields::display(&f.r#type, record.fields.get(&f.name)))
                                .unwrap_or_default();
                            let title = if title.is_empty() { text("id") } else { title };
                            recent.push((
                                text("updated_at"),
                                model.label.clone(),
                                title,
                                format!("/{}/{}", model.plural, text("id")),
                            ));
                        }
                    }
                }
                counts.set(found);
                recent.sort_by(|a, b| b.0.cmp(&a.0));
                recent.truncate(8);
                changes.set(recent);
                match call!(api, builds.list_builds(ListBuildsRequest { page_size: 5, ..Default::default() })) {
                    Ok(page) => builds.set(Load::Ready(page.builds)),
                    Err(error) => builds.set(Load::Failed(error)),
                }
            });
        }
    });
    let cards = move || {
        let counts = counts.get_clone();
        if counts.is_empty() {
            return view! {
                div(class="card") {
                    p { "Describe your data as models: each becomes a table with an API, and a tab here." }
                    a(class="button primary", href="/models/new") { "Create your first model" }
                }
            };
        }
        let cards: Vec<View> = counts
            .into_iter()
            .map(|(label, href, count)| view! { a(class="card", href=href, style="text-decoration:none;color:inherit") { div(class="stat") { (count) } div(class="muted") { (label) } } })
            .collect();
        view! { div(class="cards") { (cards) } }
    };
    let changed = move || {
        let rows: Vec<View> = changes
            .get_clone()
            .into_iter()
            .map(|(at, model, title, href)| {
                let at = at.replace('T', " ").chars().take(19).collect::<String>();
                view! { tr { td { a(href=href) { (title) } } td { (model) } td(class="muted") { (at) } } }
            })
            .collect();
        if rows.is_empty() {
            view! { p(class="muted") { "Nothing changed yet." } }
        } else {
            view! { div(class="table-wrap") { table { tbody { (rows) } } } }
        }
    };
    let recent = move || match builds.get_clone() {
        Load::Loading => view! { Loading {} },
        Load::Failed(error) => view! { p(class="muted") { (error.message) } },
        Load::Ready(list) if list.is_empty() => view! { p(class="muted") { "No builds yet." } },
        Load::Ready(list) => {
            let rows: Vec<View> = list
                .into_iter()
                .map(|b| {
                    let (href, number, at, status) = (format!("/builds/{}", b.id), format!("#{}", b.number), when(b.created_at.as_ref()), b.status.clone());
                    let class = format!("badge {status}");
                    view! { tr { td { a(href=href) { (number) } } td { span(class=class) { (status) } } td(class="muted") { (at) } } }
                })
                .collect();
            view! { div(class="table-wrap") { table { tbody { (rows) } } } }
        }
    };
    view! {
        h1 { "Dashboard" }
        (cards())
        h2 { "Recent changes" }
        (changed())
        h2 { "Recent builds" }
        (recent())
    }
}
