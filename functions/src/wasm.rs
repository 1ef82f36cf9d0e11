//! WebAssembly functions: WASI preview-1 command modules run in-process by wasmtime instead of
//! a worker process. The event JSON is the module's stdin, its stdout is the answer, its stderr
//! the function's log. A `.wasm` that is a component rather than a module is a `wasi:http`
//! handler instead, run by [`crate::component`] on the same engine.
//!
//! One [`Engine`] serves the whole process (pooling allocator, epoch interruption driven by a
//! ticker thread); each function version compiles its module once into an [`InstancePre`]
//! (cached by file, so publishing a version or restarting a pool does not recompile); every
//! invocation gets a fresh [`Store`] whose memory is capped at the function's `MemorySize` and
//! whose epoch deadline is the function's timeout. The guest sees no filesystem, no network and
//! no environment beyond the function's own variables.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, InstancePre, Linker, Module,
    PoolingAllocationConfig, ResourceLimiter, Store, Trap,
};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::{MemoryInputPipe, MemoryOutputPipe};
use wasmtime_wasi::{I32Exit, WasiCtxBuilder};

use crate::component::{self, HttpComponent};

/// How often the epoch advances: the granularity of timeouts.
pub(crate) const TICK: Duration = Duration::from_millis(5);
/// What a 32-bit linear memory can address at most.
pub(crate) const MAX_WASM32_MEMORY: u64 = 4 << 30;
/// How much stderr one invocation keeps.
const STDERR_CAPACITY: usize = 1 << 20;

/// Whether a handler names a WebAssembly module rather than a `bootstrap` executable.
pub fn is_wasm_handler(handler: &str) -> bool {
    handler.ends_with(".wasm")
}

/// A module compiled and linked against WASI, ready to instantiate.
pub struct WasmModule {
    pre: InstancePre<State>,
}

/// What a `.wasm` handler holds: a WASI preview-1 command module (event JSON on stdin) or a
/// component exporting `wasi:http/incoming-handler` (see [`crate::component`]).
pub enum Wasm {
    Module(WasmModule),
    Component(Arc<HttpComponent>),
}

struct State {
    wasi: WasiP1Ctx,
    limits: MemoryCap,
}

/// Caps linear memory at the function's `MemorySize`. A growth past it fails (`memory.grow`
/// returns -1, as the spec wants, so a guest that checks `malloc` may recover) and is remembered,
/// so a guest that then dies is reported as out of memory.
pub(crate) struct MemoryCap {
    max_bytes: usize,
    pub(crate) denied: bool,
    pub(crate) peak: usize,
}

impl MemoryCap {
    pub(crate) fn new(max_bytes: usize) -> Self {
        Self {
            max_bytes,
            denied: false,
            peak: 0,
        }
    }
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_bytes {
            self.denied = true;
            return Ok(false);
        }
        self.peak = self.peak.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

/// What one invocation needs beyond the module.
pub struct Call<'a> {
    pub payload: Bytes,
    pub memory_mb: u64,
    pub timeout: Duration,
    pub variables: &'a [(String, String)],
    pub handler: &'a str,
    pub max_response: usize,
}

/// How a run ended, before it is turned into the Lambda answer.
pub enum Ended {
    /// `_start` returned or the guest called `proc_exit(0)`: stdout is the answer.
    Ok(Bytes),
    /// A non-zero `proc_exit`.
    Exit(i32),
    /// A trap (or a host error): the message.
    Trap(String),
    /// Memory growth was denied and the guest then died.
    OutOfMemory(String),
    TimedOut,
    TooLarge(usize),
}

/// The result of [`WasmModule::run`].
pub struct Run {
    pub ended: Ended,
    pub stderr: Bytes,
    /// Creating the store and instantiating the module: the cold start.
    pub instantiate: Duration,
    /// Peak linear memory, in bytes.
    pub memory_used: usize,
}

/// A module file as it was when compiled: its path, modification time and length.
type FileKey = (PathBuf, Option<SystemTime>, u64);

