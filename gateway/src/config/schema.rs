//! The JSON Schema of the declarative config, generated from the Lattice, Lambda, EventBridge
//! and Step Functions models so that it says exactly what the APIs accept (`trellis schema`
//! prints it). The engines' shapes are defined under `$defs` with a prefix (`lambda.`,
//! `events.`, `states.`), as their names clash with Lattice's and each other's.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};
use trellis_core::model::{Location, ServiceModel, Shape};

/// The schema document.
pub fn schema(model: &ServiceModel) -> Value {
    let mut defs = BTreeMap::new();
    let lambda = trellis_functions::lambda::lambda_model();
    let events = trellis_events::service::model();
    let states = trellis_workflows::service::model();
    let engines = engine_sections(&lambda, &events, &states, &mut defs);
    let model = Model { model, prefix: "" };
    let mut item = |shape: &str, drop: &[&str], extra: Value| -> Value {
        let mut s = request_body(model, shape, drop, &mut defs);
        if let (Some(props), Value::Object(extra)) = (s["properties"].as_object_mut(), extra) {
            props.extend(extra);
        }
        s
    };
    let policy = json!({"type": "object", "description": "an IAM-style auth policy document"});
    let rule = item(
        "CreateRuleRequest",
        &["serviceIdentifier", "listenerIdentifier", "clientToken"],
        json!({}),
    );
    let listener = item(
        "CreateListenerRequest",
        &["serviceIdentifier", "clientToken"],
        json!({"rules": {"type": "array", "items": rule}}),
    );
    let service = item(
        "CreateServiceRequest",
        &["clientToken"],
        json!({
            "serviceNetworks": {"type": "array", "items": {"type": "string"}, "description": "names or ids of service networks to associate"},
            "listeners": {"type": "array", "items": listener},
            "authPolicy": policy,
        }),
    );
    let target_group = item(
        "CreateTargetGroupRequest",
        &["clientToken"],
        json!({"targets": {"type": "array", "items": {"$ref": "#/$defs/Target"}}}),
    );
    let network = item(
        "CreateServiceNetworkRequest",
        &["clientToken"],
        json!({"authPolicy": policy}),
    );
    let child = item(
        "CreateResourceConfigurationRequest",
        &[
            "clientToken",
            "resourceGatewayIdentifier",
            "resourceConfigurationGroupIdentifier",
            "portRanges",
            "protocol",
        ],
        json!({}),
    );
    let names = json!({"type": "array", "items": {"type": "string"}, "description": "names or ids of service networks to associate with"});
    let resource_configuration = item(
        "CreateResourceConfigurationRequest",
        &[
            "clientToken",
            "resourceGatewayIdentifier",
            "resourceConfigurationGroupIdentifier",
        ],
        json!({
            "children": {"type": "array", "items": child, "description": "a GROUP's CHILD members (type defaults to CHILD)"},
            "serviceNetworks": names,
        }),
    );
    let resource_gateway = item(
        "CreateResourceGatewayRequest",
        &["clientToken"],
        json!({"resourceConfigurations": {"type": "array", "items": resource_configuration}}),
    );
    shape_ref(model, "Target", &mut defs);
    let mut properties = json!({
        "$schema": {"type": "string"},
        "serviceNetworks": {"type": "array", "items": network},
        "targetGroups": {"type": "array", "items": target_group},
        "services": {"type": "array", "items": service},
        "resourceGateways": {"type": "array", "items": resource_gateway},
    });
    if let (Some(p), Value::Object(e)) = (properties.as_object_mut(), engines) {
        p.extend(e);
    }
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Trellis declarative config",
        "type": "object",
        "additionalProperties": false,
        "properties": properties,
        "$defs": defs.into_iter().collect::<Map<_, _>>(),
    })
}

