//! Names users type for models and fields, parsed once into [`Ident`]s that cannot be
//! built unchecked: normalised to snake_case ASCII, matched against
//! `^[a-z][a-z0-9_]{0,62}$`, and refused when they are SQL keywords, the columns every
//! table has, or plurals that would shadow a platform route. Identifiers are still quoted
//! wherever they reach SQL.

use std::fmt;

/// A validated identifier: safe as a table, column or path segment.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ident(String);

impl Ident {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `ent_<plural>`: the table of the model with this plural.
    pub fn table_of(plural: &Ident) -> Ident {
        Ident(format!("ent_{}", plural.0))
    }

    /// `ws_<id>`: a workspace's PostgreSQL schema.
    pub fn workspace_schema(workspace_id: uuid::Uuid) -> Ident {
        Ident(format!("ws_{}", workspace_id.simple()))
    }

    /// The identifier double-quoted for SQL (both dialects).
    pub fn quoted(&self) -> String {
        crate::db::quote_ident(&self.0)
    }
}

impl fmt::Display for Ident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Ident {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Columns every entity table has; fields may not use these names.
pub const RESERVED_COLUMNS: &[&str] = &["id", "created_at", "updated_at", "created_by", "workspace_id"];

/// Plurals a user model may not take: platform routes, and the plurals system models own.
pub const RESERVED_PLURALS: &[&str] = &[
    "api",
    "auth",
    "builds",
    "docs",
    "openapi",
    "healthz",
    "readyz",
    "metrics",
    "v1",
    "v2",
    "entities",
    "webhooks",
    "workspaces",
    "sessions",
    "admin",
    "static",
    "assets",
    "models",
    "applications",
    "users",
    "components",
    "templates",
    "workflows",
    "prompts",
    "proto",
    "sdk",
];

/// Longest workspace slug.
pub const MAX_WORKSPACE_SLUG_LEN: usize = 24;

/// Words a workspace slug may not be: it is a segment of the package clients are
/// generated into (`kiln.ws.<slug>.v1`), and these are keywords of Python or TypeScript.
const CLIENT_KEYWORDS: &[&str] = &[
    "and",
    "as",
    "assert",
    "async",
    "await",
    "break",
    "case",
    "catch",
    "class",
    "const",
    "continue",
    "def",
    "default",
    "del",
    "delete",
    "do",
    "elif",
    "else",
    "enum",
    "except",
    "export",
    "extends",
    "false",
    "finally",
    "for",
    "from",
    "function",
    "global",
    "if",
    "import",
    "in",
    "instanceof",
    "is",
    "lambda",
    "let",
    "new",
    "none",
    "nonlocal",
    "not",
    "null",
    "or",
    "package",
    "pass",
    "raise",
    "return",
    "super",
    "switch",
    "this",
    "throw",
    "true",
    "try",
    "typeof",
    "var",
    "void",
    "while",
    "with",
    "yield",
];

/// A workspace slug made from `source` (its owner's name, or their email's local part):
/// lower-case ASCII letters, digits and `_`, starting with a letter, at most
/// [`MAX_WORKSPACE_SLUG_LEN`] long; a keyword gets `_ws`. Empty when nothing usable is left.
pub fn workspace_slug(source: &str) -> String {
    let mut slug = String::new();
    for c in source.chars().map(|c| c.to_ascii_lowercase()) {
        if c.is_ascii_lowercase() || (c.is_ascii_digit() && !slug.is_empty()) {
            slug.push(c);
        } else if !slug.is_empty() && !slug.ends_with('_') {
            slug.push('_');
        }
    }
    slug.truncate(MAX_WORKSPACE_SLUG_LEN);
    let mut slug = slug.trim_end_matches('_').to_string();
    if CLIENT_KEYWORDS.contains(&slug.as_str()) {
        slug.push_str("_ws");
    }
    slug
}

/// Whether `slug` is one [`workspace_slug`] could have made (a stored one, checked
/// before it becomes part of a package name).
pub fn is_workspace_slug(slug: &str) -> bool {
    !slug.is_empty() && slug.len() <= MAX_WORKSPACE_SLUG_LEN + 3 && workspace_slug(slug) == slug
}

/// SQL keywords of PostgreSQL and SQLite that cannot be used unquoted; refused outright so
/// generated code in any language stays easy to write.
const SQL_KEYWORDS: &[&str] = &[
    "abort",
    "add",
    "all",
    "alter",
    "analyze",
    "and",
    "any",
    "array",
    "as",
    "asc",
    "asymmetric",
    "attach",
    "authorization",
    "autoincrement",
    "begin",
    "between",
    "binary",
    "both",
    "by",
    "cascade",
    "case",
    "cast",
    "check",
    "collate",
    "column",
    "commit",
    "concurrently",
    "conflict",
    "constraint",
    "create",
    "cross",
    "current_catalog",
    "current_date",
    "current_role",
    "current_schema",
    "current_time",
    "current_timestamp",
    "current_user",
    "database",
    "default",
    "deferrable",
    "delete",
    "desc",
    "detach",
    "distinct",
    "do",
    "drop",
    "else",
    "end",
    "escape",
    "except",
    "exclusive",
    "exists",
    "explain",
    "false",
    "fetch",
    "for",
    "foreign",
    "freeze",
    "from",
    "full",
    "glob",
    "grant",
    "group",
    "having",
    "ilike",
    "in",
    "index",
    "initially",
    "inner",
    "insert",
    "instead",
    "intersect",
    "into",
    "is",
    "isnull",
    "join",
    "key",
    "lateral",
    "leading",
    "left",
    "like",
    "limit",
    "localtime",
    "localtimestamp",
    "match",
    "natural",
    "not",
    "notnull",
    "null",
    "offset",
    "on",
    "only",
    "or",
    "order",
    "outer",
    "overlaps",
    "placing",
    "pragma",
    "primary",
    "raise",
    "recursive",
    "references",
    "regexp",
    "reindex",
    "release",
    "rename",
    "replace",
    "restrict",
    "returning",
    "right",
    "rollback",
    "row",
    "savepoint",
    "select",
    "session_user",
    "set",
    "similar",
    "some",
    "symmetric",
    "table",
    "temp",
    "temporary",
    "then",
    "to",
    "trailing",
    "transaction",
    "trigger",
    "true",
    "union",
    "unique",
    "update",
    "user",
    "using",
    "vacuum",
    "values",
    "variadic",
    "verbose",
    "view",
    "virtual",
    "when",
    "where",
    "window",
    "with",
    "without",
];

/// Longest plural: `ent_` + plural must fit PostgreSQL's 63-byte identifiers.
pub const MAX_PLURAL_LEN: usize = 59;

/// Why a name was refused; the text is the field error users see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameError(pub String);

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `Invoice Line`, `InvoiceLine`, `invoice-line` → `invoice_line`. Only ASCII letters,
/// digits, spaces, `-` and `_` are accepted: look-alike letters and invisible characters
/// are refused, not folded.
pub fn normalise(raw: &str) -> Result<String, NameError> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err(NameError("is required".into()));
    }
    if let Some(bad) = raw.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, ' ' | '-' | '_'))) {
        return Err(NameError(format!(
            "may contain only ASCII letters, digits, spaces, `-` and `_` (found {:?})",
            bad
        )));
    }
    let mut out = String::with_capacity(raw.len() + 4);
    let chars: Vec<char> = raw.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if c == ' ' || c == '-' || c == '_' {
            if !out.ends_with('_') && !out.is_empty() {
                out.push('_');
            }
        } else if c.is_ascii_uppercase() {
            let prev = i.checked_sub(1).map(|p| chars[p]);
            let next = chars.get(i + 1);
            // A boundary before an upper-case letter that follows a lower-case letter or
            // digit, or that starts a word after an acronym (`HTTPServer` → `http_server`).
            let boundary = prev.is_some_and(|p| p.is_ascii_lowercase() || p.is_ascii_digit())
                || (prev.is_some_and(|p| p.is_ascii_uppercase()) && next.is_some_and(|n| n.is_ascii_lowercase()));
            if boundary && !out.ends_with('_') && !out.is_empty() {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    Ok(out.trim_end_matches('_').to_string())
}

fn not_keyword(name: &str) -> Result<(), NameError> {
    match SQL_KEYWORDS.binary_search(&name) {
        Ok(_) => Err(NameError(format!("`{name}` is an SQL keyword"))),
        Err(_) => Ok(()),
    }
}

fn check_shape(name: &str, max: usize) -> Result<(), NameError> {
    let mut chars = name.chars();
    let starts_with_letter = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    if !starts_with_letter {
        return Err(NameError("must start with a letter".into()));
    }
    if name.len() > max {
        return Err(NameError(format!("must be at most {max} characters")));
    }
    if !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
        return Err(NameError("must match ^[a-z][a-z0-9_]{0,62}$".into()));
    }
    Ok(())
}

