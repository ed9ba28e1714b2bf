//! Records of user models: CRUD over REST, gRPC and grpc-web, validation, paging, sort,
//! filters, relations and tenant isolation, on both databases.

use kiln_proto::{
    v1::{
        CreateEntityRequest, EntityChange, GetEntityRequest, GetEntityResponse, ListEntitiesRequest,
        WatchEntitiesRequest, entity_service_client::EntityServiceClient,
    },
    wkt::Struct,
};
use prost::Message;
use serde_json::{Value, json};
use tonic::Code;

use crate::{
    grpc::{channel, with_token},
    harness::{Backend, TestApp, assert_error, spawn_app, token},
};

crate::on_every_backend!(
    records_go_through_their_whole_life_over_rest,
    bad_records_are_refused_field_by_field,
    lists_page_sort_and_filter_without_gaps,
    page_tokens_belong_to_their_list,
    relations_are_enforced_and_cascade,
    another_workspace_cannot_reach_records,
    records_over_grpc_with_structs,
    every_field_type_reads_the_same_on_every_protocol,
    concurrent_writes_each_get_their_own_outcome,
    watching_sees_every_committed_change_of_the_model_only,
);

async fn with_invoices(app: &TestApp, email: &str) -> String {
    let access = token(&app.register(email).await, "access_token");
    let invoice = json!({ "name": "Invoice", "fields": [
        { "name": "number", "type": "text", "required": true, "unique": true, "max_length": 20 },
        { "name": "amount", "type": "decimal", "min": 0 },
        { "name": "paid", "type": "boolean", "default_value": false },
        { "name": "status", "type": "enum", "enum_values": ["draft", "sent", "paid"] },
        { "name": "due", "type": "date" },
        { "name": "meta", "type": "json" }
    ]});
    let (status, body) = app.post_with_token("/api/v1/models", &access, invoice).await;
    assert_eq!(status, 201, "{body}");
    access
}

