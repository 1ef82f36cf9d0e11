//! The slice of IAM that deploy tools need to give a function a role: roles (create, get,
//! list, delete) and their attached managed policies. Roles are kept in the store (kind
//! `iam-role`); Trellis does not evaluate them.

use std::sync::Arc;

use serde_json::{json, Value};
use trellis_core::api::QueryService;
use trellis_core::model::ServiceModel;
use trellis_core::target::BoxFuture;
use trellis_core::{ApiError, ArnContext};
use trellis_store::{Store, Write};

/// The store kind of roles.
pub const KIND: &str = "iam-role";

/// The IAM model, parsed once.
pub fn iam_model() -> Arc<ServiceModel> {
    static MODEL: std::sync::OnceLock<Arc<ServiceModel>> = std::sync::OnceLock::new();
    trellis_core::model::embedded(
        &MODEL,
        include_str!("../../core/models/iam-2010-05-08.json"),
    )
}

pub struct Iam {
    arn: ArnContext,
    store: Arc<dyn Store>,
    /// Serialises read-modify-write of role documents.
    write_lock: tokio::sync::Mutex<()>,
}

/// Escapes text for an XML element.
pub fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// A required query parameter.
pub fn param<'a>(params: &'a [(String, String)], name: &str) -> Result<&'a str, ApiError> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .ok_or_else(|| {
            ApiError::new(
                "ValidationError",
                400,
                format!("1 validation error detected: Value null at '{name}' failed to satisfy constraint: Member must not be null"),
            )
        })
}

fn optional<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn no_such_role(name: &str) -> ApiError {
    ApiError::new(
        "NoSuchEntity",
        404,
        format!("The role with name {name} cannot be found."),
    )
}

// === impl Iam ===

impl Iam {
    pub fn new(store: Arc<dyn Store>, arn: ArnContext) -> Self {
        Self {
            arn,
            store,
            write_lock: tokio::sync::Mutex::new(()),
        }
    }

    fn role_xml(&self, role: &Value) -> String {
        let s = |k: &str| xml_escape(role[k].as_str().unwrap_or_default());
        let policy: String =
            percent_encode(role["AssumeRolePolicyDocument"].as_str().unwrap_or(""));
        let mut xml = format!(
            "<Role><Path>{}</Path><RoleName>{}</RoleName><RoleId>{}</RoleId><Arn>{}</Arn><CreateDate>{}</CreateDate><AssumeRolePolicyDocument>{}</AssumeRolePolicyDocument><MaxSessionDuration>{}</MaxSessionDuration>",
            s("Path"),
            s("RoleName"),
            s("RoleId"),
            s("Arn"),
            s("CreateDate"),
            xml_escape(&policy),
            role["MaxSessionDuration"].as_u64().unwrap_or(3600),
        );
        if let Some(d) = role["Description"].as_str() {
            xml.push_str(&format!("<Description>{}</Description>", xml_escape(d)));
        }
        xml.push_str("</Role>");
        xml
    }

    async fn role(&self, name: &str) -> Result<Value, ApiError> {
        self.store
            .get(KIND, name)
            .await
            .map_err(ApiError::internal)?
            .ok_or_else(|| no_such_role(name))
    }

    async fn put(&self, name: &str, role: Option<Value>) -> Result<(), ApiError> {
        let w = match role {
            Some(r) => Write::put(KIND, name, r),
            None => Write::delete(KIND, name),
        };
        self.store
            .commit(vec![w])
            .await
            .map(|_| ())
            .map_err(ApiError::internal)
    }

