//! Categorys: the fields of `/categories` and their rules.

use crate::fields::Table;

pub const TABLE: Table = Table {
    name: "categories",
    label: "Category",
    fields: &[
        crate::fields::FieldSpec {
            name: "title",
            label: "title",
            kind: crate::fields::Kind::Text,
            required: false,
            unique: false,
            min: None,
            max: None,
            min_length: None,
            max_length: None,
            pattern: None,
            enum_values: &[],
            target: None,
            on_delete: "restrict",
            default: None,
        },
        crate::fields::FieldSpec {
            name: "parent",
            label: "parent",
            kind: crate::fields::Kind::Relation,
            required: false,
            unique: false,
            min: None,
            max: None,
            min_length: None,
            max_length: None,
            pattern: None,
            enum_values: &[],
            target: Some("categories"),
            on_delete: "set_null",
            default: None,
        },
    ],
};
