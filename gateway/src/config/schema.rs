//! The JSON Schema of the declarative config, generated from the Lattice model so that it says
//! exactly what the API accepts (`trellis schema` prints it).

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};
use trellis_core::model::{Location, ServiceModel, Shape};

/// The schema document.
pub fn schema(model: &ServiceModel) -> Value {
    let mut defs = BTreeMap::new();
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
    shape_ref(model, "Target", &mut defs);
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Trellis declarative config",
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "$schema": {"type": "string"},
            "serviceNetworks": {"type": "array", "items": network},
            "targetGroups": {"type": "array", "items": target_group},
            "services": {"type": "array", "items": service},
        },
        "$defs": defs.into_iter().collect::<Map<_, _>>(),
    })
}

fn request_body(
    model: &ServiceModel,
    shape: &str,
    drop: &[&str],
    defs: &mut BTreeMap<String, Value>,
) -> Value {
    let Some(Shape::Structure {
        members, required, ..
    }) = model.shape(shape)
    else {
        return json!({});
    };
    let mut props = Map::new();
    for m in members {
        if drop.contains(&m.name.as_str()) || m.location != Location::Body {
            continue;
        }
        props.insert(m.name.clone(), shape_ref(model, &m.shape, defs));
    }
    let required: Vec<&String> = required.iter().filter(|r| props.contains_key(*r)).collect();
    json!({"type": "object", "properties": props, "required": required})
}

/// A `$ref` to the shape's definition, adding it (and what it uses) to `defs`.
fn shape_ref(model: &ServiceModel, name: &str, defs: &mut BTreeMap<String, Value>) -> Value {
    if !defs.contains_key(name) {
        defs.insert(name.to_string(), Value::Null);
        let def = shape_schema(model, name, defs);
        defs.insert(name.to_string(), def);
    }
    json!({"$ref": format!("#/$defs/{name}")})
}

fn shape_schema(model: &ServiceModel, name: &str, defs: &mut BTreeMap<String, Value>) -> Value {
    let put = |s: &mut Value, k: &str, v: Option<f64>| {
        if let Some(v) = v {
            s[k] = json!(v as i64);
        }
    };
    match model.shape(name) {
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
