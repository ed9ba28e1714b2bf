//! Workspace SDKs: the template set `sdk-<language>` rendered against the workspace's
//! typed contract (model-svc's GetTypedContract), with the engine and the template
//! storage a build uses, answered as one .tar.gz. What the templates see is derived from
//! the contract's descriptor alone, so the SDK names exactly what the server serves.
//!
//! In scope: `workspace` (`slug`, `package`, `file_name`), `proto` (the .proto source),
//! `descriptor` (the file's FileDescriptorProto, base64), `imports`, and `models`: one
//! entry per typed service (so `per_model` templates get one file each), with its
//! message names and indexes and the record's fields.

use base64::Engine as _;
use kiln_common::{ServiceError, error::FieldViolation, templating};
use kiln_proto::v1::GetTypedContractResponse;
use prost::Message as _;
use prost_reflect::{Cardinality, DescriptorPool, FieldDescriptor, Kind, MessageDescriptor, ServiceDescriptor};
use serde_json::{Value, json};
use tonic::Status;

/// The languages with a starter set, `sdk-<language>`.
pub const LANGUAGES: &[&str] = &["python", "typescript"];

/// The template set that renders `language`'s SDK, or a field error naming the choices.
pub fn template_set(language: &str) -> Result<String, ServiceError> {
    if LANGUAGES.contains(&language) {
        Ok(format!("sdk-{language}"))
    } else {
        let why = format!("`{language}` is not a language with an SDK; one of {}", LANGUAGES.join(", "));
        Err(ServiceError::invalid(vec![FieldViolation::new("language", why)]))
    }
}

/// The directory every file of the archive is under, e.g. `kiln-ws-ada-python`.
pub fn root_of(slug: &str, language: &str) -> String {
    format!("kiln-ws-{}-{language}", slug.replace('_', "-").trim_matches('-'))
}

/// What the SDK templates see, from the workspace's contract.
pub fn context(contract: &GetTypedContractResponse) -> Result<Value, Status> {
    let broken = |why: String| Status::internal(format!("the workspace's contract does not read: {why}"));
    let pool = DescriptorPool::decode(contract.descriptor_set.as_slice()).map_err(|e| broken(e.to_string()))?;
    let file = pool.get_file_by_name(&contract.file_name).ok_or_else(|| broken("no file".into()))?;
    let slug = contract
        .package
        .strip_prefix("kiln.ws.")
        .and_then(|rest| rest.strip_suffix(".v1"))
        .ok_or_else(|| broken(format!("package {}", contract.package)))?;
    let index_of = |message: &MessageDescriptor| file.messages().position(|m| m == *message).unwrap_or_default();
    let described = |message: MessageDescriptor| json!({ "name": message.name(), "index": index_of(&message) });
    let models = file
        .services()
        .enumerate()
        .map(|(index, service)| self::service(index, &service, &described))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(json!({
        "workspace": { "slug": slug, "package": contract.package, "file_name": contract.file_name },
        "proto": contract.proto,
        "descriptor": base64::engine::general_purpose::STANDARD.encode(file.file_descriptor_proto().encode_to_vec()),
        "imports": file.dependencies().map(|d| d.name().to_string()).collect::<Vec<_>>(),
        "models": models,
    }))
}

fn service(
    index: usize,
    service: &ServiceDescriptor,
    described: &dyn Fn(MessageDescriptor) -> Value,
) -> Result<Value, Status> {
    let method = |name: &str| {
        service
            .methods()
            .find(|m| m.name() == name)
            .ok_or_else(|| Status::internal(format!("the workspace's contract: {} has no {name}", service.full_name())))
    };
    let (list, get, create, update, delete, watch) =
        (method("List")?, method("Get")?, method("Create")?, method("Update")?, method("Delete")?, method("Watch")?);
    let record = get.output();
    let items = list.output().fields().find(|f| f.is_list()).ok_or_else(|| Status::internal("a list without items"))?;
    let singular = create.input().fields().next().ok_or_else(|| Status::internal("a create without a record"))?;
    let enums: Vec<Value> = record
        .child_enums()
        .enumerate()
        .map(|(index, e)| {
            let prefix = screaming_snake(e.name()) + "_";
            let values: Vec<Value> = e
                .values()
                .map(|v| json!({ "name": v.name(), "short": short_name(v.name(), &prefix), "number": v.number() }))
                .collect();
            json!({ "name": e.name(), "full_name": e.full_name(), "index": index, "values": values })
        })
        .collect();
    Ok(json!({
        "service": service.name(),
        "service_index": index,
        "full_name": service.full_name(),
        "singular": singular.name(),
        "singular_local": singular.json_name(),
        "plural": items.name(),
        "plural_local": items.json_name(),
        "record": described(record.clone()),
        "list_request": described(list.input()),
        "list_response": described(list.output()),
        "get_request": described(get.input()),
        "create_request": described(create.input()),
        "update_request": described(update.input()),
        "delete_request": described(delete.input()),
        "watch_request": described(watch.input()),
        "change": described(watch.output()),
        "enums": enums,
        "fields": record.fields().map(|f| field(&f)).collect::<Vec<_>>(),
    }))
}