async fn records_go_through_their_whole_life_over_rest(backend: Backend) {
    let app = spawn_app(backend).await;
    let access = with_invoices(&app, "ada@example.com").await;

    let new = json!({ "number": "INV-1", "amount": 120.5, "status": "draft", "due": "2026-12-31", "meta": { "tags": ["a"] } });
    let (status, body) = app.post_with_token("/api/invoices", &access, new).await;
    assert_eq!(status, 201, "{body}");
    let record = &body["record"];
    let id = record["id"].as_str().unwrap().to_string();
    assert_eq!(uuid::Uuid::parse_str(&id).unwrap().get_version_num(), 7, "ids are UUID v7");
    assert_eq!(record["amount"], "120.5", "decimals travel as strings");
    assert_eq!(record["paid"], false, "the default applies");
    assert_eq!(record["due"], "2026-12-31");
    assert_eq!(record["meta"], json!({ "tags": ["a"] }));
    assert!(record["created_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(record["created_by"].as_str().unwrap().len(), 36);

    let (status, got) = app.get_with_token(&format!("/api/v1/invoices/{id}"), &access).await;
    assert_eq!((status, &got["record"]), (200, record));

    let (status, patched) =
        app.send(reqwest::Method::PATCH, &format!("/api/invoices/{id}"), &access, Some(json!({ "paid": true }))).await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!((&patched["record"]["paid"], &patched["record"]["amount"]), (&json!(true), &json!("120.5")));
    assert_ne!(patched["record"]["updated_at"], record["updated_at"]);

    let (status, replaced) = app
        .send(reqwest::Method::PUT, &format!("/api/invoices/{id}"), &access, Some(json!({ "number": "INV-1b" })))
        .await;
    assert_eq!(status, 200, "{replaced}");
    assert_eq!(replaced["record"]["amount"], Value::Null, "PUT replaces: absent fields are cleared");
    assert_eq!(replaced["record"]["paid"], false, "… or take their default");
    assert_eq!(replaced["record"]["created_at"], record["created_at"]);

    let (status, list) = app.get_with_token("/api/invoices", &access).await;
    assert_eq!(status, 200);
    assert_eq!(list["records"].as_array().unwrap().len(), 1);
    assert_eq!(list["next_page_token"], "");

    let (status, _) = app.send(reqwest::Method::DELETE, &format!("/api/invoices/{id}"), &access, None).await;
    assert_eq!(status, 204);
    let (status, body) = app.get_with_token(&format!("/api/invoices/{id}"), &access).await;
    assert_error(status, &body, 404, "not_found");
    let (status, body) = app.send(reqwest::Method::DELETE, &format!("/api/invoices/{id}"), &access, None).await;
    assert_error(status, &body, 404, "not_found");
    let (status, body) = app.get_with_token("/api/v1/nothing_here", &access).await;
    assert_error(status, &body, 404, "not_found");
    let (status, body) = app.get_with_token("/api/v1/users", &access).await;
    assert_error(status, &body, 409, "failed_precondition");
    app.stop().await;
}

/// Writes that arrive together are committed together on SQLite (group commit); each
/// still succeeds or fails on its own, and nothing is lost or written twice.
async fn concurrent_writes_each_get_their_own_outcome(backend: Backend) {
    let app = spawn_app(backend).await;
    let access = with_invoices(&app, "ada@example.com").await;
    // Every number twice: one of each pair is created, the other is told it exists.
    let creates = (0..60).map(|n| {
        let (app, access) = (&app, &access);
        async move { app.post_with_token("/api/invoices", access, json!({ "number": format!("C-{}", n % 30) })).await }
    });
    let mut created = Vec::new();
    for (status, body) in futures::future::join_all(creates).await {
        match status {
            201 => created.push(body["record"]["id"].as_str().unwrap().to_string()),
            _ => assert_eq!(assert_error(status, &body, 409, "already_exists")["details"][0]["field"], "number"),
        }
    }
    assert_eq!(created.len(), 30);
    let (_, list) = app.get_with_token("/api/invoices?page_size=100&sort=number", &access).await;
    let mut numbers: Vec<&str> =
        list["records"].as_array().unwrap().iter().map(|r| r["number"].as_str().unwrap()).collect();
    numbers.sort();
    let mut expected: Vec<String> = (0..30).map(|n| format!("C-{n}")).collect();
    expected.sort();
    assert_eq!(numbers, expected);

    // Each record deleted twice at once: exactly one of the two deletes finds it.
    let deletes = created.iter().chain(&created).map(|id| {
        let (app, access, path) = (&app, &access, format!("/api/invoices/{id}"));
        async move { app.send(reqwest::Method::DELETE, &path, access, None).await }
    });
    let statuses: Vec<u16> = futures::future::join_all(deletes).await.into_iter().map(|(status, _)| status).collect();
    assert_eq!(statuses.iter().filter(|&&s| s == 204).count(), 30, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|&&s| s == 404).count(), 30, "{statuses:?}");
    let (_, list) = app.get_with_token("/api/invoices", &access).await;
    assert_eq!(list["records"], json!([]));
    app.stop().await;
}

async fn bad_records_are_refused_field_by_field(backend: Backend) {
    let app = spawn_app(backend).await;
    let access = with_invoices(&app, "ada@example.com").await;

    let bad = json!({ "amount": "lots", "paid": "yes", "status": "lost", "due": "31/12/2026", "colour": "red" });
    let (status, body) = app.post_with_token("/api/invoices", &access, bad).await;
    let error = assert_error(status, &body, 400, "invalid_argument");
    let mut fields: Vec<&str> =
        error["details"].as_array().unwrap().iter().map(|d| d["field"].as_str().unwrap()).collect();
    fields.sort();
    assert_eq!(fields, ["amount", "colour", "due", "number", "paid", "status"]);

    let (status, body) = app.post_with_token("/api/invoices", &access, json!({ "number": "x", "amount": -1 })).await;
    let error = assert_error(status, &body, 400, "invalid_argument");
    assert_eq!(error["details"][0]["field"], "amount");
    let (status, body) = app.post_with_token("/api/invoices", &access, json!({ "number": "a\u{0}b" })).await;
    assert_error(status, &body, 400, "invalid_argument");
    let (status, body) = app.post_with_token("/api/invoices", &access, json!({ "number": "x".repeat(21) })).await;
    assert_error(status, &body, 400, "invalid_argument");

    // Hostile text is data, bound as a value.
    let evil = "'); DROP TABLE ent_invoices; --";
    let (status, body) =
        app.post_with_token("/api/invoices", &access, json!({ "number": evil[..20].to_string() })).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) =
        app.post_with_token("/api/invoices", &access, json!({ "number": evil[..20].to_string() })).await;
    let error = assert_error(status, &body, 409, "already_exists");
    assert_eq!(error["details"][0]["field"], "number");
    let (_, list) = app.get_with_token("/api/invoices", &access).await;
    assert_eq!(list["records"][0]["number"], evil[..20]);

    let id = list["records"][0]["id"].as_str().unwrap().to_string();
    let (status, body) = app
        .send(reqwest::Method::PATCH, &format!("/api/invoices/{id}"), &access, Some(json!({ "number": null })))
        .await;
    assert_error(status, &body, 400, "invalid_argument");
    let (status, body) = app
        .send(reqwest::Method::PATCH, &format!("/api/invoices/{id}"), &access, Some(json!({ "id": uuid::Uuid::nil() })))
        .await;
    assert_error(status, &body, 400, "invalid_argument");
    let (status, body) = app.get_with_token("/api/invoices/not-a-uuid", &access).await;
    assert_error(status, &body, 404, "not_found");
    let (status, body) = app.post_with_token("/api/invoices", &access, json!([1, 2])).await;
    assert_error(status, &body, 400, "invalid_argument");
    app.stop().await;
}

