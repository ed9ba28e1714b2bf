//! The workspace's typed contract: from its user models, the proto package
//! `kiln.ws.<workspace_slug>.v1` with one message per model (its fields by their stable
//! numbers, removed ones `reserved`) and one service per model (List, Get, Create,
//! Update with a field mask, Delete, Watch). Derived as a `FileDescriptorProto`, checked
//! by prost-reflect, and printed as `.proto` source from that same descriptor, so the
//! file and the descriptor cannot disagree.
//!
//! Types: text-like fields, dates (`YYYY-MM-DD`), decimals (exact, as text) and
//! relations (the related record's id) are `string`; integers `int64`; booleans `bool`;
//! datetimes `google.protobuf.Timestamp`; enums a proto enum of the message (value `i`
//! is the model's `i`-th value, 0 is unset); json `google.protobuf.Value`. Every user
//! field has presence (`optional`), so a field left out is told apart from a zero.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
};

use kiln_common::records::{fields::FieldType, names};
use kiln_proto::v1::{Field, Model};
use prost::Message as _;
use prost_reflect::DescriptorPool;
use prost_types::{
    DescriptorProto, EnumDescriptorProto, EnumValueDescriptorProto, FieldDescriptorProto, FileDescriptorProto,
    FileDescriptorSet, MessageOptions, MethodDescriptorProto, OneofDescriptorProto, ServiceDescriptorProto,
    descriptor_proto::ReservedRange,
    field_descriptor_proto::{Label, Type},
};

/// The record's own fields, numbered 1-4 in every message (user fields start at
/// [`crate::schema::FIRST_FIELD_NUMBER`]).
const RECORD_FIELDS: [(&str, i32, Type, &str); 4] = [
    ("id", 1, Type::String, ""),
    ("created_at", 2, Type::Message, ".google.protobuf.Timestamp"),
    ("updated_at", 3, Type::Message, ".google.protobuf.Timestamp"),
    ("created_by", 4, Type::String, ""),
];

const TIMESTAMP: &str = ".google.protobuf.Timestamp";
const VALUE: &str = ".google.protobuf.Value";
const FIELD_MASK: &str = ".google.protobuf.FieldMask";
const EMPTY: &str = ".google.protobuf.Empty";

/// A workspace's contract.
#[derive(Debug, Clone)]
pub struct Contract {
    pub package: String,
    pub file: FileDescriptorProto,
    /// What the `.proto` source says above an element, by its name relative to the package.
    notes: BTreeMap<String, String>,
    /// The checked descriptors: the file and the well-known types it imports.
    pool: DescriptorPool,
    /// The model behind each service, by the service's full name.
    services: BTreeMap<String, Arc<Model>>,
}

/// The package of the workspace whose slug is `slug`.
pub fn package_of(slug: &str) -> String {
    format!("kiln.ws.{slug}.v1")
}

impl Contract {
    /// The contract of `models` (user models; system models have typed services in
    /// `kiln.v1` already) in the workspace `slug`, in order of their plural names.
    pub fn derive(slug: &str, models: &[Model]) -> anyhow::Result<Contract> {
        anyhow::ensure!(names::is_workspace_slug(slug), "the workspace slug {slug:?} cannot name a package");
        let package = package_of(slug);
        let mut models: Vec<&Model> = models.iter().filter(|m| !m.is_system).collect();
        models.sort_by(|a, b| a.plural.cmp(&b.plural));
        let mut builder = Builder { package: package.clone(), ..Builder::default() };
        // Models' own messages first: a helper message gives way to a model's name.
        for model in &models {
            builder.taken.insert(pascal(&model.singular));
        }
        for model in &models {
            builder.model(model);
        }
        let mut dependency: Vec<String> = builder.imports.iter().cloned().collect();
        dependency.sort();
        let file = FileDescriptorProto {
            name: Some(format!("kiln/ws/{slug}/v1/models.proto")),
            package: Some(package.clone()),
            dependency,
            message_type: builder.messages,
            service: builder.services,
            syntax: Some("proto3".into()),
            ..Default::default()
        };
        // The global pool holds the well-known types the file imports.
        let mut pool = DescriptorPool::global();
        pool.add_file_descriptor_proto(file.clone())
            .map_err(|e| anyhow::anyhow!("the derived contract of {package} is not valid: {e}"))?;
        Ok(Contract { package, file, notes: builder.notes, pool, services: builder.served })
    }

