//! The navigation the UI grows from `ListModels`: a tab per model, the user's models in
//! one group and the platform's own (system) models in another, each in a stable order,
//! so a new model adds one tab and moves no other.

use kiln_proto::v1::Model;

/// One tab: where it goes and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tab {
    pub href: String,
    pub label: String,
    /// The model's plural, the first segment of its routes.
    pub plural: String,
}

/// The tabs of both groups: (the user's models, the system models).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Navigation {
    pub user: Vec<Tab>,
    pub system: Vec<Tab>,
}

/// System models that have pages of their own rather than the generic record views.
const OWN_PAGES: [(&str, &str); 2] = [("models", "/models"), ("applications", "/applications")];

/// System models the UI does not list as records (users are edited in Settings).
const HIDDEN: [&str; 1] = ["users"];

impl Navigation {
    /// Tabs from the models `ListModels` returned, in any order. User models are sorted by
    /// label (then plural, which is unique); system models keep the order of the seeds
    /// (their creation order), which puts Models and Applications first.
    pub fn from_models(models: &[Model]) -> Navigation {
        let tab = |model: &Model| {
            let href = OWN_PAGES
                .iter()
                .find(|(plural, _)| *plural == model.plural)
                .map_or_else(|| format!("/{}", model.plural), |(_, href)| (*href).to_string());
            let label = if model.label_plural.is_empty() { model.plural.clone() } else { model.label_plural.clone() };
            Tab { href, label, plural: model.plural.clone() }
        };
        let mut user: Vec<&Model> = models.iter().filter(|m| !m.is_system).collect();
        user.sort_by(|a, b| {
            a.label_plural.to_lowercase().cmp(&b.label_plural.to_lowercase()).then_with(|| a.plural.cmp(&b.plural))
        });
        let mut system: Vec<&Model> =
            models.iter().filter(|m| m.is_system && !HIDDEN.contains(&m.plural.as_str())).collect();
        let created = |m: &Model| m.created_at.as_ref().map(|t| (t.seconds, t.nanos)).unwrap_or_default();
        system.sort_by(|a, b| created(a).cmp(&created(b)).then_with(|| a.plural.cmp(&b.plural)));
        Navigation { user: user.into_iter().map(tab).collect(), system: system.into_iter().map(tab).collect() }
    }

    /// Whether `plural` names a model whose records have the generic views.
    pub fn has_records(&self, plural: &str) -> bool {
        !OWN_PAGES.iter().any(|(own, _)| *own == plural)
            && self.user.iter().chain(&self.system).any(|tab| tab.plural == plural)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_proto::wkt::Timestamp;

    fn model(plural: &str, label: &str, system: bool, created: i64) -> Model {
        Model {
            plural: plural.into(),
            label_plural: label.into(),
            is_system: system,
            created_at: Some(Timestamp { seconds: created, nanos: 0 }),
            ..Model::default()
        }
    }

    #[test]
    fn user_models_are_sorted_by_label_and_system_models_keep_the_seed_order() {
        let models = [
            model("prompts", "Prompts", true, 5),
            model("invoices", "Invoices", false, 9),
            model("models", "Models", true, 1),
            model("users", "Users", true, 3),
            model("customers", "customers", false, 10),
            model("applications", "Applications", true, 2),
        ];
        let nav = Navigation::from_models(&models);
        let labels = |tabs: &[Tab]| tabs.iter().map(|t| t.label.clone()).collect::<Vec<_>>();
        assert_eq!(labels(&nav.user), ["customers", "Invoices"]);
        assert_eq!(labels(&nav.system), ["Models", "Applications", "Prompts"], "users are edited in Settings");
        assert_eq!(nav.system[0].href, "/models");
        assert_eq!(nav.user[1].href, "/invoices");
        assert!(nav.has_records("invoices") && nav.has_records("prompts"));
        assert!(!nav.has_records("models") && !nav.has_records("users") && !nav.has_records("nope"));
    }

    #[test]
    fn a_new_model_adds_its_tab_and_moves_no_other_group() {
        let mut models = vec![model("models", "Models", true, 1), model("invoices", "Invoices", false, 2)];
        let before = Navigation::from_models(&models);
        models.push(model("orders", "Orders", false, 3));
        let after = Navigation::from_models(&models);
        assert_eq!(after.system, before.system);
        assert_eq!(after.user[0], before.user[0]);
        assert_eq!(after.user[1].label, "Orders");
        // The order does not depend on the order ListModels answered in.
        models.reverse();
        assert_eq!(Navigation::from_models(&models), after);
    }
}