/// The process's engine and WASI linker.
struct Host {
    engine: Engine,
    linker: Linker<State>,
    modules: Mutex<HashMap<FileKey, Arc<Wasm>>>,
}

/// The process's one engine, shared by modules and components.
pub(crate) fn engine() -> &'static Engine {
    &host().engine
}

fn host() -> &'static Host {
    static HOST: OnceLock<Host> = OnceLock::new();
    HOST.get_or_init(|| {
        let engine = new_engine();
        let weak = engine.weak();
        // The ticker that makes epoch deadlines fire; it ends with the engine (never, in practice).
        std::thread::Builder::new()
            .name("wasm-epoch".into())
            .spawn(move || loop {
                std::thread::sleep(TICK);
                match weak.upgrade() {
                    Some(e) => e.increment_epoch(),
                    None => break,
                }
            })
            .expect("spawn the wasm epoch thread");
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |s: &mut State| &mut s.wasi)
            .expect("WASI preview 1 links");
        Host {
            engine,
            linker,
            modules: Mutex::new(HashMap::new()),
        }
    })
}

fn new_engine() -> Engine {
    let mut config = Config::new();
    config.epoch_interruption(true);
    let mut pooling = PoolingAllocationConfig::default();
    // Slots are virtual reservations; physical memory is only what guests touch.
    pooling
        .total_core_instances(1000)
        .total_memories(1000)
        .total_tables(1000)
        .max_memory_size(MAX_WASM32_MEMORY as usize)
        .max_core_instance_size(1 << 20);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling));
    match Engine::new(&config) {
        Ok(engine) => engine,
        Err(e) => {
            // A small address space (ulimit -v) cannot hold the pool's reservations.
            tracing::warn!("wasm pooling allocator unavailable ({e}); allocating on demand");
            config.allocation_strategy(InstanceAllocationStrategy::OnDemand);
            Engine::new(&config).expect("wasmtime engine")
        }
    }
}

pub(crate) fn describe(e: &wasmtime::Error) -> String {
    e.chain()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(": ")
}

/// Compiles and links `bytes`, checking that it is a WASI preview-1 command. The error says
/// what is wrong, for `InvalidParameterValueException`.
pub fn compile(bytes: &[u8], name: &str) -> Result<WasmModule, String> {
    let host = host();
    let module = Module::from_binary(&host.engine, bytes)
        .map_err(|e| format!("{name} is not a valid WebAssembly module: {}", describe(&e)))?;
    if !module
        .exports()
        .any(|e| e.name() == "_start" && e.ty().func().is_some())
    {
        return Err(format!(
            "{name} is not a WASI command module: it exports no _start function"
        ));
    }
    let pre = host.linker.instantiate_pre(&module).map_err(|e| {
        format!(
            "{name} cannot be linked (only wasi_snapshot_preview1 imports are provided): {}",
            describe(&e)
        )
    })?;
    Ok(WasmModule { pre })
}

/// Compiles `bytes` as a component when its header says it is one, else as a module.
pub fn compile_any(bytes: &[u8], name: &str) -> Result<Wasm, String> {
    if component::is_component(bytes) {
        component::compile(bytes, name).map(|c| Wasm::Component(Arc::new(c)))
    } else {
        compile(bytes, name).map(Wasm::Module)
    }
}

/// The module or component `handler` names in `code_dir`, compiled once per file version.
pub fn load(code_dir: &Path, handler: &str) -> Result<Arc<Wasm>, String> {
    // The handler is a path inside the package, never a way out of it.
    if !Path::new(handler)
        .components()
        .all(|c| matches!(c, std::path::Component::Normal(_)))
    {
        return Err(format!(
            "the handler {handler} must be a relative path inside the package"
        ));
    }
    let path = code_dir.join(handler);
    let meta = std::fs::metadata(&path)
        .map_err(|e| format!("cannot read the handler module {handler}: {e}"))?;
    let key = (path.clone(), meta.modified().ok(), meta.len());
    if let Some(m) = crate::lock(&host().modules).get(&key) {
        return Ok(m.clone());
    }
    let bytes = std::fs::read(&path)
        .map_err(|e| format!("cannot read the handler module {handler}: {e}"))?;
    let module = Arc::new(compile_any(&bytes, handler)?);
    crate::lock(&host().modules).insert(key, module.clone());
    Ok(module)
}

