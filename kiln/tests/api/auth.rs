//! Identity over REST, on both databases: register, login, refresh rotation and reuse
//! detection, logout, profile, and what is stored.

use kiln_common::{db::Id, with_db};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::harness::{Backend, PASSWORD, assert_error, spawn_app, token};

crate::on_every_backend!(
    register_creates_user_and_workspace_and_signs_in,
    register_refuses_duplicates_and_bad_input_with_field_details,
    login_answers_the_same_for_unknown_email_and_wrong_password,
    refresh_rotates_and_reuse_revokes_the_family,
    logout_ends_the_session_everywhere,
    profile_reads_and_updates_with_validation,
    secrets_are_stored_hashed,
);

async fn register_creates_user_and_workspace_and_signs_in(backend: Backend) {
    let app = spawn_app(backend).await;
    let body = app.register("  Ada.Lovelace@Example.COM ").await;
    let user = &body["user"];
    assert_eq!(user["email"], "ada.lovelace@example.com");
    assert_eq!(user["display_name"], "ada.lovelace");
    assert_eq!(user["settings"]["theme"], "system");
    assert_eq!(body["tokens"]["token_type"], "Bearer");
    assert_eq!(body["tokens"]["expires_in"], "900");

    let workspace_id: uuid::Uuid = user["workspace_id"].as_str().unwrap().parse().unwrap();
    let user_id: uuid::Uuid = user["id"].as_str().unwrap().parse().unwrap();
    let owner: Option<Id> = with_db!(&app.db, pool => {
        sqlx::query_scalar("SELECT owner_id FROM workspaces WHERE id = $1").bind(Id(workspace_id)).fetch_optional(pool).await.unwrap()
    });
    assert_eq!(owner, Some(Id(user_id)), "the workspace exists and belongs to the new user");

    let (status, profile) = app.get_with_token("/api/v1/auth/profile", &token(&body, "access_token")).await;
    assert_eq!(status, 200, "{profile}");
    assert_eq!(profile["user"]["id"], user["id"]);
    app.stop().await;
}

