//! Builds the web UI (`ui/`, package `kiln-ui`) for wasm32 with a cargo of its own, turns
//! the module into a browser bundle with the wasm-bindgen library (the same version as the
//! `wasm-bindgen` crate, so there is no CLI to install), names each file by its content,
//! and writes `assets.rs`, which embeds every file and its gzip.
//!
//! The inner build has a target directory of its own (`<target>/ui-wasm`): the outer build
//! holds the lock of the shared one. It is always a release build, optimised for size: a
//! debug module is several times larger and slower, and it is built once per change of
//! `ui/` or `proto/`.

use std::{
    env, fs,
    io::Write as _,
    path::{Path, PathBuf},
    process::Command,
};

use sha2::{Digest, Sha256};

const TARGET: &str = "wasm32-unknown-unknown";

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let ui = manifest_dir.parent().expect("ui/assets is inside ui/");
    let workspace = ui.parent().expect("ui/ is inside the workspace");
    for watched in ["ui/src", "ui/Cargo.toml", "ui/static", "proto/kiln", "proto/src", "proto/build.rs", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", workspace.join(watched).display());
    }
    println!("cargo:rerun-if-env-changed=KILN_UI_TARGET_DIR");
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let target_dir =
        env::var_os("KILN_UI_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| shared_target(&out).join("ui-wasm"));

    ensure_wasm_target();
    build_module(workspace, &target_dir);
    let module = target_dir.join(TARGET).join("release").join("kiln_ui.wasm");
    let bindgen = out.join("bindgen");
    let _ = fs::remove_dir_all(&bindgen);
    wasm_bindgen_cli_support::Bindgen::new()
        .input_path(&module)
        .web(true)
        .and_then(|b| b.typescript(false).remove_name_section(true).remove_producers_section(true).generate(&bindgen))
        .unwrap_or_else(|error| {
            panic!("wasm-bindgen could not make the UI's bundle from {}: {error:#}", module.display())
        });

    let script = named("js", read(&bindgen.join("kiln_ui.js")));
    let wasm = named("wasm", read(&bindgen.join("kiln_ui_bg.wasm")));
    let style = named("css", read(&ui.join("static/style.css")));
    let page = read(&ui.join("static/index.html"));
    let page = String::from_utf8(page).expect("index.html is UTF-8");
    let page = page.replace("{script}", &script.0).replace("{wasm}", &wasm.0).replace("{style}", &style.0);
    let files = [
        ("index.html".to_string(), page.into_bytes(), "text/html; charset=utf-8", false),
        (script.0, script.1, "text/javascript; charset=utf-8", true),
        (wasm.0, wasm.1, "application/wasm", true),
        (style.0, style.1, "text/css; charset=utf-8", true),
    ];
    write_assets(&out, &files);
}

/// The shared target directory, from this build script's `OUT_DIR`
/// (`<target>/<profile>/build/<crate>-<hash>/out`).
fn shared_target(out: &Path) -> PathBuf {
    out.ancestors().nth(4).map(Path::to_path_buf).unwrap_or_else(|| out.join("target"))
}

/// Adds the wasm32 target to the toolchain if it is missing, so that the README's one
/// command works on a fresh machine.
fn ensure_wasm_target() {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let libdir = Command::new(&rustc).args(["--print", "target-libdir", "--target", TARGET]).output();
    let installed = libdir.ok().filter(|o| o.status.success()).is_some_and(|o| {
        let dir = PathBuf::from(String::from_utf8_lossy(&o.stdout).trim());
        fs::read_dir(dir).is_ok_and(|mut entries| {
            entries.any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().starts_with("libcore")))
        })
    });
    if installed {
        return;
    }
    println!("cargo:warning=adding the {TARGET} target to the Rust toolchain (the web UI is built for it)");
    let added = Command::new("rustup").args(["target", "add", TARGET]).status();
    if !added.is_ok_and(|status| status.success()) {
        panic!("the web UI needs the {TARGET} target: run `rustup target add {TARGET}`");
    }
}

