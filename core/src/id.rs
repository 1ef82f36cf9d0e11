//! Resource ids in the AWS shape: a prefix, a dash and 17 lowercase hex digits
//! (`svc-0a1b2c3d4e5f67890`).

/// A fresh id with `prefix` (`svc`, `sn`, `tg`, `listener`, `rule`, `sn-svc-assoc` …).
pub fn new_id(prefix: &str) -> String {
    let mut s = String::with_capacity(prefix.len() + 18);
    s.push_str(prefix);
    s.push('-');
    for _ in 0..17 {
        s.push(char::from_digit(fastrand::u32(0..16), 16).unwrap_or('0'));
    }
    s
}

/// Resolves an identifier that may be an id or an ARN to the id.
pub fn id_of(identifier: &str) -> &str {
    if identifier.starts_with("arn:") {
        identifier.rsplit('/').next().unwrap_or(identifier)
    } else {
        identifier
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_the_aws_shape() {
        let id = new_id("svc");
        assert_eq!(id.len(), 21);
        assert!(id[4..]
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_eq!(id_of("arn:aws:vpc-lattice:r:1:service/svc-1"), "svc-1");
        assert_eq!(id_of("svc-1"), "svc-1");
    }
}
