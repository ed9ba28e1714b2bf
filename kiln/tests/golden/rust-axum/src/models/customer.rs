//! Customers: the fields of `/customers` and their rules.

use crate::fields::Table;

pub const TABLE: Table = Table {
    name: "customers",
    label: "Customer",
    fields: &[
        crate::fields::FieldSpec {
            name: "name",
            label: "name",
            kind: crate::fields::Kind::Text,
            required: true,
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
    ],
};