    /// The file and what it imports, as a serialized `FileDescriptorSet`.
    pub fn descriptor_set(&self) -> Vec<u8> {
        let wanted: BTreeSet<&str> =
            self.file.dependency.iter().map(String::as_str).chain([self.file.name()]).collect();
        let file = self.pool.file_descriptor_protos().filter(|f| wanted.contains(f.name())).cloned().collect();
        FileDescriptorSet { file }.encode_to_vec()
    }

    /// The checked descriptors (the file and its imports).
    pub fn pool(&self) -> &DescriptorPool {
        &self.pool
    }

    /// The model a service (by full name) serves.
    pub fn model_of(&self, service: &str) -> Option<&Arc<Model>> {
        self.services.get(service)
    }

    pub fn file_name(&self) -> &str {
        self.file.name()
    }

    /// The `.proto` source of the file.
    pub fn proto_source(&self) -> String {
        let mut out = String::new();
        out.push_str("// The typed contract of a Kiln workspace, derived from its models. Field numbers\n");
        out.push_str("// are kept across model versions; removed fields are reserved.\n");
        out.push_str("syntax = \"proto3\";\n\n");
        out.push_str(&format!("package {};\n", self.package));
        if !self.file.dependency.is_empty() {
            out.push('\n');
            for import in &self.file.dependency {
                out.push_str(&format!("import \"{import}\";\n"));
            }
        }
        for service in &self.file.service {
            out.push('\n');
            self.note(&mut out, service.name(), "");
            out.push_str(&format!("service {} {{\n", service.name()));
            for method in &service.method {
                self.note(&mut out, &format!("{}.{}", service.name(), method.name()), "  ");
                let stream = if method.server_streaming() { "stream " } else { "" };
                out.push_str(&format!(
                    "  rpc {}({}) returns ({stream}{});\n",
                    method.name(),
                    self.relative(method.input_type()),
                    self.relative(method.output_type())
                ));
            }
            out.push_str("}\n");
        }
        for message in &self.file.message_type {
            out.push('\n');
            self.message(&mut out, message, "", "");
        }
        out
    }

    fn message(&self, out: &mut String, message: &DescriptorProto, scope: &str, indent: &str) {
        let name = format!("{scope}{}", message.name());
        self.note(out, &name, indent);
        out.push_str(&format!("{indent}message {} {{\n", message.name()));
        let inner = format!("{indent}  ");
        for nested in &message.enum_type {
            self.note(out, &format!("{name}.{}", nested.name()), &inner);
            out.push_str(&format!("{inner}enum {} {{\n", nested.name()));
            for value in &nested.value {
                out.push_str(&format!("{inner}  {} = {};\n", value.name(), value.number()));
            }
            out.push_str(&format!("{inner}}}\n"));
        }
        for nested in message.nested_type.iter().filter(|n| !is_map_entry(n)) {
            self.message(out, nested, &format!("{name}."), &inner);
        }
        for field in &message.field {
            self.note(out, &format!("{name}.{}", field.name()), &inner);
            let map_entry = message
                .nested_type
                .iter()
                .find(|n| is_map_entry(n) && field.type_name().rsplit('.').next() == Some(n.name()));
            let declared = match map_entry {
                Some(entry) => format!("map<{}, {}>", scalar(&entry.field[0]), scalar(&entry.field[1])),
                None => {
                    let label = match (field.label(), field.proto3_optional()) {
                        (Label::Repeated, _) => "repeated ",
                        (_, true) => "optional ",
                        _ => "",
                    };
                    let ty = if field.type_name().is_empty() {
                        scalar(field).to_string()
                    } else {
                        // A type of this message (its enum) by its own name.
                        let relative = self.relative(field.type_name());
                        relative.strip_prefix(&format!("{name}.")).map(str::to_string).unwrap_or(relative)
                    };
                    format!("{label}{ty}")
                }
            };
            out.push_str(&format!("{inner}{declared} {} = {};\n", field.name(), field.number()));
        }
        if !message.reserved_range.is_empty() {
            let numbers: Vec<String> = message.reserved_range.iter().map(|r| r.start().to_string()).collect();
            out.push_str(&format!("{inner}reserved {};\n", numbers.join(", ")));
        }
        if !message.reserved_name.is_empty() {
            let quoted: Vec<String> = message.reserved_name.iter().map(|n| format!("\"{n}\"")).collect();
            out.push_str(&format!("{inner}reserved {};\n", quoted.join(", ")));
        }
        out.push_str(&format!("{indent}}}\n"));
    }