/// A reference to a model by its plural (relation targets).
pub fn plural_ref(raw: &str) -> Result<Ident, NameError> {
    let name = normalise(raw)?;
    check_shape(&name, MAX_PLURAL_LEN)?;
    not_keyword(&name)?;
    Ok(Ident(name))
}

/// A field name: normalised, shaped, not a keyword nor a column every table has.
pub fn field_name(raw: &str) -> Result<Ident, NameError> {
    let name = normalise(raw)?;
    check_shape(&name, 63)?;
    if SQL_KEYWORDS.binary_search(&name.as_str()).is_ok() {
        return Err(NameError(format!("`{name}` is an SQL keyword")));
    }
    system_field_name(&name)
}

/// A field name of a system model (from the seeds, not typed by users): shaped and not
/// a column every table has, but keywords such as `set` are allowed; it is quoted anyway.
pub fn system_field_name(raw: &str) -> Result<Ident, NameError> {
    let name = normalise(raw)?;
    check_shape(&name, 63)?;
    if RESERVED_COLUMNS.contains(&name.as_str()) {
        return Err(NameError(format!("`{name}` is reserved: every record has it")));
    }
    Ok(Ident(name))
}

/// The names a model goes by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelNames {
    pub singular: Ident,
    pub plural: Ident,
    /// `ent_<plural>`.
    pub table: Ident,
}