async fn register_refuses_duplicates_and_bad_input_with_field_details(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register("grace@example.com").await;

    let (status, body) =
        app.post("/api/auth/register", json!({ "email": "GRACE@example.com", "password": PASSWORD })).await;
    let error = assert_error(status, &body, 409, "already_exists");
    assert_eq!(error["details"][0]["field"], "email");

    let (status, body) =
        app.post("/api/v1/auth/register", json!({ "email": "not-an-email", "password": "short" })).await;
    let error = assert_error(status, &body, 400, "invalid_argument");
    let fields: Vec<&str> = error["details"].as_array().unwrap().iter().map(|d| d["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["email", "password"]);
    let rules = error["details"][1]["description"].as_str().unwrap();
    assert!(rules.contains("10 to 128 characters"), "the password rules are stated: {rules}");

    for password in ["onlyletterspassword", "12345678901234", "grace2@example.com"] {
        let (status, body) =
            app.post("/api/v1/auth/register", json!({ "email": "grace2@example.com", "password": password })).await;
        let error = assert_error(status, &body, 400, "invalid_argument");
        assert_eq!(error["details"][0]["field"], "password", "{password}");
    }

    let (status, body) = app
        .post(
            "/api/v1/auth/register",
            json!({ "email": "x@example.com", "password": PASSWORD, "display_name": "a\u{7}b" }),
        )
        .await;
    let error = assert_error(status, &body, 400, "invalid_argument");
    assert_eq!(error["details"][0]["field"], "display_name");
    app.stop().await;
}

async fn login_answers_the_same_for_unknown_email_and_wrong_password(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register("ada@example.com").await;

    let (status, body) =
        app.post("/api/v1/auth/login", json!({ "email": "ADA@example.com", "password": PASSWORD })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["email"], "ada@example.com");
    assert!(token(&body, "refresh_token").starts_with("krt_"));

    let (s1, wrong_password) =
        app.post("/api/v1/auth/login", json!({ "email": "ada@example.com", "password": "wrong horse 9" })).await;
    let (s2, unknown_email) =
        app.post("/api/v1/auth/login", json!({ "email": "bob@example.com", "password": PASSWORD })).await;
    let (s3, malformed) = app.post("/api/v1/auth/login", json!({ "email": "bob", "password": PASSWORD })).await;
    assert_error(s1, &wrong_password, 401, "unauthenticated");
    assert_eq!(wrong_password, unknown_email, "the answer must not tell whether the account exists");
    assert_eq!((s1, s2, s3), (401, 401, 401));
    assert_eq!(unknown_email, malformed);

    let outcomes: Vec<String> = with_db!(&app.db, pool => {
        sqlx::query_scalar("SELECT outcome FROM audit_log WHERE action = 'login' ORDER BY at").fetch_all(pool).await.unwrap()
    });
    assert_eq!(outcomes, ["success", "bad_password", "unknown_email", "unknown_email"]);
    app.stop().await;
}

async fn refresh_rotates_and_reuse_revokes_the_family(backend: Backend) {
    let app = spawn_app(backend).await;
    let registered = app.register("ada@example.com").await;
    let first = token(&registered, "refresh_token");

    let (status, rotated) = app.post("/api/v1/auth/refresh", json!({ "refresh_token": first })).await;
    assert_eq!(status, 200, "{rotated}");
    let second = token(&rotated, "refresh_token");
    let access = token(&rotated, "access_token");
    assert_ne!(first, second, "refresh tokens rotate on every use");
    assert_eq!(app.get_with_token("/api/v1/auth/profile", &access).await.0, 200);

    // A second sign-in is a separate session and must survive the reuse below.
    let (_, other_session) =
        app.post("/api/v1/auth/login", json!({ "email": "ada@example.com", "password": PASSWORD })).await;

    let (status, body) = app.post("/api/v1/auth/refresh", json!({ "refresh_token": first })).await;
    let error = assert_error(status, &body, 401, "unauthenticated");
    assert!(error["message"].as_str().unwrap().contains("already used"), "{body}");

    let (status, body) = app.post("/api/v1/auth/refresh", json!({ "refresh_token": second })).await;
    assert_error(status, &body, 401, "unauthenticated");
    let (status, body) = app.get_with_token("/api/v1/auth/profile", &access).await;
    assert_error(status, &body, 401, "unauthenticated");

    let (status, _) =
        app.post("/api/v1/auth/refresh", json!({ "refresh_token": token(&other_session, "refresh_token") })).await;
    assert_eq!(status, 200, "other sessions are untouched");

    let (status, body) = app.post("/api/v1/auth/refresh", json!({ "refresh_token": "krt_made_up" })).await;
    assert_error(status, &body, 401, "unauthenticated");
    let (status, body) = app.post("/api/v1/auth/refresh", json!({ "refresh_token": "" })).await;
    assert_error(status, &body, 400, "invalid_argument");
    app.stop().await;
}

async fn logout_ends_the_session_everywhere(backend: Backend) {
    let app = spawn_app(backend).await;
    let registered = app.register("ada@example.com").await;
    let access = token(&registered, "access_token");
    let refresh = token(&registered, "refresh_token");

    let response = app.http.post(app.url("/api/v1/auth/logout")).send().await.unwrap();
    assert_eq!(response.status(), 401, "logout needs the access token");

    let response = app.http.post(app.url("/api/v1/auth/logout")).bearer_auth(&access).send().await.unwrap();
    assert_eq!(response.status(), 204);
    let (status, body) = app.post("/api/v1/auth/refresh", json!({ "refresh_token": refresh })).await;
    let error = assert_error(status, &body, 401, "unauthenticated");
    assert!(error["message"].as_str().unwrap().contains("revoked"), "{body}");
    let (status, body) = app.get_with_token("/api/v1/auth/profile", &access).await;
    assert_error(status, &body, 401, "unauthenticated");

    // Logging out a session by its refresh token, from another session of the same user.
    let (_, a) = app.post("/api/v1/auth/login", json!({ "email": "ada@example.com", "password": PASSWORD })).await;
    let (_, b) = app.post("/api/v1/auth/login", json!({ "email": "ada@example.com", "password": PASSWORD })).await;
    let response = app
        .http
        .post(app.url("/api/v1/auth/logout"))
        .bearer_auth(token(&a, "access_token"))
        .json(&json!({ "refresh_token": token(&b, "refresh_token") }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert_eq!(app.get_with_token("/api/v1/auth/profile", &token(&b, "access_token")).await.0, 401);
    assert_eq!(app.get_with_token("/api/v1/auth/profile", &token(&a, "access_token")).await.0, 200);

    // Someone else's refresh token cannot be revoked.
    let eve = app.register("eve@example.com").await;
    let response = app
        .http
        .post(app.url("/api/v1/auth/logout"))
        .bearer_auth(token(&eve, "access_token"))
        .json(&json!({ "refresh_token": token(&a, "refresh_token") }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(app.get_with_token("/api/v1/auth/profile", &token(&a, "access_token")).await.0, 200);

    // Log out everywhere: every session of the account ends, no one else's.
    let (_, c) = app.post("/api/v1/auth/login", json!({ "email": "ada@example.com", "password": PASSWORD })).await;
    let response = app
        .http
        .post(app.url("/api/v1/auth/logout"))
        .bearer_auth(token(&c, "access_token"))
        .json(&json!({ "everywhere": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    for session in [&a, &c] {
        assert_eq!(app.get_with_token("/api/v1/auth/profile", &token(session, "access_token")).await.0, 401);
        let (status, _) =
            app.post("/api/v1/auth/refresh", json!({ "refresh_token": token(session, "refresh_token") })).await;
        assert_eq!(status, 401);
    }
    assert_eq!(app.get_with_token("/api/v1/auth/profile", &token(&eve, "access_token")).await.0, 200);
    app.stop().await;
}

async fn profile_reads_and_updates_with_validation(backend: Backend) {
    let app = spawn_app(backend).await;
    let access = token(&app.register("ada@example.com").await, "access_token");

    let response = app
        .http
        .put(app.url("/api/auth/profile"))
        .bearer_auth(&access)
        .json(&json!({ "display_name": "Ada L.", "theme": "dark", "locale": "en-GB", "notifications": false }))
        .send()
        .await
        .unwrap();
    let (status, body) = crate::harness::read(response).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["display_name"], "Ada L.");
    assert_eq!(body["user"]["settings"], json!({ "theme": "dark", "locale": "en-GB", "notifications": false }));

    // Unset fields keep their value.
    let response = app
        .http
        .put(app.url("/api/auth/profile"))
        .bearer_auth(&access)
        .json(&json!({ "theme": "light" }))
        .send()
        .await
        .unwrap();
    let (_, body) = crate::harness::read(response).await;
    assert_eq!(body["user"]["display_name"], "Ada L.");
    assert_eq!(body["user"]["settings"]["theme"], "light");

    let response = app
        .http
        .put(app.url("/api/auth/profile"))
        .bearer_auth(&access)
        .json(&json!({ "theme": "neon", "locale": "english please", "display_name": "" }))
        .send()
        .await
        .unwrap();
    let (status, body) = crate::harness::read(response).await;
    let error = assert_error(status, &body, 400, "invalid_argument");
    assert_eq!(error["details"].as_array().unwrap().len(), 3, "{body}");

    let (status, body) = app.get_with_token("/api/auth/profile", "not-a-token").await;
    assert_error(status, &body, 401, "unauthenticated");
    let response = app.http.get(app.url("/api/auth/profile")).send().await.unwrap();
    assert_eq!(response.status(), 401);
    app.stop().await;
}

async fn secrets_are_stored_hashed(backend: Backend) {
    let app = spawn_app(backend).await;
    let registered = app.register("ada@example.com").await;
    let refresh = token(&registered, "refresh_token");

    let hashes: Vec<String> = with_db!(&app.db, pool => {
        sqlx::query_scalar("SELECT token_hash FROM refresh_tokens").fetch_all(pool).await.unwrap()
    });
    assert_eq!(hashes, [hex::encode(Sha256::digest(refresh.as_bytes()))]);

    let password_hash: String = with_db!(&app.db, pool => {
        sqlx::query_scalar("SELECT password_hash FROM users").fetch_one(pool).await.unwrap()
    });
    assert!(password_hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{password_hash}");
    assert!(!password_hash.contains(PASSWORD));
    app.stop().await;
}
