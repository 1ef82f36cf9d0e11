//! Numbers as event-ruler compares them.
//!
//! A number takes part in numeric comparison only if its decimal text equals, as a decimal, the
//! shortest decimal form of the nearest double (Java's `BigDecimal.valueOf(double)`); anything
//! else (more precision than a double, or out of range) is compared by its literal text only.
//! Zero is always positive zero, because the decimal reading has no negative zero.

/// The double a JSON number stands for, if it is exactly comparable.
pub(crate) fn comparable(text: &str) -> Option<f64> {
    let value: f64 = text.parse().ok()?;
    if !value.is_finite() {
        return None;
    }
    if value == 0.0 {
        // `-0`, `0.0e5` and friends: the decimal value is zero, and only +0 is used.
        return normalize(text).map(|_| 0.0);
    }
    let shortest = format!("{value:e}");
    if normalize(text)? == normalize(&shortest)? {
        Some(value)
    } else {
        None
    }
}

/// The canonical `(negative, significant digits, exponent)` of a decimal text, so that two
/// spellings of the same decimal value compare equal. Zero has no digits.
fn normalize(text: &str) -> Option<(bool, String, i64)> {
    let (negative, rest) = match text.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, text),
    };
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(i) => (&rest[..i], rest[i + 1..].parse::<i64>().ok()?),
        None => (rest, 0),
    };
    let (int_part, frac_part) = match mantissa.find('.') {
        Some(i) => (&mantissa[..i], &mantissa[i + 1..]),
        None => (mantissa, ""),
    };
    let mut digits: String = int_part.chars().chain(frac_part.chars()).collect();
    // Value = 0.digits * 10^(len(int_part) + exponent)
    let mut point = int_part.len() as i64 + exponent;
    let leading = digits.len() - digits.trim_start_matches('0').len();
    digits.drain(..leading);
    point -= leading as i64;
    let trimmed = digits.trim_end_matches('0').len();
    digits.truncate(trimmed);
    if digits.is_empty() {
        return Some((false, String::new(), 0));
    }
    Some((negative, digits, point))
}

#[cfg(test)]
mod tests {
    use super::comparable;

    #[test]
    fn spellings_of_the_same_double() {
        assert_eq!(comparable("300"), Some(300.0));
        assert_eq!(comparable("3.0e2"), Some(300.0));
        assert_eq!(comparable("300.000"), Some(300.0));
        assert_eq!(comparable("-0.0"), Some(0.0));
        assert!(comparable("-0").unwrap().is_sign_positive());
        assert_eq!(comparable("1e-3"), Some(0.001));
    }

    #[test]
    fn more_precision_than_a_double_is_not_comparable() {
        assert_eq!(comparable("0.30000000000000001"), None);
        assert_eq!(comparable("12345678901234567890"), None);
        assert_eq!(comparable("9007199254740993"), None);
        assert_eq!(comparable("9007199254740992"), Some(9007199254740992.0));
        assert_eq!(comparable("1e400"), None);
        assert_eq!(comparable("1.7976931348623157e308"), Some(f64::MAX));
    }
}
