//! The OpenAPI 3.1 document of the API, made from the models' declarations: served at
//! `/openapi.json`, printed by `cargo run -- openapi`.

use serde_json::{Map, Value, json};

use crate::fields::{FieldSpec, Kind, Table};

fn schema(field: &FieldSpec) -> Value {
    let mut schema = match field.kind {
        Kind::Integer => json!({ "type": "integer", "format": "int64" }),
        Kind::Boolean => json!({ "type": "boolean" }),
        Kind::Decimal => json!({ "type": "string", "format": "decimal" }),
        Kind::Date => json!({ "type": "string", "format": "date" }),
        Kind::DateTime => json!({ "type": "string", "format": "date-time" }),
        Kind::Email => json!({ "type": "string", "format": "email" }),
        Kind::Url => json!({ "type": "string", "format": "uri" }),
        Kind::Uuid | Kind::Relation => json!({ "type": "string", "format": "uuid" }),
        Kind::Enum => json!({ "type": "string", "enum": field.enum_values }),
        Kind::Json => json!({}),
        Kind::Text | Kind::LongText => json!({ "type": "string" }),
    };
    let map = schema.as_object_mut().expect("an object");
    map.insert("title".into(), json!(field.label));
    if let Some(min) = field.min {
        map.insert("minimum".into(), json!(min));
    }
    if let Some(max) = field.max {
        map.insert("maximum".into(), json!(max));
    }
    if let Some(min) = field.min_length {
        map.insert("minLength".into(), json!(min));
    }
    if let Some(max) = field.max_length {
        map.insert("maxLength".into(), json!(max));
    }
    if let Some(pattern) = field.pattern {
        map.insert("pattern".into(), json!(pattern));
    }
    schema
}

pub fn document(title: &str, tables: &[&'static Table]) -> Value {
    let mut paths = Map::new();
    let mut schemas = Map::new();
    let error = json!({ "description": "An error", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } });
    for table in tables {
        let properties: Map<String, Value> = table.fields.iter().map(|f| (f.name.to_string(), schema(f))).collect();
        let required: Vec<&str> = table.fields.iter().filter(|f| f.required && f.default.is_none()).map(|f| f.name).collect();
        let input = format!("{}Input", table.name);
        schemas.insert(input.clone(), json!({ "type": "object", "properties": properties, "required": required, "additionalProperties": false }));
        let mut record = properties.clone();
        for column in ["id", "created_at", "updated_at"] {
            record.insert(column.into(), json!({ "type": "string" }));
        }
        schemas.insert(table.name.to_string(), json!({ "type": "object", "properties": record }));
        let one = json!({ "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{}", table.name) } } } });
        let body = json!({ "required": true, "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{input}") } } } });
        let page = json!({ "description": "A page", "content": { "application/json": { "schema": {
            "type": "object",
            "properties": { "items": { "type": "array", "items": { "$ref": format!("#/components/schemas/{}", table.name) } }, "next_offset": { "type": ["integer", "null"] } }
        } } } });
        let id = json!([{ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } }]);
        let paging = json!([
            { "name": "limit", "in": "query", "schema": { "type": "integer", "minimum": 1, "maximum": 100 } },
            { "name": "offset", "in": "query", "schema": { "type": "integer", "minimum": 0 } }
        ]);
        let label = table.label;
        paths.insert(format!("/{}", table.name), json!({
            "get": { "summary": format!("List {label} records"), "parameters": paging, "responses": { "200": page, "400": error } },
            "post": { "summary": format!("Create a {label}"), "requestBody": body, "responses": { "201": one.clone(), "400": error, "409": error } }
        }));
        paths.insert(format!("/{}/{{id}}", table.name), json!({
            "get": { "summary": format!("One {label}"), "parameters": id, "responses": { "200": one.clone(), "404": error } },
            "put": { "summary": format!("Replace a {label}"), "parameters": id, "requestBody": body, "responses": { "200": one.clone(), "400": error, "404": error } },
            "patch": { "summary": format!("Change some fields of a {label}"), "parameters": id, "requestBody": body, "responses": { "200": one, "400": error, "404": error } },
            "delete": { "summary": format!("Delete a {label}"), "parameters": id, "responses": { "204": { "description": "Deleted" }, "404": error, "409": error } }
        }));
    }
    schemas.insert("Error".into(), json!({ "type": "object", "properties": { "error": { "type": "object", "properties": {
        "code": { "type": "string" }, "message": { "type": "string" },
        "details": { "type": "array", "items": { "type": "object", "properties": { "field": { "type": "string" }, "description": { "type": "string" } } } }
    } } } }));
    json!({
        "openapi": "3.1.0",
        "info": { "title": title, "version": env!("CARGO_PKG_VERSION") },
        "paths": paths,
        "components": { "schemas": schemas }
    })
}