/// `cargo build -p kiln-ui --target wasm32-unknown-unknown --release`, with none of the
/// settings cargo gives this build script (they are the outer build's).
fn build_module(workspace: &Path, target_dir: &Path) {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .current_dir(workspace)
        .args(["build", "--package", "kiln-ui", "--lib", "--release", "--target", TARGET, "--target-dir"])
        .arg(target_dir);
    for (key, _) in env::vars_os() {
        let key = key.to_string_lossy();
        let outer = key.starts_with("CARGO_PKG_")
            || key.starts_with("CARGO_CFG_")
            || key.starts_with("CARGO_FEATURE_")
            || key.starts_with("CARGO_PROFILE_")
            || key.starts_with("DEP_")
            || [
                "CARGO_ENCODED_RUSTFLAGS",
                "CARGO_TARGET_DIR",
                "CARGO_BUILD_TARGET",
                "CARGO_BUILD_TARGET_DIR",
                "CARGO_MANIFEST_DIR",
                "CARGO_MANIFEST_PATH",
                "CARGO_MANIFEST_LINKS",
                "CARGO_PRIMARY_PACKAGE",
                "CARGO_CRATE_NAME",
                "RUSTFLAGS",
                "TARGET",
                "HOST",
                "OUT_DIR",
                "OPT_LEVEL",
                "PROFILE",
                "DEBUG",
                "NUM_JOBS",
            ]
            .contains(&key.as_ref());
        if outer {
            build.env_remove(key.as_ref());
        }
    }
    // Small over fast: the module is downloaded by every browser.
    build
        .env("CARGO_PROFILE_RELEASE_OPT_LEVEL", "z")
        .env("CARGO_PROFILE_RELEASE_LTO", "true")
        .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "1")
        .env("CARGO_PROFILE_RELEASE_DEBUG", "false")
        .env("CARGO_PROFILE_RELEASE_PANIC", "abort");
    let status = build.status().unwrap_or_else(|error| panic!("could not start cargo to build the web UI: {error}"));
    if !status.success() {
        panic!("building the web UI (`ui/`) for {TARGET} failed; its errors are above");
    }
}

fn read(path: &Path) -> Vec<u8> {
    fs::read(path).unwrap_or_else(|error| panic!("reading {}: {error}", path.display()))
}

/// `kiln-ui-<first 16 hex digits of the content's SHA-256>.<extension>`, and the content.
fn named(extension: &str, body: Vec<u8>) -> (String, Vec<u8>) {
    let digest = hex::encode(Sha256::digest(&body));
    (format!("kiln-ui-{}.{extension}", &digest[..16]), body)
}

/// Writes each file and its gzip next to `assets.rs`, which lists them as `ASSETS`.
fn write_assets(out: &Path, files: &[(String, Vec<u8>, &str, bool)]) {
    let dir = out.join("assets");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("making the assets directory");
    let mut listing = String::from("static ASSETS: &[Asset] = &[\n");
    for (name, body, content_type, immutable) in files {
        fs::write(dir.join(name), body).expect("writing an asset");
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gzip.write_all(body).and_then(|()| gzip.flush()).expect("gzipping an asset");
        let gzip = gzip.finish().expect("gzipping an asset");
        fs::write(dir.join(format!("{name}.gz")), gzip).expect("writing an asset");
        let path = |file: &str| format!("{:?}", dir.join(file).display().to_string());
        listing.push_str(&format!(
            "    Asset {{ path: {name:?}, content_type: {content_type:?}, body: include_bytes!({}), gzip: include_bytes!({}), immutable: {immutable} }},\n",
            path(name),
            path(&format!("{name}.gz")),
        ));
    }
    listing.push_str("];\n");
    fs::write(out.join("assets.rs"), listing).expect("writing assets.rs");
}