async fn lists_page_sort_and_filter_without_gaps(backend: Backend) {
    let app = spawn_app(backend).await;
    let access = with_invoices(&app, "ada@example.com").await;
    let amounts = [30.0, 10.0, 50.0, 20.0, 40.0, 20.0];
    for (i, amount) in amounts.iter().enumerate() {
        let status = if i % 2 == 0 { "sent" } else { "draft" };
        let record = json!({ "number": format!("N{i}"), "amount": amount, "status": status });
        assert_eq!(app.post_with_token("/api/invoices", &access, record).await.0, 201);
    }
    // One record without an amount: nulls sort last either way.
    assert_eq!(app.post_with_token("/api/invoices", &access, json!({ "number": "N6" })).await.0, 201);

    for (sort, expected) in [
        ("amount", vec![json!("10"), json!("20"), json!("20"), json!("30"), json!("40"), json!("50"), Value::Null]),
        ("-amount", vec![json!("50"), json!("40"), json!("30"), json!("20"), json!("20"), json!("10"), Value::Null]),
    ] {
        let mut seen = Vec::new();
        let mut ids = std::collections::HashSet::new();
        let mut page_token = String::new();
        loop {
            let (status, body) = app
                .get_with_token(&format!("/api/invoices?page_size=2&sort={sort}&page_token={page_token}"), &access)
                .await;
            assert_eq!(status, 200, "{body}");
            for record in body["records"].as_array().unwrap() {
                seen.push(record["amount"].clone());
                assert!(ids.insert(record["id"].as_str().unwrap().to_string()), "a record came twice");
            }
            page_token = body["next_page_token"].as_str().unwrap().to_string();
            if page_token.is_empty() {
                break;
            }
        }
        assert_eq!(seen, expected, "sort {sort}");
    }

    let (_, sent) = app.get_with_token("/api/invoices?status=sent&sort=number", &access).await;
    let numbers: Vec<&str> =
        sent["records"].as_array().unwrap().iter().map(|r| r["number"].as_str().unwrap()).collect();
    assert_eq!(numbers, ["N0", "N2", "N4"]);
    let (_, twenty) = app.get_with_token("/api/invoices?amount=20&status=draft", &access).await;
    assert_eq!(twenty["records"].as_array().unwrap().len(), 2);

    for (query, field) in [
        ("colour=red", "filter.colour"),
        ("amount=lots", "filter.amount"),
        ("sort=meta", "sort"),
        ("sort=nope", "sort"),
        ("page_size=1000", "page_size"),
        ("page_token=garbage", "page_token"),
    ] {
        let (status, body) = app.get_with_token(&format!("/api/invoices?{query}"), &access).await;
        let error = assert_error(status, &body, 400, "invalid_argument");
        assert_eq!(error["details"][0]["field"], field, "{query}");
    }
    app.stop().await;
}