/// Names for a user model from what the user typed; `plural` overrides the derived one.
pub fn model_names(name: &str, plural: Option<&str>) -> Result<ModelNames, (&'static str, NameError)> {
    let singular = normalise(name).map_err(|e| ("name", e))?;
    check_shape(&singular, MAX_PLURAL_LEN).map_err(|e| ("name", e))?;
    not_keyword(&singular).map_err(|e| ("name", e))?;
    let plural = match plural.map(str::trim).filter(|p| !p.is_empty()) {
        Some(p) => normalise(p).map_err(|e| ("plural", e))?,
        None => pluralise(&singular),
    };
    let field = if plural == singular { "plural" } else { "name" };
    check_shape(&plural, MAX_PLURAL_LEN).map_err(|e| (field, e))?;
    not_keyword(&plural).map_err(|e| (field, e))?;
    if plural == singular {
        return Err(("plural", NameError(format!("must differ from the singular `{singular}`"))));
    }
    if RESERVED_PLURALS.contains(&plural.as_str()) {
        return Err((field, NameError(format!("`{plural}` is reserved by the platform"))));
    }
    // The singular is a slug and may become a path too.
    if RESERVED_PLURALS.contains(&singular.as_str()) {
        return Err(("name", NameError(format!("`{singular}` is reserved by the platform"))));
    }
    let plural = Ident(plural);
    Ok(ModelNames { singular: Ident(singular), table: Ident::table_of(&plural), plural })
}

