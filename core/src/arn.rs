//! AWS-style ARNs: `arn:aws:<service>:<region>:<account>:<resource>`.

use std::fmt;

/// The region and account every ARN of this installation carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArnContext {
    pub partition: String,
    pub region: String,
    pub account: String,
}

/// A parsed ARN. `resource` is everything after the account, e.g. `service/svc-0123…`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Arn {
    pub partition: String,
    pub service: String,
    pub region: String,
    pub account: String,
    pub resource: String,
}

// === impl ArnContext ===

impl Default for ArnContext {
    fn default() -> Self {
        Self {
            partition: "aws".into(),
            region: "us-east-1".into(),
            account: "000000000000".into(),
        }
    }
}

impl ArnContext {
    /// The ARN of a resource of `service` in this installation.
    pub fn arn(&self, service: &str, resource: &str) -> String {
        format!(
            "arn:{}:{}:{}:{}:{}",
            self.partition, service, self.region, self.account, resource
        )
    }
}

// === impl Arn ===

impl Arn {
    pub fn parse(s: &str) -> Option<Arn> {
        let mut parts = s.splitn(6, ':');
        if parts.next()? != "arn" {
            return None;
        }
        let partition = parts.next()?.to_string();
        let service = parts.next()?.to_string();
        let region = parts.next()?.to_string();
        let account = parts.next()?.to_string();
        let resource = parts.next()?.to_string();
        if partition.is_empty() || service.is_empty() || resource.is_empty() {
            return None;
        }
        Some(Arn {
            partition,
            service,
            region,
            account,
            resource,
        })
    }

    /// The last `/`-separated part of the resource: the resource id for most services.
    pub fn resource_id(&self) -> &str {
        self.resource.rsplit('/').next().unwrap_or(&self.resource)
    }
}

impl fmt::Display for Arn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "arn:{}:{}:{}:{}:{}",
            self.partition, self.service, self.region, self.account, self.resource
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let s = "arn:aws:vpc-lattice:us-east-1:000000000000:service/svc-0123456789abcdef0";
        let arn = Arn::parse(s).unwrap();
        assert_eq!(arn.service, "vpc-lattice");
        assert_eq!(arn.resource_id(), "svc-0123456789abcdef0");
        assert_eq!(arn.to_string(), s);
        assert!(Arn::parse("arn:aws").is_none());
        assert!(Arn::parse("svc-123").is_none());
    }

    #[test]
    fn context_builds_arns() {
        let ctx = ArnContext::default();
        assert_eq!(
            ctx.arn("lambda", "function:f"),
            "arn:aws:lambda:us-east-1:000000000000:function:f"
        );
    }
}