    async fn answer(&self, action: &str, params: &[(String, String)]) -> Result<String, ApiError> {
        match action {
            "CreateRole" => {
                let _g = self.write_lock.lock().await;
                let name = param(params, "RoleName")?;
                let policy = param(params, "AssumeRolePolicyDocument")?;
                if self
                    .store
                    .get(KIND, name)
                    .await
                    .map_err(ApiError::internal)?
                    .is_some()
                {
                    return Err(ApiError::new(
                        "EntityAlreadyExists",
                        409,
                        format!("Role with name {name} already exists."),
                    ));
                }
                let path = optional(params, "Path").unwrap_or("/");
                let role = json!({
                    "RoleName": name,
                    "Path": path,
                    "RoleId": format!("AROA{:016X}", fastrand::u64(..)),
                    "Arn": format!("arn:{}:iam::{}:role{path}{name}", self.arn.partition, self.arn.account),
                    "CreateDate": trellis_core::clock::now_iso8601(),
                    "AssumeRolePolicyDocument": policy,
                    "Description": optional(params, "Description"),
                    "MaxSessionDuration": optional(params, "MaxSessionDuration").and_then(|v| v.parse::<u64>().ok()).unwrap_or(3600),
                    "AttachedPolicies": [],
                });
                self.put(name, Some(role.clone())).await?;
                Ok(self.role_xml(&role))
            }
            "GetRole" => {
                let role = self.role(param(params, "RoleName")?).await?;
                Ok(self.role_xml(&role))
            }
            "ListRoles" => {
                let roles = self.store.list(KIND).await.map_err(ApiError::internal)?;
                let members: String = roles
                    .iter()
                    .map(|(_, r)| {
                        self.role_xml(r)
                            .replacen("<Role>", "<member>", 1)
                            .replace("</Role>", "</member>")
                    })
                    .collect();
                Ok(format!(
                    "<Roles>{members}</Roles><IsTruncated>false</IsTruncated>"
                ))
            }
            "DeleteRole" => {
                let _g = self.write_lock.lock().await;
                let name = param(params, "RoleName")?;
                self.role(name).await?;
                self.put(name, None).await?;
                Ok(String::new())
            }
            "AttachRolePolicy" | "DetachRolePolicy" => {
                let _g = self.write_lock.lock().await;
                let name = param(params, "RoleName")?;
                let policy = param(params, "PolicyArn")?.to_string();
                let mut role = self.role(name).await?;
                let mut list: Vec<Value> = role["AttachedPolicies"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                list.retain(|p| p.as_str() != Some(&policy));
                if action == "AttachRolePolicy" {
                    list.push(policy.into());
                }
                role["AttachedPolicies"] = list.into();
                self.put(name, Some(role)).await?;
                Ok(String::new())
            }
            "UpdateAssumeRolePolicy" => {
                let _g = self.write_lock.lock().await;
                let name = param(params, "RoleName")?;
                let policy = param(params, "PolicyDocument")?;
                let mut role = self.role(name).await?;
                role["AssumeRolePolicyDocument"] = policy.into();
                self.put(name, Some(role)).await?;
                Ok(String::new())
            }
            "ListAttachedRolePolicies" => {
                let role = self.role(param(params, "RoleName")?).await?;
                let members: String = role["AttachedPolicies"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .map(|arn| {
                                let name = arn.rsplit('/').next().unwrap_or(arn);
                                format!(
                                    "<member><PolicyName>{}</PolicyName><PolicyArn>{}</PolicyArn></member>",
                                    xml_escape(name),
                                    xml_escape(arn)
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                Ok(format!(
                    "<AttachedPolicies>{members}</AttachedPolicies><IsTruncated>false</IsTruncated>"
                ))
            }
            _ => Err(ApiError::new(
                "InvalidAction",
                400,
                format!("Trellis does not implement the IAM action {action}"),
            )),
        }
    }
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl QueryService for Iam {
    fn model(&self) -> Arc<ServiceModel> {
        iam_model()
    }

    fn xml_namespace(&self) -> &str {
        "https://iam.amazonaws.com/doc/2010-05-08/"
    }

    fn call(
        &self,
        action: &str,
        params: Vec<(String, String)>,
    ) -> BoxFuture<'_, Result<String, ApiError>> {
        let action = action.to_string();
        Box::pin(async move { self.answer(&action, &params).await })
    }
}