/// A record field: `kind` is the proto type as SDK templates map it (`string`, `int64`,
/// `int32`, `bool`, `double`, `timestamp`, `value` for JSON, `enum`), `optional` whether
/// unset is told apart from the default.
fn field(field: &FieldDescriptor) -> Value {
    let (kind, enum_name) = match field.kind() {
        Kind::String => ("string", None),
        Kind::Int64 => ("int64", None),
        Kind::Int32 => ("int32", None),
        Kind::Bool => ("bool", None),
        Kind::Double => ("double", None),
        Kind::Enum(e) => ("enum", Some(e.name().to_string())),
        Kind::Message(m) if m.full_name() == "google.protobuf.Timestamp" => ("timestamp", None),
        Kind::Message(m) if m.full_name() == "google.protobuf.Value" => ("value", None),
        _ => ("other", None),
    };
    json!({
        "name": field.name(),
        "json_name": field.json_name(),
        "number": field.number(),
        "kind": kind,
        "enum": enum_name,
        "optional": field.supports_presence() && field.cardinality() != Cardinality::Required,
        "system": field.number() < 16,
    })
}

/// `PaymentStatus` → `PAYMENT_STATUS`.
fn screaming_snake(pascal: &str) -> String {
    let mut out = String::new();
    for (i, c) in pascal.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// An enum value without its enum's prefix (`STATUS_PAID` of `Status` → `PAID`), as
/// protobuf generators name it, unless what is left is not a name.
fn short_name(value: &str, prefix: &str) -> String {
    match value.strip_prefix(prefix) {
        Some(rest) if rest.starts_with(|c: char| c.is_ascii_alphabetic()) => rest.to_string(),
        _ => value.to_string(),
    }
}

/// The rendered package as a .tar.gz under [`root_of`], and the paths in it.
pub fn render(
    templates: Vec<templating::TemplateInput>,
    context: &Value,
    root: &str,
) -> Result<(Vec<u8>, Vec<String>), Status> {
    let files = templating::render_set(&templates, context)
        .map_err(|error| Status::failed_precondition(format!("the SDK's templates do not render: {error}")))?;
    let paths = files.iter().map(|f| format!("{root}/{}", f.path.display())).collect();
    let tar = templating::tar(&files, std::path::Path::new(root)).map_err(|e| Status::internal(e.to_string()))?;
    let archive = templating::gzip(&tar).map_err(|e| Status::internal(e.to_string()))?;
    Ok((archive, paths))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_languages_with_a_set_are_taken() {
        assert_eq!(template_set("python").unwrap(), "sdk-python");
        let ServiceError::InvalidArgument { violations, .. } = template_set("cobol").unwrap_err() else {
            panic!("not a field error")
        };
        assert_eq!(violations[0].field, "language");
        assert!(violations[0].description.contains("python, typescript"));
        assert_eq!(root_of("ada_ws", "python"), "kiln-ws-ada-ws-python");
    }

    #[test]
    fn enum_values_lose_their_enum_prefix_as_generators_do() {
        let prefix = screaming_snake("PaymentStatus") + "_";
        assert_eq!(prefix, "PAYMENT_STATUS_");
        assert_eq!(short_name("PAYMENT_STATUS_PAID", &prefix), "PAID");
        assert_eq!(short_name("PAYMENT_STATUS_2", &prefix), "PAYMENT_STATUS_2");
        assert_eq!(short_name("OTHER", &prefix), "OTHER");
    }
}
