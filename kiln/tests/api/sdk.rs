//! Workspace SDKs (`/api/v1/sdk/{language}`): a package rendered from the workspace's own,
//! editable template sets against its typed contract, with the platform clients' core as
//! it is in proto/clients; a workspace's SDK names only its own models.

use std::collections::BTreeMap;

use base64::Engine as _;
use prost::Message as _;
use serde_json::{Value, json};

use crate::{
    builds::untar,
    harness::{Backend, TestApp, assert_error, spawn_app, token},
};

crate::on_every_backend!(
    an_sdk_is_the_workspaces_typed_contract_rendered_by_its_own_template_set,
    sdk_requests_that_cannot_be_answered_say_why,
);

/// The SDK's files by path, after checking how it is served.
async fn download(app: &TestApp, access: &str, language: &str, root: &str) -> BTreeMap<String, String> {
    let response = app.http.get(app.url(&format!("/api/v1/sdk/{language}"))).bearer_auth(access).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/gzip");
    let disposition = format!("attachment; filename=\"{root}.tar.gz\"");
    assert_eq!(response.headers()["content-disposition"], disposition.as_str());
    let files = untar(&response.bytes().await.unwrap());
    assert!(files.keys().all(|path| path.starts_with(&format!("{root}/"))), "{:?}", files.keys());
    files.into_iter().map(|(path, content)| (path[root.len() + 1..].to_string(), content)).collect()
}

/// The base64 in the first `"…"` after `marker` in `text`.
fn embedded_descriptor(text: &str, marker: &str) -> prost_types::FileDescriptorProto {
    let after = &text[text.find(marker).expect("the descriptor") + marker.len()..];
    let encoded = &after[..after.find('"').unwrap()];
    let bytes = base64::engine::general_purpose::STANDARD.decode(encoded).unwrap();
    prost_types::FileDescriptorProto::decode(bytes.as_slice()).unwrap()
}

async fn template_of(app: &TestApp, access: &str, set: &str, name: &str) -> Value {
    let (status, listed) = app.get_with_token(&format!("/api/v1/templates?set={set}&page_size=100"), access).await;
    assert_eq!(status, 200, "{listed}");
    let records = listed["records"].as_array().unwrap();
    records.iter().find(|t| t["name"] == name).cloned().unwrap_or_else(|| panic!("{name} in {set}: {listed}"))
}

