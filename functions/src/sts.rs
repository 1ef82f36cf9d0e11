//! The slice of STS that deploy tools call before anything else: `GetCallerIdentity` (who am
//! I, which account) and `AssumeRole` (temporary credentials that Trellis accepts like any
//! others).

use std::sync::Arc;

use trellis_core::api::QueryService;
use trellis_core::model::ServiceModel;
use trellis_core::target::BoxFuture;
use trellis_core::{ApiError, ArnContext};

use crate::iam::{param, xml_escape};

/// The STS model, parsed once.
pub fn sts_model() -> Arc<ServiceModel> {
    static MODEL: std::sync::OnceLock<Arc<ServiceModel>> = std::sync::OnceLock::new();
    trellis_core::model::embedded(
        &MODEL,
        include_str!("../../core/models/sts-2011-06-15.json"),
    )
}

pub struct Sts {
    arn: ArnContext,
}

// === impl Sts ===

impl Sts {
    pub fn new(arn: ArnContext) -> Self {
        Self { arn }
    }

    fn answer(&self, action: &str, params: &[(String, String)]) -> Result<String, ApiError> {
        let account = &self.arn.account;
        let partition = &self.arn.partition;
        match action {
            "GetCallerIdentity" => Ok(format!(
                "<UserId>{account}</UserId><Account>{account}</Account><Arn>arn:{partition}:iam::{account}:root</Arn>"
            )),
            "AssumeRole" => {
                let role = param(params, "RoleArn")?;
                let session = param(params, "RoleSessionName")?;
                let role_name = role.rsplit('/').next().unwrap_or(role);
                let seconds = params
                    .iter()
                    .find(|(k, _)| k == "DurationSeconds")
                    .and_then(|(_, v)| v.parse::<u64>().ok())
                    .unwrap_or(3600);
                let expiration = trellis_core::clock::iso8601(
                    trellis_core::clock::now_millis() + seconds * 1000,
                );
                let key = format!("ASIA{:016X}", fastrand::u64(..));
                let secret = format!("{:032x}{:08x}", fastrand::u128(..), fastrand::u32(..));
                let token = format!("{:032x}{:032x}", fastrand::u128(..), fastrand::u128(..));
                Ok(format!(
                    "<Credentials><AccessKeyId>{key}</AccessKeyId><SecretAccessKey>{secret}</SecretAccessKey><SessionToken>{token}</SessionToken><Expiration>{expiration}</Expiration></Credentials><AssumedRoleUser><AssumedRoleId>AROA{:016X}:{}</AssumedRoleId><Arn>arn:{partition}:sts::{account}:assumed-role/{}/{}</Arn></AssumedRoleUser>",
                    fastrand::u64(..),
                    xml_escape(session),
                    xml_escape(role_name),
                    xml_escape(session)
                ))
            }
            _ => Err(ApiError::new(
                "InvalidAction",
                400,
                format!("Trellis does not implement the STS action {action}"),
            )),
        }
    }
}

impl QueryService for Sts {
    fn model(&self) -> Arc<ServiceModel> {
        sts_model()
    }

    fn xml_namespace(&self) -> &str {
        "https://sts.amazonaws.com/doc/2011-06-15/"
    }

    fn call(
        &self,
        action: &str,
        params: Vec<(String, String)>,
    ) -> BoxFuture<'_, Result<String, ApiError>> {
        let out = self.answer(action, &params);
        Box::pin(async move { out })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caller_identity_names_the_account() {
        let sts = Sts::new(ArnContext::default());
        let xml = sts.answer("GetCallerIdentity", &[]).unwrap();
        assert!(xml.contains("<Account>000000000000</Account>"), "{xml}");
        assert!(sts.model().operation("GetCallerIdentity").is_some());
    }
}