/// The `functions`, `stateMachines` and `eventBuses` sections.
fn engine_sections(
    lambda: &ServiceModel,
    events: &ServiceModel,
    states: &ServiceModel,
    defs: &mut BTreeMap<String, Value>,
) -> Value {
    let lambda = Model {
        model: lambda,
        prefix: "lambda.",
    };
    let events = Model {
        model: events,
        prefix: "events.",
    };
    let states = Model {
        model: states,
        prefix: "states.",
    };
    let mut function = request_body(lambda, &input_of(lambda, "CreateFunction"), &[], defs);
    function["properties"]["Code"] = json!({
        "type": "object",
        "required": ["Path"],
        "properties": {"Path": {"type": "string", "description": "a folder holding bootstrap (or the Handler's .wasm module), run in place, or a .zip package; relative to the config file"}},
    });
    function["properties"]["ReservedConcurrentExecutions"] = json!({
        "type": "integer",
        "minimum": 0,
        "description": "the function's reserved concurrency, set with PutFunctionConcurrency: at most this many workers at a time",
    });
    function["required"] = json!(["FunctionName", "Code"]);
    let mut machine = request_body(
        states,
        &input_of(states, "CreateStateMachine"),
        &["publish", "versionDescription", "encryptionConfiguration"],
        defs,
    );
    machine["properties"]["definition"] = json!({
        "type": ["object", "string"],
        "description": "the Amazon States Language definition, as JSON or as text",
    });
    machine["properties"]["definitionFile"] = json!({
        "type": "string",
        "description": "a file holding the definition, relative to the config file",
    });
    machine["required"] = json!(["name"]);
    let mut target = shape_ref(events, "Target", defs);
    if let Some(Value::Object(t)) = defs.get("events.Target").cloned() {
        let mut t = Value::Object(t);
        t["properties"]["Function"] = json!({"type": "string", "description": "a function of this config or of Trellis, by name (instead of Arn)"});
        t["properties"]["StateMachine"] = json!({"type": "string", "description": "a state machine of this config or of Trellis, by name (instead of Arn)"});
        t["properties"]["ApiDestination"] = json!({"type": "string", "description": "an API destination of this config or of Trellis, by name (instead of Arn)"});
        t["properties"]["Input"] = json!({"type": ["string", "object", "array"], "description": "the target's input, as JSON or as text"});
        t["required"] = json!(["Id"]);
        defs.insert("events.ConfigTarget".into(), t);
        target = json!({"$ref": "#/$defs/events.ConfigTarget"});
    }
    let mut rule = request_body(
        events,
        &input_of(events, "PutRule"),
        &["EventBusName"],
        defs,
    );
    rule["properties"]["EventPattern"] = json!({
        "type": ["object", "string"],
        "description": "an event pattern, as JSON or as text",
    });
    rule["properties"]["Targets"] = json!({"type": "array", "items": target, "description": "the rule's targets; targets not listed are removed"});
    let mut bus = request_body(
        events,
        &input_of(events, "CreateEventBus"),
        &["EventSourceName", "KmsKeyIdentifier"],
        defs,
    );
    bus["properties"]["Rules"] = json!({"type": "array", "items": rule});
    let connection = request_body(events, &input_of(events, "CreateConnection"), &[], defs);
    let mut destination =
        request_body(events, &input_of(events, "CreateApiDestination"), &[], defs);
    destination["properties"]["Connection"] = json!({"type": "string", "description": "a connection of this config or of Trellis, by name (instead of ConnectionArn)"});
    if let Some(Value::Array(required)) = destination.get_mut("required") {
        required.retain(|r| r != "ConnectionArn");
    }
    json!({
        "functions": {"type": "array", "items": function},
        "stateMachines": {"type": "array", "items": machine},
        "connections": {"type": "array", "items": connection},
        "apiDestinations": {"type": "array", "items": destination},
        "eventBuses": {"type": "array", "items": bus},
    })
}

/// The input shape of an operation (the engines' models name them `…Request` or `…Input`).
fn input_of(m: Model<'_>, op: &str) -> String {
    m.model
        .operation(op)
        .and_then(|o| o.input.clone())
        .unwrap_or_default()
}

/// A service model and the prefix of its shapes' names in `$defs`.
#[derive(Clone, Copy)]
struct Model<'a> {
    model: &'a ServiceModel,
    prefix: &'static str,
}

