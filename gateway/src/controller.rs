//! The Lattice controller: runs API operations against the current [`State`], persists what a
//! write changed in one store commit, swaps the new state in and recompiles the data plane.
//! Writers are serialised; readers never wait for them.

use std::sync::Arc;

use arc_swap::ArcSwap;
use serde_json::{json, Value};
use tokio::sync::Mutex;
use trellis_core::model::ServiceModel;
use trellis_core::{ApiError, ArnContext};
use trellis_store::Store;

use crate::dataplane::DataPlane;
use crate::lattice::{self, kind, Ctx, State};

pub struct Controller {
    pub model: Arc<ServiceModel>,
    pub arn: ArnContext,
    pub dataplane: Arc<DataPlane>,
    state: ArcSwap<State>,
    write_lock: Mutex<()>,
    store: Option<Arc<dyn Store>>,
}

/// The Lattice model, parsed once, with the Trellis extension target-group type `WASM`.
pub fn lattice_model() -> Arc<ServiceModel> {
    static MODEL: std::sync::OnceLock<Arc<ServiceModel>> = std::sync::OnceLock::new();
    MODEL
        .get_or_init(|| {
            let mut doc: serde_json::Value = serde_json::from_str(include_str!(
                "../../core/models/vpc-lattice-2022-11-30.json"
            ))
            .expect("the embedded Lattice model is JSON");
            if let Some(types) = doc["shapes"]["TargetGroupType"]["enum"].as_array_mut() {
                types.push("WASM".into());
            }
            Arc::new(ServiceModel::from_json(&doc.to_string()).expect("the Lattice model parses"))
        })
        .clone()
}

// === impl Controller ===

impl Controller {
    /// A controller over `store`, with the state the store holds.
    pub async fn load(
        store: Arc<dyn Store>,
        arn: ArnContext,
        dataplane: Arc<DataPlane>,
    ) -> Result<Self, trellis_store::StoreError> {
        let mut state = State::default();
        for k in kind::ALL {
            for (id, doc) in store.list(k).await? {
                state.put(k, &id, doc);
            }
        }
        dataplane.publish(&state);
        Ok(Self {
            model: lattice_model(),
            arn,
            dataplane,
            state: ArcSwap::from_pointee(state),
            write_lock: Mutex::new(()),
            store: Some(store),
        })
    }

    /// A controller with no store, for `trellis validate`.
    pub fn in_memory(arn: ArnContext) -> Self {
        Self {
            model: lattice_model(),
            arn,
            dataplane: Arc::new(DataPlane::new(None, std::path::PathBuf::new())),
            state: ArcSwap::from_pointee(State::default()),
            write_lock: Mutex::new(()),
            store: None,
        }
    }

    pub fn state(&self) -> Arc<State> {
        self.state.load_full()
    }

    /// Runs one API operation on already-gathered input.
    pub async fn call(&self, op: &str, input: Value) -> Result<Value, ApiError> {
        let operation = self
            .model
            .operation(op)
            .ok_or_else(|| ApiError::unknown_operation(op))?;
        self.model.validate_input(operation, &input)?;
        let runtimes = self.dataplane.runtimes.clone();
        let health = move |tg: &str, ip: &str, port: u16| runtimes.target_health(tg, ip, port);
        let ctx = Ctx {
            arn: &self.arn,
            model: &self.model,
            health: &health,
        };
        if lattice::is_read(op) {
            return lattice::read(&self.state.load(), &ctx, op, &input);
        }
        self.write(|state| {
            let token = input.get("clientToken").and_then(Value::as_str);
            idempotent(state, op, token, &input, |state| {
                lattice::write(state, &ctx, op, &input)
            })
        })
        .await
    }

    /// Applies `f` to a copy of the state; if it succeeds, persists the difference and swaps the
    /// copy in. If `f` or the store fails, nothing changes.
    pub async fn write<T>(
        &self,
        f: impl FnOnce(&mut State) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let _guard = self.write_lock.lock().await;
        let current = self.state.load_full();
        let mut next = (*current).clone();
        let out = f(&mut next)?;
        let writes = current.diff(&next);
        if writes.is_empty() {
            return Ok(out);
        }
        if let Some(store) = &self.store {
            store.commit(writes).await.map_err(ApiError::internal)?;
        }
        self.dataplane.publish(&next);
        lattice::resource_association::publish(&next);
        self.state.store(Arc::new(next));
        Ok(out)
    }
}

/// Runs a create with AWS's `clientToken` semantics: a retry with the same token and the same
/// parameters gets the first answer; the same token with other parameters is a conflict.
fn idempotent(
    state: &mut State,
    op: &str,
    token: Option<&str>,
    input: &Value,
    f: impl FnOnce(&mut State) -> Result<Value, ApiError>,
) -> Result<Value, ApiError> {
    let Some(token) = token else {
        return f(state);
    };
    let key = format!("{op}:{token}");
    let mut params = input.clone();
    if let Some(o) = params.as_object_mut() {
        o.remove("clientToken");
    }
    if let Some(seen) = state.get(kind::IDEMPOTENCY, &key) {
        if seen["params"] == params {
            return Ok(seen["response"].clone());
        }
        return Err(ApiError::conflict(
            "CLIENT_TOKEN",
            token,
            "the client token was already used with different parameters",
        ));
    }
    let response = f(state)?;
    state.put(
        kind::IDEMPOTENCY,
        &key,
        json!({"params": params, "response": response, "at": trellis_core::clock::now_millis()}),
    );
    Ok(response)
}

impl trellis_core::api::RestService for Controller {
    fn model(&self) -> Arc<ServiceModel> {
        self.model.clone()
    }

    fn call(
        &self,
        op: &str,
        input: Value,
    ) -> trellis_core::target::BoxFuture<'_, Result<Value, ApiError>> {
        let op = op.to_string();
        Box::pin(async move { Controller::call(self, &op, input).await })
    }
}