/// A page token names a position in one list: another sort's, another model's, another
/// workspace's or an edited token is a 400 on `page_token`, for every list that pages.
async fn page_tokens_belong_to_their_list(backend: Backend) {
    let app = spawn_app(backend).await;
    let ada = with_invoices(&app, "ada@example.com").await;
    let eve = with_invoices(&app, "eve@example.com").await;
    for (who, n) in [(&ada, 1), (&ada, 2), (&eve, 3), (&eve, 4)] {
        let (status, _) = app.post_with_token("/api/invoices", who, json!({ "number": format!("N{n}") })).await;
        assert_eq!(status, 201);
    }
    // A second security event and two more versions of Ada's model, so those lists page too.
    let login = json!({ "email": "ada@example.com", "password": crate::harness::PASSWORD });
    assert_eq!(app.post("/api/v1/auth/login", login).await.0, 200);
    let (_, model) = app.get_with_token("/api/v1/models/invoices", &ada).await;
    let mut fields = model["model"]["fields"].as_array().unwrap().clone();
    for added in ["note", "memo"] {
        fields.push(json!({ "name": added, "type": "text" }));
        let change = json!({ "fields": fields });
        let (status, body) = app.send(reqwest::Method::PUT, "/api/v1/models/invoices", &ada, Some(change)).await;
        assert_eq!(status, 200, "adding {added}: {body}");
    }
    let first_token = |path: String, who: String| {
        let app = &app;
        async move {
            let (status, body) = app.get_with_token(&path, &who).await;
            assert_eq!(status, 200, "{path}: {body}");
            let token = body["next_page_token"].as_str().unwrap().to_string();
            assert!(!token.is_empty(), "{path} has one page only");
            token
        }
    };
    let records = first_token("/api/invoices?page_size=1&sort=number".into(), ada.clone()).await;
    let eves_records = first_token("/api/invoices?page_size=1&sort=number".into(), eve.clone()).await;
    let models = first_token("/api/v1/models?page_size=1".into(), ada.clone()).await;
    let versions = first_token("/api/v1/models/invoices/versions?page_size=1".into(), ada.clone()).await;
    let audit = first_token("/api/v1/auth/audit?page_size=1".into(), ada.clone()).await;

    let mut edited = records.clone().into_bytes();
    let middle = edited.len() / 2;
    edited[middle] = if edited[middle] == b'A' { b'B' } else { b'A' };
    let edited = String::from_utf8(edited).unwrap();
    for (path, token) in [
        ("/api/invoices?page_size=1&sort=number", &records),
        ("/api/v1/models?page_size=1", &models),
        ("/api/v1/models/invoices/versions?page_size=1", &versions),
        ("/api/v1/auth/audit?page_size=1", &audit),
    ] {
        let (status, body) = app.get_with_token(&format!("{path}&page_token={token}"), &ada).await;
        assert_eq!(status, 200, "{path}: its own token: {body}");
    }
    for (path, token, why) in [
        ("/api/invoices?page_size=1&sort=-number", &records, "another sort"),
        ("/api/invoices?page_size=1", &records, "another sort"),
        ("/api/invoices?page_size=1&sort=number", &eves_records, "another workspace"),
        ("/api/invoices?page_size=1&sort=number", &models, "another list"),
        ("/api/invoices?page_size=1&sort=number", &edited, "edited"),
        ("/api/v1/models?page_size=1", &records, "another list"),
        ("/api/v1/models/invoices/versions?page_size=1", &audit, "another list"),
        ("/api/v1/auth/audit?page_size=1", &versions, "another list"),
    ] {
        let (status, body) = app.get_with_token(&format!("{path}&page_token={token}"), &ada).await;
        let error = assert_error(status, &body, 400, "invalid_argument");
        assert_eq!(error["details"][0]["field"], "page_token", "{path} with {why}: {body}");
    }
    // The same over gRPC: Eve's token is not Ada's.
    let mut entities = EntityServiceClient::new(channel(app.addr).await);
    let request = ListEntitiesRequest {
        model: "invoices".into(),
        page_size: 1,
        sort: "number".into(),
        page_token: eves_records.clone(),
        ..Default::default()
    };
    let refused = entities.list_entities(with_token(request, &ada)).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    app.stop().await;
}

