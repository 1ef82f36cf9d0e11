//! WebAssembly instantiate-and-call: what each invocation of a wasm function costs inside
//! Trellis, from a fresh `Store` to the answer.
//!
//! - `module/noop`: a WASI preview-1 command whose `_start` returns at once (store, WASI context
//!   with stdin/stdout/stderr pipes and the environment, instantiation, the call).
//! - `module/echo`: the `echo.wat` fixture, which parses and rewrites a small event JSON.
//! - `component/http`: the `http.wat` fixture, a `wasi:http/incoming-handler` component that
//!   answers 202: store, WASI and `wasi:http` contexts, the request and response resources,
//!   instantiation and the handler's call on the calling task (as the data plane runs it).
//!
//! The fixtures are compiled once, as a function version is. `cargo bench -p trellis-functions
//! --bench wasm`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use trellis_functions::component::{self, HttpCall, HttpEnded};
use trellis_functions::wasm::{self, Call, Ended};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/wasm");

fn modules(c: &mut Criterion) {
    let noop = wat::parse_str("(module (memory (export \"memory\") 1) (func (export \"_start\")))")
        .expect("noop module");
    let echo = wat::parse_file(format!("{FIXTURES}/echo.wat")).expect("echo.wat");
    let mut group = c.benchmark_group("module");
    for (name, bytes, payload) in [
        ("noop", noop, &b"{}"[..]),
        ("echo", echo, &br#"{"name":"x","n":[1,2]}"#[..]),
    ] {
        let module = wasm::compile(&bytes, name).expect("compiles");
        let payload = Bytes::from_static(payload);
        group.bench_function(name, |b| {
            b.iter(|| {
                let run = module.run(Call {
                    payload: payload.clone(),
                    memory_mb: 128,
                    timeout: Duration::from_secs(3),
                    variables: &[],
                    handler: "function.wasm",
                    max_response: 6 << 20,
                });
                assert!(matches!(run.ended, Ended::Ok(_)));
                black_box(run)
            })
        });
    }
    group.finish();
}

fn components(c: &mut Criterion) {
    let text = std::fs::read_to_string(format!("{FIXTURES}/http.wat")).expect("http.wat");
    let bytes = wat::parse_str(text).expect("http.wat parses");
    let component = Arc::new(component::compile(&bytes, "http.wasm").expect("compiles"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("component");
    group.bench_function("http", |b| {
        b.iter(|| {
            let request = http::Request::builder()
                .uri("/")
                .header("host", "localhost")
                .body(trellis_core::target::whole(Bytes::new()))
                .unwrap();
            let run = rt.block_on(component.handle(HttpCall {
                request,
                memory_mb: 128,
                timeout: Duration::from_secs(3),
                variables: &[],
                max_response: 6 << 20,
            }));
            assert!(matches!(run.ended, HttpEnded::Response(_)));
            black_box(run)
        })
    });
    group.finish();
}

criterion_group!(benches, modules, components);
criterion_main!(benches);