    fn note(&self, out: &mut String, name: &str, indent: &str) {
        if let Some(note) = self.notes.get(name) {
            for line in note.lines() {
                out.push_str(&format!("{indent}// {line}\n"));
            }
        }
    }

    /// A type name as the source writes it: relative inside the package, fully
    /// qualified (leading dot) outside, so no model's name can shadow it.
    fn relative(&self, type_name: &str) -> String {
        let own = format!(".{}.", self.package);
        type_name.strip_prefix(&own).map(str::to_string).unwrap_or_else(|| type_name.to_string())
    }
}

fn is_map_entry(message: &DescriptorProto) -> bool {
    message.options.as_ref().is_some_and(|o| o.map_entry())
}

/// A scalar field's type as the source writes it.
fn scalar(field: &FieldDescriptorProto) -> &'static str {
    match field.r#type() {
        Type::Int64 => "int64",
        Type::Int32 => "int32",
        Type::Bool => "bool",
        _ => "string",
    }
}

#[derive(Default)]
struct Builder {
    package: String,
    messages: Vec<DescriptorProto>,
    services: Vec<ServiceDescriptorProto>,
    imports: BTreeSet<String>,
    notes: BTreeMap<String, String>,
    /// Top-level names in use.
    taken: BTreeSet<String>,
    /// The model behind each service, by the service's full name.
    served: BTreeMap<String, Arc<Model>>,
}

impl Builder {
    /// `wanted`, or `Kiln` + `wanted` (again…) when a model's message has that name.
    fn name(&mut self, wanted: String) -> String {
        let mut name = wanted;
        while self.taken.contains(&name) {
            name = format!("Kiln{name}");
        }
        self.taken.insert(name.clone());
        name
    }

    fn full(&self, name: &str) -> String {
        format!(".{}.{name}", self.package)
    }