async fn relations_are_enforced_and_cascade(backend: Backend) {
    let app = spawn_app(backend).await;
    let access = with_invoices(&app, "ada@example.com").await;
    let payment = json!({ "name": "Payment", "fields": [
        { "name": "invoice", "type": "relation", "required": true, "relation": { "target": "invoices", "on_delete": "cascade" } },
        { "name": "amount", "type": "decimal" }
    ]});
    assert_eq!(app.post_with_token("/api/v1/models", &access, payment).await.0, 201);
    let (_, invoice) = app.post_with_token("/api/invoices", &access, json!({ "number": "INV-1" })).await;
    let invoice_id = invoice["record"]["id"].as_str().unwrap().to_string();

    let (status, body) =
        app.post_with_token("/api/payments", &access, json!({ "invoice": uuid::Uuid::now_v7(), "amount": 5 })).await;
    let error = assert_error(status, &body, 400, "invalid_argument");
    assert_eq!(error["details"][0]["field"], "invoice");
    let (status, body) =
        app.post_with_token("/api/payments", &access, json!({ "invoice": invoice_id, "amount": 5 })).await;
    assert_eq!(status, 201, "{body}");

    let (status, _) = app.send(reqwest::Method::DELETE, &format!("/api/invoices/{invoice_id}"), &access, None).await;
    assert_eq!(status, 204);
    let (_, payments) = app.get_with_token("/api/payments", &access).await;
    assert!(payments["records"].as_array().unwrap().is_empty(), "cascade removed the payment");
    app.stop().await;
}

async fn another_workspace_cannot_reach_records(backend: Backend) {
    let app = spawn_app(backend).await;
    let ada = with_invoices(&app, "ada@example.com").await;
    let (_, created) = app.post_with_token("/api/invoices", &ada, json!({ "number": "ADA-1" })).await;
    let id = created["record"]["id"].as_str().unwrap().to_string();

    // Eve has no such model; then she makes her own, which still holds none of Ada's rows.
    let eve = token(&app.register("eve@example.com").await, "access_token");
    for eve_has_invoices in [false, true] {
        let (status, body) = app.get_with_token(&format!("/api/invoices/{id}"), &eve).await;
        assert_error(status, &body, 404, "not_found");
        let (status, body) = app
            .send(reqwest::Method::PATCH, &format!("/api/invoices/{id}"), &eve, Some(json!({ "number": "x" })))
            .await;
        assert_error(status, &body, 404, "not_found");
        let (status, body) =
            app.send(reqwest::Method::PUT, &format!("/api/invoices/{id}"), &eve, Some(json!({ "number": "x" }))).await;
        assert_error(status, &body, 404, "not_found");
        let (status, body) = app.send(reqwest::Method::DELETE, &format!("/api/invoices/{id}"), &eve, None).await;
        assert_error(status, &body, 404, "not_found");
        let (status, list) = app.get_with_token(&format!("/api/invoices?id={id}"), &eve).await;
        if eve_has_invoices {
            assert_eq!((status, &list["records"]), (200, &json!([])), "{list}");
        } else {
            assert_error(status, &list, 404, "not_found");
            let model = json!({ "name": "Invoice", "fields": [{ "name": "number", "type": "text" }] });
            assert_eq!(app.post_with_token("/api/v1/models", &eve, model).await.0, 201);
        }
    }
    let (status, still) = app.get_with_token(&format!("/api/invoices/{id}"), &ada).await;
    assert_eq!((status, &still["record"]["number"]), (200, &json!("ADA-1")));
    app.stop().await;
}