/// English plural of a snake_case name: only its last word changes.
pub fn pluralise(singular: &str) -> String {
    let (head, last) = match singular.rfind('_') {
        Some(i) => singular.split_at(i + 1),
        None => ("", singular),
    };
    const IRREGULAR: &[(&str, &str)] = &[
        ("person", "people"),
        ("child", "children"),
        ("man", "men"),
        ("woman", "women"),
        ("mouse", "mice"),
        ("goose", "geese"),
        ("tooth", "teeth"),
        ("foot", "feet"),
        ("ox", "oxen"),
        ("datum", "data"),
        ("criterion", "criteria"),
        ("analysis", "analyses"),
        ("index", "indexes"),
        ("leaf", "leaves"),
        ("life", "lives"),
        ("knife", "knives"),
        ("wife", "wives"),
        ("half", "halves"),
        ("shelf", "shelves"),
    ];
    const UNCHANGED: &[&str] = &["sheep", "fish", "series", "species", "news", "equipment", "information", "data"];
    let plural_last = if let Some((_, p)) = IRREGULAR.iter().find(|(s, _)| *s == last) {
        p.to_string()
    } else if UNCHANGED.contains(&last) {
        // The caller refuses a plural equal to the singular; the user then gives one.
        last.to_string()
    } else if last.ends_with('y')
        && !last.ends_with("ay")
        && !last.ends_with("ey")
        && !last.ends_with("oy")
        && !last.ends_with("uy")
    {
        format!("{}ies", &last[..last.len() - 1])
    } else if ["s", "x", "z", "ch", "sh"].iter().any(|end| last.ends_with(end)) {
        format!("{last}es")
    } else {
        format!("{last}s")
    };
    format!("{head}{plural_last}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_workspace_slug_is_a_package_segment_every_client_language_accepts() {
        assert_eq!(workspace_slug("Ada Lovelace"), "ada_lovelace");
        assert_eq!(workspace_slug("ada.lovelace+test"), "ada_lovelace_test");
        assert_eq!(workspace_slug("42 Élan Co"), "lan_co", "a letter first; other letters are dropped");
        assert_eq!(workspace_slug("Import"), "import_ws");
        assert_eq!(workspace_slug("___"), "");
        assert_eq!(workspace_slug(&"x".repeat(40)).len(), MAX_WORKSPACE_SLUG_LEN);
        for made in ["ada_lovelace", "import_ws", "w9d06362aaaf1"] {
            assert!(is_workspace_slug(made), "{made}");
        }
        for bad in ["", "Ada", "1abc", "a-b", "a__b", "import", "a_"] {
            assert!(!is_workspace_slug(bad), "{bad}");
        }
    }

    #[test]
    fn keywords_are_sorted_for_binary_search() {
        assert!(SQL_KEYWORDS.windows(2).all(|w| w[0] < w[1]), "keep SQL_KEYWORDS sorted and unique");
    }

    #[test]
    fn names_normalise_to_snake_case() {
        assert_eq!(normalise("Invoice").unwrap(), "invoice");
        assert_eq!(normalise("Invoice Line").unwrap(), "invoice_line");
        assert_eq!(normalise("InvoiceLine").unwrap(), "invoice_line");
        assert_eq!(normalise("invoice-line").unwrap(), "invoice_line");
        assert_eq!(normalise("HTTPServer").unwrap(), "http_server");
        assert_eq!(normalise("  due  date ").unwrap(), "due_date");
        assert_eq!(normalise("Address2").unwrap(), "address2");
    }

    #[test]
    fn model_names_are_derived() {
        let names = model_names("Invoice", None).unwrap();
        assert_eq!(
            (names.singular.as_str(), names.plural.as_str(), names.table.as_str()),
            ("invoice", "invoices", "ent_invoices")
        );
        assert_eq!(model_names("Category", None).unwrap().plural.as_str(), "categories");
        assert_eq!(model_names("Box", None).unwrap().plural.as_str(), "boxes");
        assert_eq!(model_names("Day", None).unwrap().plural.as_str(), "days");
        assert_eq!(model_names("Person", None).unwrap().plural.as_str(), "people");
        assert_eq!(model_names("Line Item", None).unwrap().plural.as_str(), "line_items");
        assert_eq!(model_names("Sheep", Some("flock")).unwrap().plural.as_str(), "flock");
        assert_eq!(model_names("Sheep", None).unwrap_err().0, "plural");
    }

    #[test]
    fn hostile_and_reserved_names_are_refused() {
        for bad in [
            "",
            "1st",
            "in\"voice",
            "invoice; DROP TABLE users",
            "invoice'--",
            "ínvoice",
            "invoice\u{200b}",
            "Invоice", // Cyrillic о
            "select",
            "Table",
            &"a".repeat(60),
        ] {
            assert!(model_names(bad, None).is_err(), "{bad:?} was accepted");
        }
        for reserved in ["auth", "builds", "docs", "openapi", "user", "model", "application"] {
            assert!(model_names(reserved, None).is_err(), "{reserved:?} was accepted");
        }
        for bad in ["id", "created_at", "Updated At", "createdBy", "order", "x\0y", "a b;c"] {
            assert!(field_name(bad).is_err(), "{bad:?} was accepted as a field");
        }
        assert_eq!(field_name("Due Date").unwrap().as_str(), "due_date");
        assert_eq!(field_name("amount").unwrap().quoted(), "\"amount\"");
    }
}