impl WasmModule {
    /// Runs the module once in a fresh store. Blocking: call it off the async runtime.
    pub fn run(&self, call: Call<'_>) -> Run {
        let host = host();
        let started = Instant::now();
        let stdout = MemoryOutputPipe::new(call.max_response + 1);
        let stderr = MemoryOutputPipe::new(STDERR_CAPACITY);
        let wasi = WasiCtxBuilder::new()
            .stdin(MemoryInputPipe::new(call.payload))
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .args(&[call.handler])
            .envs(call.variables)
            .build_p1();
        let max_bytes = (call.memory_mb << 20).min(MAX_WASM32_MEMORY) as usize;
        let mut store = Store::new(
            &host.engine,
            State {
                wasi,
                limits: MemoryCap::new(max_bytes),
            },
        );
        store.limiter(|s| &mut s.limits);
        let ticks = call.timeout.as_nanos().div_ceil(TICK.as_nanos()).max(1) as u64;
        store.set_epoch_deadline(ticks);
        let instance = self.pre.instantiate(&mut store);
        let instantiate = started.elapsed();
        let result = instance.and_then(|i| {
            let start = i.get_typed_func::<(), ()>(&mut store, "_start")?;
            start.call(&mut store, ())
        });
        let memory_used = store.data().limits.peak;
        let denied = store.data().limits.denied;
        let ended = match result {
            Ok(()) => Ended::Ok(stdout.contents()),
            Err(e) => {
                if let Some(exit) = e.downcast_ref::<I32Exit>() {
                    if exit.0 == 0 {
                        Ended::Ok(stdout.contents())
                    } else if denied {
                        Ended::OutOfMemory(format!("exit status {}", exit.0))
                    } else {
                        Ended::Exit(exit.0)
                    }
                } else if e.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
                    Ended::TimedOut
                } else if stdout.contents().len() > call.max_response {
                    Ended::TooLarge(stdout.contents().len())
                } else if denied {
                    Ended::OutOfMemory(describe(&e))
                } else {
                    Ended::Trap(describe(&e))
                }
            }
        };
        let ended = match ended {
            Ended::Ok(out) if out.len() > call.max_response => Ended::TooLarge(out.len()),
            other => other,
        };
        Run {
            ended,
            stderr: stderr.contents(),
            instantiate,
            memory_used,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/wasm");
    const NAMES: &[&str] = &["echo", "env", "loop", "bomb", "trap", "exit", "foreign"];

    fn wasm(name: &str) -> Vec<u8> {
        wat::parse_file(format!("{FIXTURES}/{name}.wat")).unwrap()
    }

    fn run(name: &str, payload: &str, memory_mb: u64, timeout_ms: u64) -> Run {
        let module = compile(&wasm(name), &format!("{name}.wasm")).unwrap();
        let variables = vec![("GREETING".to_string(), "hello".to_string())];
        module.run(Call {
            payload: Bytes::from(payload.to_string()),
            memory_mb,
            timeout: Duration::from_millis(timeout_ms),
            variables: &variables,
            handler: "function.wasm",
            max_response: 1 << 20,
        })
    }

    /// `tests/functions.rs` (the root package, without `wat`) deploys the `.wasm` files; they
    /// must be what the `.wat` sources say. `TRELLIS_BLESS=1` rewrites them.
    #[test]
    fn the_committed_wasm_fixtures_match_their_sources() {
        for name in NAMES {
            let built = wasm(name);
            let path = format!("{FIXTURES}/{name}.wasm");
            if std::env::var_os("TRELLIS_BLESS").is_some() {
                std::fs::write(&path, &built).unwrap();
            }
            let committed = std::fs::read(&path).unwrap_or_default();
            assert!(
                committed == built,
                "{path} is stale: run `TRELLIS_BLESS=1 cargo test -p trellis-functions wasm`"
            );
        }
    }

    #[test]
    fn echo_reads_stdin_and_answers_on_stdout() {
        let out = run("echo", r#"{"name":"x","n":[1,2]}"#, 128, 1000);
        let Ended::Ok(body) = out.ended else {
            panic!("echo failed")
        };
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"wasm": true, "name": "x", "n": [1, 2]})
        );
        assert_eq!(&out.stderr[..], b"wasm echo\n");
        let Ended::Ok(body) = run("echo", " { } ", 128, 1000).ended else {
            panic!("echo failed")
        };
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v, serde_json::json!({"wasm": true}));
    }

    #[test]
    fn the_guest_sees_only_the_functions_variables() {
        let Ended::Ok(body) = run("env", "{}", 128, 1000).ended else {
            panic!("env failed")
        };
        assert_eq!(&body[..], br#"["GREETING=hello"]"#);
    }

    #[test]
    fn an_endless_loop_is_stopped_at_the_deadline() {
        let started = Instant::now();
        let out = run("loop", "{}", 128, 100);
        assert!(matches!(out.ended, Ended::TimedOut));
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn memory_is_capped_at_memory_size() {
        let out = run("bomb", "{}", 16, 5000);
        let Ended::OutOfMemory(message) = out.ended else {
            panic!("the bomb was not stopped")
        };
        assert!(message.contains("unreachable"), "{message}");
        assert!(out.memory_used <= 16 << 20 && out.memory_used > 8 << 20);
    }

    #[test]
    fn traps_and_exit_codes_are_reported() {
        let out = run("trap", "{}", 128, 1000);
        let Ended::Trap(message) = out.ended else {
            panic!("no trap")
        };
        assert!(message.contains("unreachable"), "{message}");
        assert_eq!(&out.stderr[..], b"about to trap\n");
        assert!(matches!(run("exit", "{}", 128, 1000).ended, Ended::Exit(3)));
    }

    #[test]
    fn invalid_modules_are_refused_with_the_reason() {
        let e = compile(b"\0asm\x01\0\0\0\x99", "f.wasm").err().unwrap();
        assert!(
            e.starts_with("f.wasm is not a valid WebAssembly module"),
            "{e}"
        );
        let e = compile(b"hello", "f.wasm").err().unwrap();
        assert!(e.contains("not a valid WebAssembly module"), "{e}");
        let e = load(Path::new(FIXTURES), "../wasm/echo.wasm")
            .err()
            .unwrap();
        assert!(e.contains("relative path inside the package"), "{e}");
        assert!(load(Path::new(FIXTURES), "/etc/x.wasm").is_err());
        assert!(load(Path::new(FIXTURES), "echo.wasm").is_ok());
        let e = compile(&wasm("foreign"), "f.wasm").err().unwrap();
        assert!(e.contains("host_magic"), "{e}");
        let reactor = wat::parse_str("(module (func (export \"_initialize\")))").unwrap();
        let e = compile(&reactor, "f.wasm").err().unwrap();
        assert!(e.contains("no _start"), "{e}");
    }

    #[test]
    fn instantiation_is_fast() {
        let module = compile(&wasm("echo"), "echo.wasm").unwrap();
        let mut times = Vec::new();
        for _ in 0..200 {
            let out = module.run(Call {
                payload: Bytes::from_static(b"{}"),
                memory_mb: 128,
                timeout: Duration::from_secs(1),
                variables: &[],
                handler: "echo.wasm",
                max_response: 1 << 20,
            });
            assert!(matches!(out.ended, Ended::Ok(_)));
            times.push(out.instantiate);
        }
        times.sort();
        // Reported, not asserted: timings depend on the machine.
        eprintln!(
            "wasm instantiate: p50 {:?}, p99 {:?}",
            times[times.len() / 2],
            times[times.len() * 99 / 100]
        );
    }
}