async fn records_over_grpc_with_structs(backend: Backend) {
    let app = spawn_app(backend).await;
    let access = with_invoices(&app, "ada@example.com").await;
    let mut entities = EntityServiceClient::new(channel(app.addr).await);
    let record: Struct = serde_json::from_value(json!({ "number": "G-1", "amount": 7.25, "paid": true })).unwrap();
    let created = entities
        .create_entity(with_token(CreateEntityRequest { model: "invoices".into(), record: Some(record) }, &access))
        .await
        .unwrap()
        .into_inner()
        .record
        .unwrap();
    let created = serde_json::to_value(&created).unwrap();
    assert_eq!((&created["number"], &created["amount"]), (&json!("G-1"), &json!("7.25")));
    let id = created["id"].as_str().unwrap().to_string();

    let listed = entities
        .list_entities(with_token(ListEntitiesRequest { model: "invoices".into(), ..Default::default() }, &access))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.records.len(), 1);
    let bad = entities
        .create_entity(with_token(CreateEntityRequest { model: "invoices".into(), record: None }, &access))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    let denied = entities.list_entities(ListEntitiesRequest { model: "invoices".into(), ..Default::default() }).await;
    assert_eq!(denied.unwrap_err().code(), Code::Unauthenticated);

    // grpc-web, raw HTTP/1.1.
    let request = GetEntityRequest { model: "invoices".into(), id: id.clone() };
    let call = crate::grpc::grpc_web(&app.http, app.url("/kiln.v1.EntityService/GetEntity"), &request);
    let response = call.bearer_auth(&access).send().await.unwrap();
    let (data, trailers) = crate::grpc::frames(&response.bytes().await.unwrap());
    let got = GetEntityResponse::decode(data[0].as_slice()).unwrap();
    assert_eq!(serde_json::to_value(got.record.unwrap()).unwrap()["id"], json!(id));
    assert!(trailers.contains("grpc-status:0"), "{trailers}");
    app.stop().await;
}

/// One record with a value of every field type, written over REST, read back over REST,
/// gRPC and grpc-web: every value is the same on all three, integers keep all 64 bits
/// (past 2^53 as strings), decimals travel as strings (PostgreSQL keeps their scale).
async fn every_field_type_reads_the_same_on_every_protocol(backend: Backend) {
    let app = spawn_app(backend).await;
    let access = token(&app.register("ada@example.com").await, "access_token");
    let model = json!({ "name": "Sample", "fields": [
        { "name": "text", "type": "text" },
        { "name": "long_text", "type": "long_text" },
        { "name": "small", "type": "integer" },
        { "name": "big", "type": "integer" },
        { "name": "negative", "type": "integer" },
        { "name": "lowest", "type": "integer" },
        { "name": "price", "type": "decimal" },
        { "name": "whole_price", "type": "decimal" },
        { "name": "flag", "type": "boolean" },
        { "name": "day", "type": "date" },
        { "name": "at", "type": "datetime" },
        { "name": "email", "type": "email" },
        { "name": "site", "type": "url" },
        { "name": "stage", "type": "enum", "enum_values": ["new", "done"] },
        { "name": "meta", "type": "json" },
        { "name": "ref", "type": "uuid" },
        { "name": "parent", "type": "relation", "relation": { "target": "owners" } }
    ]});
    let owner = json!({ "name": "Owner", "fields": [{ "name": "name", "type": "text" }] });
    assert_eq!(app.post_with_token("/api/v1/models", &access, owner).await.0, 201);
    let (status, body) = app.post_with_token("/api/v1/models", &access, model).await;
    assert_eq!(status, 201, "{body}");
    let (status, first) = app.post_with_token("/api/owners", &access, json!({ "name": "Ada" })).await;
    assert_eq!(status, 201, "{first}");
    let parent = first["record"]["id"].clone();
    let reference = uuid::Uuid::now_v7().to_string();
    let sent = json!({
        "text": "Ünïcode ✓", "long_text": "line one\nline two", "small": 42,
        "big": "9223372036854775807", "negative": "-9007199254740993", "lowest": "-9223372036854775808",
        "price": "10.50", "whole_price": 10, "flag": true, "day": "2026-01-31",
        "at": "2026-01-31T09:30:00.123456Z", "email": "ada@example.com", "site": "https://example.com/a?b=c",
        "stage": "done", "meta": { "list": [1, 2.5, "x", null], "nested": { "ok": true } },
        "ref": reference, "parent": parent
    });
    let (status, created) = app.post_with_token("/api/samples", &access, sent).await;
    assert_eq!(status, 201, "{created}");
    let id = created["record"]["id"].as_str().unwrap().to_string();
    // PostgreSQL keeps a decimal as written; SQLite holds a double, in its shortest form.
    let price = match backend {
        Backend::Postgres | Backend::Mesh => "10.50",
        Backend::Sqlite => "10.5",
    };
    let expected = json!({
        "text": "Ünïcode ✓", "long_text": "line one\nline two", "small": 42,
        "big": "9223372036854775807", "negative": "-9007199254740993", "lowest": "-9223372036854775808",
        "price": price, "whole_price": "10", "flag": true, "day": "2026-01-31",
        "at": "2026-01-31T09:30:00.123456Z", "email": "ada@example.com", "site": "https://example.com/a?b=c",
        "stage": "done", "meta": { "list": [1, 2.5, "x", null], "nested": { "ok": true } },
        "ref": reference, "parent": parent
    });

    let (status, rest) = app.get_with_token(&format!("/api/samples/{id}"), &access).await;
    assert_eq!(status, 200, "{rest}");
    let rest = rest["record"].clone();

    let mut entities = EntityServiceClient::new(channel(app.addr).await);
    let request = GetEntityRequest { model: "samples".into(), id: id.clone() };
    let grpc = entities.get_entity(with_token(request.clone(), &access)).await.unwrap().into_inner().record.unwrap();

    let call = crate::grpc::grpc_web(&app.http, app.url("/kiln.v1.EntityService/GetEntity"), &request);
    let response = call.bearer_auth(&access).send().await.unwrap();
    let (data, trailers) = crate::grpc::frames(&response.bytes().await.unwrap());
    assert!(trailers.contains("grpc-status:0"), "{trailers}");
    let grpc_web = GetEntityResponse::decode(data[0].as_slice()).unwrap().record.unwrap();

    for (name, want) in expected.as_object().unwrap() {
        assert_eq!(&rest[name], want, "REST {name}");
        for (protocol, record) in [("gRPC", &grpc), ("grpc-web", &grpc_web)] {
            let got = record.fields.get(name).unwrap_or_else(|| panic!("{protocol} has no {name}"));
            assert!(same_value(got, want), "{protocol} {name}: {got:?}, REST {want}");
        }
    }
    app.stop().await;
}