    fn model(&mut self, model: &Model) {
        let record = pascal(&model.singular);
        let records = pascal(&model.plural);
        let record_type = self.full(&record);
        let (singular, plural) = (model.singular.clone(), model.plural.clone());
        let mut message = DescriptorProto { name: Some(record.clone()), ..Default::default() };
        self.imports.insert("google/protobuf/timestamp.proto".into());
        for (name, number, ty, type_name) in RECORD_FIELDS {
            let mut field = field(name, number, ty);
            if !type_name.is_empty() {
                field.type_name = Some(type_name.into());
            }
            message.field.push(field);
        }
        self.notes.insert(
            record.clone(),
            match model.description.trim() {
                "" => format!("A record of the model {} ({}).", model.label, model.plural),
                description => format!("{}: {description}", model.label),
            },
        );
        for spec in &model.fields {
            self.user_field(&mut message, &record, spec);
        }
        let current: BTreeSet<&str> = model.fields.iter().map(|f| f.name.as_str()).collect();
        // Numbers of dropped fields, and every name no field has now (a renamed field's
        // former name shares its number, which stays in use).
        let in_use: BTreeSet<i32> = model.fields.iter().map(|f| f.number).collect();
        let mut numbers: Vec<i32> =
            model.reserved_fields.iter().map(|r| r.number).filter(|n| *n > 0 && !in_use.contains(n)).collect();
        numbers.sort_unstable();
        numbers.dedup();
        for number in numbers {
            message.reserved_range.push(ReservedRange { start: Some(number), end: Some(number + 1) });
        }
        for former in &model.reserved_fields {
            if !current.contains(former.name.as_str()) && !message.reserved_name.contains(&former.name) {
                message.reserved_name.push(former.name.clone());
            }
        }
        self.messages.push(message);

        // The service's own messages.
        let list_request = self.name(format!("List{records}Request"));
        let mut list = DescriptorProto { name: Some(list_request.clone()), ..Default::default() };
        list.field.push(field("page_size", 1, Type::Int32));
        list.field.push(field("page_token", 2, Type::String));
        list.field.push(field("sort", 3, Type::String));
        list.field.push(FieldDescriptorProto {
            label: Some(Label::Repeated as i32),
            type_name: Some(format!("{}.FilterEntry", self.full(&list_request))),
            ..field("filter", 4, Type::Message)
        });
        list.nested_type.push(DescriptorProto {
            name: Some("FilterEntry".into()),
            field: vec![field("key", 1, Type::String), field("value", 2, Type::String)],
            options: Some(MessageOptions { map_entry: Some(true), ..Default::default() }),
            ..Default::default()
        });
        self.notes.insert(
            list_request.clone(),
            "page_size: at most 100, 0 means 50. sort: a field's name, `-name` for descending.\n\
             filter: field name → value, records equal on every one."
                .into(),
        );
        let list_response = self.name(format!("List{records}Response"));
        let response = DescriptorProto {
            name: Some(list_response.clone()),
            field: vec![
                FieldDescriptorProto {
                    label: Some(Label::Repeated as i32),
                    type_name: Some(record_type.clone()),
                    ..field(&plural, 1, Type::Message)
                },
                field("next_page_token", 2, Type::String),
            ],
            ..Default::default()
        };
        let by_id = |name: String| DescriptorProto {
            name: Some(name),
            field: vec![field("id", 1, Type::String)],
            ..Default::default()
        };
        let get_request = self.name(format!("Get{record}Request"));
        let create_request = self.name(format!("Create{record}Request"));
        let update_request = self.name(format!("Update{record}Request"));
        let delete_request = self.name(format!("Delete{record}Request"));
        let watch_request = self.name(format!("Watch{records}Request"));
        let change = self.name(format!("{record}Change"));
        let with_record =
            || FieldDescriptorProto { type_name: Some(record_type.clone()), ..field(&singular, 1, Type::Message) };
        let create =
            DescriptorProto { name: Some(create_request.clone()), field: vec![with_record()], ..Default::default() };
        let update = DescriptorProto {
            name: Some(update_request.clone()),
            field: vec![
                with_record(),
                FieldDescriptorProto { type_name: Some(FIELD_MASK.into()), ..field("update_mask", 2, Type::Message) },
            ],
            ..Default::default()
        };
        self.notes.insert(
            update_request.clone(),
            "update_mask names the fields to change; without one, every field set in the record changes.".into(),
        );
        let mut change_message = DescriptorProto {
            name: Some(change.clone()),
            field: vec![
                FieldDescriptorProto {
                    type_name: Some(format!("{}.Kind", self.full(&change))),
                    ..field("kind", 1, Type::Enum)
                },
                field("id", 2, Type::String),
                FieldDescriptorProto { type_name: Some(record_type.clone()), ..field(&singular, 3, Type::Message) },
            ],
            ..Default::default()
        };
        change_message.enum_type.push(enumeration(
            "Kind",
            ["KIND_UNSPECIFIED", "KIND_CREATED", "KIND_UPDATED", "KIND_DELETED"].map(String::from).to_vec(),
        ));
        self.notes.insert(change.clone(), format!("A change to a record; `{singular}` is unset when it was deleted."));
        self.imports.insert("google/protobuf/field_mask.proto".into());
        self.imports.insert("google/protobuf/empty.proto".into());
        self.messages.extend([
            list,
            response,
            by_id(get_request.clone()),
            create,
            update,
            by_id(delete_request.clone()),
            DescriptorProto { name: Some(watch_request.clone()), ..Default::default() },
            change_message,
        ]);

        let service = self.name(format!("{record}Service"));
        let method = |name: &str, input: &str, output: &str, streaming: bool| MethodDescriptorProto {
            name: Some(name.into()),
            input_type: Some(input.into()),
            output_type: Some(output.into()),
            server_streaming: streaming.then_some(true),
            ..Default::default()
        };
        let package = self.package.clone();
        let full = |name: &str| format!(".{package}.{name}");
        self.services.push(ServiceDescriptorProto {
            name: Some(service.clone()),
            method: vec![
                method("List", &full(&list_request), &full(&list_response), false),
                method("Get", &full(&get_request), &record_type, false),
                method("Create", &full(&create_request), &record_type, false),
                method("Update", &full(&update_request), &record_type, false),
                method("Delete", &full(&delete_request), EMPTY, false),
                method("Watch", &full(&watch_request), &full(&change), true),
            ],
            ..Default::default()
        });
        self.notes.insert(service.clone(), format!("The records of {} ({}).", model.label_plural, model.plural));
        self.served.insert(format!("{}.{service}", self.package), Arc::new((*model).clone()));
        self.notes.insert(format!("{service}.Watch"), "Every change from now on, until the call ends.".into());
    }