async fn an_sdk_is_the_workspaces_typed_contract_rendered_by_its_own_template_set(backend: Backend) {
    let app = spawn_app(backend).await;
    let access = token(&app.register("ada@example.com").await, "access_token");
    let invoice = json!({ "name": "Invoice", "fields": [
        { "name": "number", "type": "text", "required": true },
        { "name": "total_due", "type": "integer" },
        { "name": "status", "type": "enum", "enum_values": ["draft", "paid"] },
    ]});
    let (status, created) = app.post_with_token("/api/v1/models", &access, invoice).await;
    assert_eq!(status, 201, "{created}");
    let response = app.http.get(app.url("/api/v1/proto/descriptor")).bearer_auth(&access).send().await.unwrap();
    let set = prost_types::FileDescriptorSet::decode(response.bytes().await.unwrap()).unwrap();
    let contract = set.file.into_iter().find(|f| f.package() == "kiln.ws.ada.v1").expect("the contract");

    let python = download(&app, &access, "python", "kiln-ws-ada-python").await;
    for path in ["pyproject.toml", "README.md", "kiln/ws/ada/v1/models.proto", "kiln/ws/ada/v1/models_pb2.pyi"] {
        assert!(python.contains_key(path), "{path} in {:?}", python.keys());
    }
    assert_eq!(python["kiln_ws_ada/_core.py"], include_str!("../../../proto/clients/python/kiln_client/_core.py"));
    assert_eq!(python["kiln_ws_ada/_auth_pb2.py"], include_str!("../../../proto/clients/python/kiln/v1/auth_pb2.py"));
    assert_eq!(embedded_descriptor(&python["kiln/ws/ada/v1/models_pb2.py"], "b64decode(\""), contract);
    let stubs = &python["kiln/ws/ada/v1/models_pb2_grpc.py"];
    assert!(stubs.contains("class InvoiceServiceStub:") && stubs.contains("\"/kiln.ws.ada.v1.InvoiceService/\""));
    assert!(python["kiln_ws_ada/__init__.py"].contains("self.invoices: Records[models_pb2.Invoice]"));
    assert!(python["kiln/ws/ada/v1/models_pb2.pyi"].contains("    total_due: int\n"));
    assert!(python["pyproject.toml"].contains("name = \"kiln-ws-ada\""));

    let typescript = download(&app, &access, "typescript", "kiln-ws-ada-typescript").await;
    assert_eq!(typescript["src/core.ts"], include_str!("../../../proto/clients/typescript/src/core.ts"));
    let messages = &typescript["src/gen/models_pb.ts"];
    assert_eq!(embedded_descriptor(messages, "fileDesc(\""), contract);
    assert!(messages.contains("  totalDue?: bigint | undefined;\n"), "{messages}");
    assert!(messages.contains("export enum Invoice_Status {\n  UNSPECIFIED = 0,\n  DRAFT = 1,\n  PAID = 2,\n}"));
    assert!(typescript["src/index.ts"].contains("readonly invoices: InvoiceRecords;"));
    assert_eq!(typescript["models.proto"], python["kiln/ws/ada/v1/models.proto"]);

    // The set is the workspace's: an edited template is what the next SDK holds.
    let readme = template_of(&app, &access, "sdk-python", "README").await;
    let body = json!({ "body": "# {{ workspace.package }}, our way\n" });
    let (status, edited) = app
        .send(
            reqwest::Method::PATCH,
            &format!("/api/v1/templates/{}", readme["id"].as_str().unwrap()),
            &access,
            Some(body),
        )
        .await;
    assert_eq!(status, 200, "{edited}");
    let python = download(&app, &access, "python", "kiln-ws-ada-python").await;
    assert_eq!(python["README.md"], "# kiln.ws.ada.v1, our way\n");

    // Another workspace's SDK has none of Ada's models.
    let bob = token(&app.register("bob@example.com").await, "access_token");
    let theirs = download(&app, &bob, "python", "kiln-ws-bob-python").await;
    assert!(!theirs["kiln/ws/bob/v1/models.proto"].contains("Invoice"));
    assert!(!theirs.keys().any(|path| path.contains("ada")), "{:?}", theirs.keys());
    app.stop().await;
}

async fn sdk_requests_that_cannot_be_answered_say_why(backend: Backend) {
    let app = spawn_app(backend).await;
    let access = token(&app.register("ada@example.com").await, "access_token");
    let (status, body) = app.get_with_token("/api/v1/sdk/cobol", &access).await;
    let error = assert_error(status, &body, 400, "invalid_argument");
    assert_eq!(error["details"][0]["field"], "language", "{body}");
    assert!(error["details"][0]["description"].as_str().unwrap().contains("python, typescript"), "{body}");
    let response = app.http.get(app.url("/api/v1/sdk/python")).send().await.unwrap();
    assert_eq!(response.status(), 401);

    // A template that no longer renders names itself; no archive is sent.
    let client = template_of(&app, &access, "sdk-typescript", "Client").await;
    let id = client["id"].as_str().unwrap();
    let body = json!({ "body": "{{ workspace.no_such_thing }}" });
    let (status, edited) =
        app.send(reqwest::Method::PATCH, &format!("/api/v1/templates/{id}"), &access, Some(body)).await;
    assert_eq!(status, 200, "{edited}");
    let (status, body) = app.get_with_token("/api/v1/sdk/typescript", &access).await;
    assert_error(status, &body, 409, "failed_precondition");
    assert!(body["error"]["message"].as_str().unwrap().contains("template `Client`"), "{body}");

    // Without the set's templates there is no SDK to render.
    let (_, listed) = app.get_with_token("/api/v1/templates?set=sdk-python&page_size=100", &access).await;
    for template in listed["records"].as_array().unwrap() {
        let path = format!("/api/v1/templates/{}", template["id"].as_str().unwrap());
        let (status, _) = app.send(reqwest::Method::DELETE, &path, &access, None).await;
        assert_eq!(status, 204);
    }
    let (status, body) = app.get_with_token("/api/v1/sdk/python", &access).await;
    assert_error(status, &body, 409, "failed_precondition");
    assert!(body["error"]["message"].as_str().unwrap().contains("`sdk-python` has no templates"), "{body}");
    app.stop().await;
}