/// Whether a `Struct` value is the JSON value: numbers by value, the rest by form.
fn same_value(value: &kiln_proto::wkt::Value, json: &Value) -> bool {
    use kiln_proto::wkt::value::Kind;
    match (&value.kind, json) {
        (None | Some(Kind::NullValue(_)), Value::Null) => true,
        (Some(Kind::BoolValue(a)), Value::Bool(b)) => a == b,
        (Some(Kind::NumberValue(a)), Value::Number(b)) => Some(*a) == b.as_f64(),
        (Some(Kind::StringValue(a)), Value::String(b)) => a == b,
        (Some(Kind::ListValue(a)), Value::Array(b)) => {
            a.values.len() == b.len() && a.values.iter().zip(b).all(|(a, b)| same_value(a, b))
        }
        (Some(Kind::StructValue(a)), Value::Object(b)) => {
            a.fields.len() == b.len() && b.iter().all(|(k, v)| a.fields.get(k).is_some_and(|a| same_value(a, v)))
        }
        _ => false,
    }
}

/// The next change a watch sees, within a deadline.
async fn next_change(changes: &mut tonic::Streaming<EntityChange>) -> EntityChange {
    let next = tokio::time::timeout(std::time::Duration::from_secs(10), changes.message()).await;
    next.expect("a change within 10 s").expect("the watch goes on").expect("the watch goes on")
}

fn text(record: &Option<Struct>, name: &str) -> Option<String> {
    match record.as_ref()?.fields.get(name)?.kind.as_ref()? {
        kiln_proto::wkt::value::Kind::StringValue(s) => Some(s.clone()),
        _ => None,
    }
}