    fn user_field(&mut self, message: &mut DescriptorProto, record: &str, spec: &Field) {
        let ty = FieldType::parse(&spec.r#type);
        let (proto_type, type_name) = match ty {
            Some(FieldType::Integer) => (Type::Int64, None),
            Some(FieldType::Boolean) => (Type::Bool, None),
            Some(FieldType::DateTime) => (Type::Message, Some(TIMESTAMP.to_string())),
            Some(FieldType::Json) => {
                self.imports.insert("google/protobuf/struct.proto".into());
                (Type::Message, Some(VALUE.to_string()))
            }
            Some(FieldType::Enum) => {
                let name = pascal(&spec.name);
                let prefix = spec.name.to_ascii_uppercase();
                let mut values = vec![format!("{prefix}_UNSPECIFIED")];
                for (i, value) in spec.enum_values.iter().enumerate() {
                    let mut constant = format!("{prefix}_{}", constant(value));
                    if values.contains(&constant) {
                        constant = format!("{constant}_{}", i + 1);
                    }
                    values.push(constant);
                }
                message.enum_type.push(enumeration(&name, values));
                (Type::Enum, Some(format!("{}.{name}", self.full(record))))
            }
            _ => (Type::String, None),
        };
        let synthetic = message.oneof_decl.len() as i32;
        let has_presence = type_name.as_deref().is_none_or(|t| !t.starts_with(".google"));
        let mut field = FieldDescriptorProto { type_name, ..field(&spec.name, spec.number, proto_type) };
        if has_presence {
            message.oneof_decl.push(OneofDescriptorProto { name: Some(format!("_{}", spec.name)), options: None });
            field.oneof_index = Some(synthetic);
            field.proto3_optional = Some(true);
        }
        message.field.push(field);
        let label = if spec.label.trim().is_empty() { spec.name.clone() } else { spec.label.trim().to_string() };
        let mut note = match ty {
            Some(FieldType::Decimal) => format!("{label}: a decimal number, exact, as text (\"12.50\")."),
            Some(FieldType::Date) => format!("{label}: a date, YYYY-MM-DD."),
            Some(FieldType::Relation) => format!(
                "{label}: the id of a record of {}.",
                spec.relation.as_ref().map(|r| r.target.as_str()).unwrap_or("another model")
            ),
            Some(FieldType::Enum) => format!("{label}: one of {}.", spec.enum_values.join(", ")),
            _ => format!("{label}."),
        };
        if spec.required {
            note.push_str(" Required.");
        }
        if !spec.help_text.trim().is_empty() {
            note.push('\n');
            note.push_str(spec.help_text.trim());
        }
        self.notes.insert(format!("{record}.{}", spec.name), note);
    }
}

fn field(name: &str, number: i32, ty: Type) -> FieldDescriptorProto {
    FieldDescriptorProto {
        name: Some(name.into()),
        number: Some(number),
        label: Some(Label::Optional as i32),
        r#type: Some(ty as i32),
        json_name: Some(json_name(name)),
        ..Default::default()
    }
}

fn enumeration(name: &str, values: Vec<String>) -> EnumDescriptorProto {
    EnumDescriptorProto {
        name: Some(name.into()),
        value: values
            .into_iter()
            .enumerate()
            .map(|(i, value)| EnumValueDescriptorProto { name: Some(value), number: Some(i as i32), options: None })
            .collect(),
        ..Default::default()
    }
}

/// `invoice_line` → `InvoiceLine`.
pub fn pascal(snake: &str) -> String {
    snake
        .split('_')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map(|c| c.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
        })
        .collect()
}

