//! Kiln's web UI: a Sycamore app in the browser that talks to the gateway over grpc-web
//! only. It owns no data: navigation and the record views are built from `ListModels`,
//! so a model created anywhere gets its tab, list, forms and detail pages without a
//! deploy. `nav`, `fields`, `reorder` and `workflow` hold the logic the views are drawn from (tested
//! natively); `api` the session and the calls; `pages` the screens.

pub mod api;
#[cfg(target_arch = "wasm32")]
mod app;
pub mod fields;
pub mod nav;
#[cfg(target_arch = "wasm32")]
mod pages;
pub mod reorder;
#[cfg(target_arch = "wasm32")]
mod widgets;
pub mod workflow;

/// Starts the app in `#app`.
#[cfg(target_arch = "wasm32")]
#[wasm_bindgen::prelude::wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook::set_once();
    app::mount();
}
