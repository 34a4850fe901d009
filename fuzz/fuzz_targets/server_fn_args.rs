//! Server-function arguments as the server decodes them: every registered server function, by its
//! path, through leptos_axum's own handler, with a fuzzed body sent as a form or as JSON. There is
//! no database and no session: arguments are decoded before a function runs, and a function that
//! does run finds no `Core` and answers with an error. Any answer is fine; a panic is a finding.
#![no_main]
// Harness set-up that fails is a crash the fuzzer reports, with its message.
#![allow(clippy::expect_used)]

use axum::{
    body::Body,
    http::{Request, header},
};
use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;

/// leptos_axum's handler sets up its task executor (tokio) itself.
static RUNTIME: LazyLock<tokio::runtime::Runtime> =
    LazyLock::new(|| tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime"));

/// Every server function the app registers, in a stable order.
static PATHS: LazyLock<Vec<String>> = LazyLock::new(|| {
    let _ = app::App; // links the app, whose server functions register themselves
    let mut paths: Vec<String> = leptos::server_fn::axum::server_fn_paths().map(|(p, _)| p.to_owned()).collect();
    paths.sort();
    assert!(paths.len() > 40, "server functions are registered: {paths:?}");
    paths
});

fuzz_target!(|data: &[u8]| {
    let [which, kind, body @ ..] = data else { return };
    let path = &PATHS[usize::from(*which) % PATHS.len()];
    let content_type = match kind % 3 {
        0 => "application/x-www-form-urlencoded",
        1 => "application/json",
        _ => "text/plain",
    };
    let Ok(request) = Request::post(path.as_str())
        .header(header::CONTENT_TYPE, content_type)
        .header(header::ACCEPT, "application/json")
        .body(Body::from(body.to_vec()))
    else {
        return;
    };
    let response = RUNTIME.block_on(leptos_axum::handle_server_fns(request));
    let _ = axum::response::IntoResponse::into_response(response).status();
});