/// The proto3 JSON name of a field: `due_date` → `dueDate`.
fn json_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// An enum value as a constant: `in progress` → `IN_PROGRESS`; nothing usable → `VALUE`.
fn constant(value: &str) -> String {
    let mut out = String::new();
    for c in value.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_uppercase());
        } else if !out.is_empty() && !out.ends_with('_') {
            out.push('_');
        }
    }
    let out = out.trim_end_matches('_').to_string();
    if out.is_empty() { "VALUE".into() } else { out }
}

#[cfg(test)]
mod tests {
    use kiln_proto::v1::{Relation, ReservedField};
    use prost::Message as _;

    use super::*;

    fn model(singular: &str, plural: &str, fields: Vec<Field>) -> Model {
        Model {
            singular: singular.into(),
            plural: plural.into(),
            label: pascal(singular),
            label_plural: pascal(plural),
            fields,
            ..Default::default()
        }
    }

    fn typed(name: &str, ty: &str, number: i32) -> Field {
        Field { name: name.into(), r#type: ty.into(), number, ..Default::default() }
    }

    fn invoices() -> Model {
        let mut status = typed("status", "enum", 19);
        status.enum_values = vec!["draft".into(), "in progress".into(), "in-progress".into()];
        let mut customer = typed("customer", "relation", 27);
        customer.relation = Some(Relation { target: "customers".into(), ..Default::default() });
        let mut invoices = model(
            "invoice",
            "invoices",
            vec![
                Field { required: true, ..typed("number", "text", 16) },
                typed("amount", "decimal", 17),
                typed("count", "integer", 18),
                status,
                typed("paid", "boolean", 20),
                typed("due", "date", 21),
                typed("sent_at", "datetime", 22),
                typed("extra", "json", 23),
                typed("notes", "long_text", 24),
                typed("contact", "email", 25),
                typed("site", "url", 26),
                customer,
                typed("token", "uuid", 28),
            ],
        );
        invoices.reserved_fields = vec![
            ReservedField { number: 30, name: "old_total".into() },
            // Renamed away and back: the name is in use again, only the number stays reserved.
            ReservedField { number: 29, name: "paid".into() },
        ];
        invoices
    }

    /// The `.proto` source compiled by protox: the descriptor it gives.
    fn compiled(contract: &Contract) -> FileDescriptorProto {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(contract.file_name());
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, contract.proto_source()).unwrap();
        let set = protox::compile([contract.file_name()], [dir.path()]).unwrap();
        let mut file = set.file.into_iter().find(|f| f.name() == contract.file_name()).unwrap();
        file.source_code_info = None;
        file
    }