async fn watching_sees_every_committed_change_of_the_model_only(backend: Backend) {
    let app = spawn_app(backend).await;
    let access = with_invoices(&app, "ada@example.com").await;
    let customer = json!({ "name": "Customer", "fields": [{ "name": "name", "type": "text" }] });
    assert_eq!(app.post_with_token("/api/v1/models", &access, customer).await.0, 201);
    let mut entities = EntityServiceClient::new(channel(app.addr).await);
    let watch = |model: &str, token: &str| with_token(WatchEntitiesRequest { model: model.into() }, token);
    let mut invoices = entities.watch_entities(watch("invoices", &access)).await.unwrap().into_inner();
    // A system kind's records (app-svc's) are watched the same way.
    let mut applications = entities.watch_entities(watch("applications", &access)).await.unwrap().into_inner();

    // Another model's change and a refused write are not seen; the next change is.
    assert_eq!(app.post_with_token("/api/v1/customers", &access, json!({ "name": "Ada" })).await.0, 201);
    let (status, _) = app.post_with_token("/api/v1/invoices", &access, json!({ "amount": "-1" })).await;
    assert_eq!(status, 400);
    let (status, made) = app.post_with_token("/api/v1/invoices", &access, json!({ "number": "INV-1" })).await;
    assert_eq!(status, 201, "{made}");
    let id = made["record"]["id"].as_str().unwrap().to_string();
    let created = next_change(&mut invoices).await;
    assert_eq!((created.kind.as_str(), created.id.as_str()), ("created", id.as_str()));
    assert_eq!(text(&created.record, "number").as_deref(), Some("INV-1"));

    // Written over gRPC this time.
    let mut patch = Struct::default();
    patch.fields.insert("number".into(), kiln_proto::wkt::Value::from("INV-2".to_string()));
    let update = kiln_proto::v1::UpdateEntityRequest {
        model: "invoices".into(),
        id: id.clone(),
        record: Some(patch),
        partial: true,
    };
    entities.update_entity(with_token(update, &access)).await.unwrap();
    let updated = next_change(&mut invoices).await;
    assert_eq!((updated.kind.as_str(), text(&updated.record, "number").as_deref()), ("updated", Some("INV-2")));

    let (status, _) = app.send(reqwest::Method::DELETE, &format!("/api/v1/invoices/{id}"), &access, None).await;
    assert_eq!(status, 204);
    let deleted = next_change(&mut invoices).await;
    assert_eq!((deleted.kind.as_str(), deleted.id.as_str(), deleted.record), ("deleted", id.as_str(), None));

    let application = json!({ "name": "Billing" });
    let (status, made) = app.post_with_token("/api/v1/applications", &access, application).await;
    assert_eq!(status, 201, "{made}");
    let created = next_change(&mut applications).await;
    assert_eq!(created.kind, "created");
    assert_eq!(text(&created.record, "name").as_deref(), Some("Billing"));

    // Another workspace's watch sees none of Ada's changes; its own model is its own.
    let bob = with_invoices(&app, "bob@example.com").await;
    let mut bobs = entities.watch_entities(watch("invoices", &bob)).await.unwrap().into_inner();
    assert_eq!(app.post_with_token("/api/v1/invoices", &access, json!({ "number": "ADA-9" })).await.0, 201);
    assert_eq!(app.post_with_token("/api/v1/invoices", &bob, json!({ "number": "BOB-1" })).await.0, 201);
    let seen = next_change(&mut bobs).await;
    assert_eq!(text(&seen.record, "number").as_deref(), Some("BOB-1"), "Bob saw another workspace's change");
    let seen = next_change(&mut invoices).await;
    assert_eq!(text(&seen.record, "number").as_deref(), Some("ADA-9"), "Ada saw another workspace's change");

    // Wrong inputs: a model nobody has, no token.
    let missing = entities.watch_entities(watch("nothing_here", &access)).await.unwrap_err();
    assert_eq!(missing.code(), Code::NotFound, "{missing:?}");
    let anonymous = entities.watch_entities(WatchEntitiesRequest { model: "invoices".into() }).await.unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated, "{anonymous:?}");

    // Stopping the server ends the watch rather than holding its drain.
    let stopping = tokio::spawn(app.stop());
    let ended = tokio::time::timeout(std::time::Duration::from_secs(10), invoices.message()).await;
    assert!(matches!(ended, Ok(Ok(None)) | Ok(Err(_))), "the watch still runs: {ended:?}");
    stopping.await.unwrap();
}