fn request_body(
    m: Model<'_>,
    shape: &str,
    drop: &[&str],
    defs: &mut BTreeMap<String, Value>,
) -> Value {
    let Some(Shape::Structure {
        members, required, ..
    }) = m.model.shape(shape)
    else {
        return json!({});
    };
    let mut props = Map::new();
    for member in members {
        if drop.contains(&member.name.as_str()) || member.location != Location::Body {
            continue;
        }
        props.insert(member.name.clone(), shape_ref(m, &member.shape, defs));
    }
    let required: Vec<&String> = required.iter().filter(|r| props.contains_key(*r)).collect();
    json!({"type": "object", "properties": props, "required": required})
}

/// A `$ref` to the shape's definition, adding it (and what it uses) to `defs`.
fn shape_ref(m: Model<'_>, name: &str, defs: &mut BTreeMap<String, Value>) -> Value {
    let key = format!("{}{name}", m.prefix);
    if !defs.contains_key(&key) {
        defs.insert(key.clone(), Value::Null);
        let def = shape_schema(m, name, defs);
        defs.insert(key.clone(), def);
    }
    json!({"$ref": format!("#/$defs/{key}")})
}

fn shape_schema(model: Model<'_>, name: &str, defs: &mut BTreeMap<String, Value>) -> Value {
    let put = |s: &mut Value, k: &str, v: Option<f64>| {
        if let Some(v) = v {
            s[k] = json!(v as i64);
        }
    };
    match model.model.shape(name) {
        Some(Shape::Structure {
            members,
            required,
            union,
            ..
        }) => {
            let mut props = Map::new();
            for m in members {
                props.insert(m.name.clone(), shape_ref(model, &m.shape, defs));
            }
            let mut s = json!({"type": "object", "properties": props, "required": required});
            if *union {
                s["minProperties"] = json!(1);
                s["maxProperties"] = json!(1);
            }
            s
        }
        Some(Shape::List { member, min, max }) => {
            let mut s = json!({"type": "array", "items": shape_ref(model, member, defs)});
            put(&mut s, "minItems", *min);
            put(&mut s, "maxItems", *max);
            s
        }
        Some(Shape::Map {
            value, min, max, ..
        }) => {
            let mut s =
                json!({"type": "object", "additionalProperties": shape_ref(model, value, defs)});
            put(&mut s, "minProperties", *min);
            put(&mut s, "maxProperties", *max);
            s
        }
        Some(Shape::String {
            min,
            max,
            pattern,
            enumeration,
        }) => {
            let mut s = json!({"type": "string"});
            put(&mut s, "minLength", *min);
            put(&mut s, "maxLength", *max);
            if let Some(p) = pattern {
                s["pattern"] = json!(format!("^(?:{p})$"));
            }
            if let Some(e) = enumeration {
                s["enum"] = json!(e);
            }
            s
        }
        Some(Shape::Integer { min, max }) => {
            let mut s = json!({"type": "integer"});
            put(&mut s, "minimum", *min);
            put(&mut s, "maximum", *max);
            s
        }
        Some(Shape::Float { .. }) => json!({"type": "number"}),
        Some(Shape::Boolean) => json!({"type": "boolean"}),
        _ => json!({"type": "string"}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_describes_every_section_from_the_model() {
        let s = schema(&crate::controller::lattice_model());
        let svc = &s["properties"]["services"]["items"];
        assert_eq!(svc["required"], json!(["name"]));
        assert!(svc["properties"]["listeners"]["items"]["properties"]["rules"].is_object());
        assert_eq!(
            s["$defs"]["ListenerProtocol"]["enum"],
            json!(["HTTP", "HTTPS", "TLS_PASSTHROUGH"])
        );
        assert_eq!(s["$defs"]["RulePriority"]["maximum"], json!(2000));
        assert!(s["$defs"]
            .as_object()
            .unwrap()
            .values()
            .all(|v| !v.is_null()));
    }
}