    #[test]
    fn the_source_and_the_descriptor_are_the_same_contract() {
        let contract = Contract::derive("ada", &[invoices(), model("customer", "customers", vec![])]).unwrap();
        assert_eq!(contract.package, "kiln.ws.ada.v1");
        assert_eq!(compiled(&contract), contract.file, "{}", contract.proto_source());
        // The set carries what the file imports.
        let set = FileDescriptorSet::decode(contract.descriptor_set().as_slice()).unwrap();
        let names: BTreeSet<&str> = set.file.iter().map(|f| f.name()).collect();
        for import in ["google/protobuf/timestamp.proto", "google/protobuf/struct.proto", contract.file_name()] {
            assert!(names.contains(import), "{names:?}");
        }
    }

    #[test]
    fn fields_take_their_numbers_types_and_presence_from_the_model() {
        let contract = Contract::derive("ada", &[invoices()]).unwrap();
        let invoice = contract.pool().get_message_by_name("kiln.ws.ada.v1.Invoice").unwrap();
        let number = |name: &str| invoice.get_field_by_name(name).unwrap().number();
        assert_eq!((number("id"), number("created_at"), number("number"), number("token")), (1, 2, 16, 28));
        let kind = |name: &str| format!("{:?}", invoice.get_field_by_name(name).unwrap().kind());
        assert_eq!(kind("count"), "int64");
        assert_eq!(kind("amount"), "string", "decimals are exact text");
        assert!(kind("sent_at").contains("google.protobuf.Timestamp"));
        assert!(kind("extra").contains("google.protobuf.Value"));
        let status = invoice.get_field_by_name("status").unwrap();
        let prost_reflect::Kind::Enum(values) = status.kind() else { panic!("status is an enum") };
        let values: Vec<(String, i32)> = values.values().map(|v| (v.name().to_string(), v.number())).collect();
        assert_eq!(
            values,
            [
                ("STATUS_UNSPECIFIED".to_string(), 0),
                ("STATUS_DRAFT".to_string(), 1),
                ("STATUS_IN_PROGRESS".to_string(), 2),
                ("STATUS_IN_PROGRESS_3".to_string(), 3)
            ]
        );
        for name in ["number", "count", "paid", "customer"] {
            assert!(invoice.get_field_by_name(name).unwrap().supports_presence(), "{name}");
        }
        let source = contract.proto_source();
        assert!(source.contains("reserved 29, 30;"), "{source}");
        assert!(source.contains("reserved \"old_total\";"), "{source}");
        let service = contract.pool().get_service_by_name("kiln.ws.ada.v1.InvoiceService").unwrap();
        let methods: Vec<String> = service.methods().map(|m| m.name().to_string()).collect();
        assert_eq!(methods, ["List", "Get", "Create", "Update", "Delete", "Watch"]);
        assert!(service.methods().find(|m| m.name() == "Watch").unwrap().is_server_streaming());
    }

    #[test]
    fn a_model_named_like_a_helper_message_keeps_its_name() {
        let both = [model("invoice", "invoices", vec![]), model("invoice_change", "invoice_changes", vec![])];
        let contract = Contract::derive("ada", &both).unwrap();
        let pool = contract.pool();
        assert!(pool.get_message_by_name("kiln.ws.ada.v1.InvoiceChange").unwrap().get_field_by_name("id").is_some());
        let watch = pool.get_service_by_name("kiln.ws.ada.v1.InvoiceService").unwrap();
        let watch = watch.methods().find(|m| m.name() == "Watch").unwrap();
        assert_eq!(watch.output().full_name(), "kiln.ws.ada.v1.KilnInvoiceChange");
        assert_eq!(compiled(&contract), contract.file);
    }

    #[test]
    fn a_workspace_without_models_has_an_empty_package_and_a_bad_slug_none() {
        let contract = Contract::derive("ada", &[]).unwrap();
        assert!(contract.file.service.is_empty() && contract.file.dependency.is_empty());
        assert_eq!(compiled(&contract), contract.file);
        assert!(Contract::derive("Ada; drop", &[]).is_err());
    }
}
