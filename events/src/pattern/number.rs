//! Numbers as event-ruler compares them.
//!
//! A number takes part in numeric comparison only if its decimal text equals, as a decimal, the
//! shortest decimal form of the nearest double (Java's `BigDecimal.valueOf(double)`); anything
//! else (more precision than a double, or out of range) is compared by its literal text only.
//! Zero is always positive zero, because the decimal reading has no negative zero.

use std::fmt::Write;

/// The double a JSON number stands for, if it is exactly comparable.
pub(crate) fn comparable(text: &str) -> Option<f64> {
    let Some(short) = Short::parse(text.as_bytes()) else {
        return spelled(text);
    };
    if short.digits == 0 {
        return Some(0.0);
    }
    let value = match short.value() {
        Some(v) => v,
        None => text.parse().ok()?,
    };
    let (mut digits, mut exponent) = (short.digits, -i64::from(short.fraction));
    while digits % 10 == 0 {
        digits /= 10;
        exponent += 1;
    }
    // As in `spelled`; a short number's magnitude is within 1e-19..1e19, a normal double.
    let significant = digits.ilog10() as usize + 1;
    if significant > MAX_DIGITS {
        return None;
    }
    if significant <= f64::DIGITS as usize {
        return Some(value);
    }
    match is_shortest(digits, significant, exponent, value) {
        Some(shortest) => shortest.then_some(value),
        None => spelled(text),
    }
}

/// A number written without exponent and with at most [`SHORT_DIGITS`] digits (most numbers
/// in events): `±digits × 10^-fraction`. Taken apart in one pass, where the general reading
/// ([`spelled`]) looks at the text several times.
struct Short {
    negative: bool,
    digits: u64,
    fraction: u32,
}

/// Digits a [`Short`] may have: every such integer fits in a `u64`.
const SHORT_DIGITS: usize = 19;

/// Powers of ten that are doubles exactly.
const EXACT_POWERS: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

impl Short {
    /// `text` as a [`Short`], if it is one (as JSON spells numbers: a sign, digits, and
    /// maybe a point and more digits).
    fn parse(text: &[u8]) -> Option<Short> {
        let (negative, unsigned) = match text.split_first() {
            Some((b'-', rest)) => (true, rest),
            _ => (false, text),
        };
        let (int, fraction) = match unsigned.iter().position(|&c| c == b'.') {
            Some(dot) if dot + 1 < unsigned.len() => (&unsigned[..dot], &unsigned[dot + 1..]),
            Some(_) => return None,
            None => (unsigned, &[][..]),
        };
        if int.is_empty() || int.len() + fraction.len() > SHORT_DIGITS {
            return None;
        }
        let mut digits = 0u64;
        for &c in int.iter().chain(fraction) {
            let d = c.wrapping_sub(b'0');
            if d > 9 {
                return None;
            }
            digits = digits * 10 + u64::from(d);
        }
        Some(Short {
            negative,
            digits,
            fraction: fraction.len() as u32,
        })
    }

    /// The nearest double, when Clinger's fast path gives it: both operands of the division
    /// are exact doubles, so the quotient is correctly rounded, as parsing would give it.
    fn value(&self) -> Option<f64> {
        if self.digits > 1 << 53 {
            return None;
        }
        let magnitude = self.digits as f64 / *EXACT_POWERS.get(self.fraction as usize)?;
        Some(if self.negative { -magnitude } else { magnitude })
    }
}

/// [`comparable`] for any spelling.
fn spelled(text: &str) -> Option<f64> {
    let value: f64 = text.parse().ok()?;
    if !value.is_finite() {
        return None;
    }
    let decimal = Decimal::parse(text)?;
    if value == 0.0 {
        // `-0`, `0.0e5` and friends: the decimal value is zero, and only +0 is used.
        return Some(0.0);
    }
    let significant = decimal.significant();
    if significant > MAX_DIGITS {
        // No double's shortest form has more significant digits.
        return None;
    }
    // Distinct decimals of at most 15 significant digits (`f64::DIGITS`) have distinct nearest
    // doubles in the normal range, so such a text is the shortest form of its double: no need
    // to format it (most numbers in events take this path).
    if significant <= f64::DIGITS as usize && (1e-300..=1e300).contains(&value.abs()) {
        return Some(value);
    }
    let mut digits = 0u64;
    for d in decimal.digits() {
        digits = digits * 10 + u64::from(d - b'0');
    }
    let exponent = decimal.point - significant as i64;
    if let Some(shortest) = is_shortest(digits, significant, exponent, value) {
        return shortest.then_some(value);
    }
    let mut shortest = StackText::default();
    if write!(shortest, "{value:e}").is_err() {
        return None;
    }
    Decimal::parse(shortest.as_str())?
        .same_value(&decimal)
        .then_some(value)
}

/// Whether `digits × 10^p`, with `n` significant digits (at most [`MAX_DIGITS`]; `value`, a
/// non-zero double, is the nearest double to it) is the shortest form of `value` — the fewest
/// significant digits that read back as `value`, the closest to it among those — decided in
/// exact integer arithmetic; `None` when that does not fit in 128 bits or near the edges this
/// does not handle (then formatting decides).
///
/// With `n` significant digits, `decimal` is the shortest form exactly when neither
/// neighbouring decimal of `n - 1` digits reads back as `value` (if none does, no shorter
/// decimal does: the values reading back as `value` form an interval around `decimal`), and
/// neither neighbouring `n`-digit decimal that reads back as `value` is closer to it.
fn is_shortest(digits: u64, n: usize, p: i64, value: f64) -> Option<bool> {
    let bits = value.abs().to_bits();
    let biased = (bits >> 52) as i64;
    if biased == 0 || bits & ((1 << 52) - 1) == 0 {
        // Subnormal, or a power of two (the interval below it is narrower).
        return None;
    }
    let m = u128::from(bits & ((1 << 52) - 1) | 1 << 52);
    let e = biased - 1075;
    // Away from a power of ten, where the `n`-digit spacing changes.
    let low = 10u64.checked_pow(u32::try_from(n).ok()?.checked_sub(1)?)?;
    if digits <= low + 1 || digits.checked_add(1)? >= low.checked_mul(10)? {
        return None;
    }
    // Everything times 2^a × 10^b, which makes every quantity below an integer.
    let a = u32::try_from((1 - e).max(0)).ok()?;
    let b = u32::try_from((-p).max(0)).ok()?;
    let pow2 = |k: u32| 1u128.checked_shl(k).filter(|_| k < 127);
    let pow10 = |k: i64| 10u128.checked_pow(u32::try_from(k).ok()?);
    let ten_b = pow10(b.into())?;
    let v = m
        .checked_mul(pow2(u32::try_from(e.max(1)).ok()?)?)?
        .checked_mul(ten_b)?;
    let half = pow2(u32::try_from(e.max(1) - 1).ok()?)?.checked_mul(ten_b)?;
    let step = pow10(p + i64::from(b))?.checked_mul(pow2(a)?)?;
    let d = u128::from(digits).checked_mul(step)?;
    let coarse = step.checked_mul(10)?;
    let below = u128::from(digits / 10).checked_mul(coarse)?;
    let above = below.checked_add(coarse)?;
    let even = m % 2 == 0;
    let reads_back = |x: u128| {
        let off = x.abs_diff(v);
        off < half || (off == half && even)
    };
    if reads_back(below) || reads_back(above) {
        return Some(false);
    }
    let off = d.abs_diff(v);
    for neighbour in [d - step, d.checked_add(step)?] {
        if reads_back(neighbour) {
            let other = neighbour.abs_diff(v);
            if other == off {
                return None;
            }
            if other < off {
                return Some(false);
            }
        }
    }
    Some(true)
}

/// Most significant digits a double's shortest decimal form has.
const MAX_DIGITS: usize = 17;

/// A decimal text taken apart without allocating: value = ±0.(significant digits) ×
/// 10^`point`, the significant digits being `mantissa[first..=last]` without its `.`.
struct Decimal<'a> {
    negative: bool,
    mantissa: &'a [u8],
    /// Where the first and last non-zero digits are; `None` for zero.
    span: Option<(usize, usize)>,
    dot: Option<usize>,
    point: i64,
}

impl<'a> Decimal<'a> {
    /// `None` when the exponent is not an `i64`, or the mantissa has other characters than
    /// digits and a point (no such text spells a double's shortest form).
    fn parse(text: &'a str) -> Option<Decimal<'a>> {
        let (negative, unsigned) = match text.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, text),
        };
        let bytes = unsigned.as_bytes();
        let (mantissa, exponent) = match bytes.iter().position(|&c| c | 0x20 == b'e') {
            Some(i) => (&bytes[..i], unsigned[i + 1..].parse::<i64>().ok()?),
            None => (bytes, 0),
        };
        let (mut dot, mut first, mut last) = (None, None, 0);
        for (i, &c) in mantissa.iter().enumerate() {
            match c {
                b'1'..=b'9' => {
                    first.get_or_insert(i);
                    last = i;
                }
                b'0' => {}
                b'.' => dot = Some(i),
                _ => return None,
            }
        }
        let span = first.map(|f| (f, last));
        let int_digits = dot.unwrap_or(mantissa.len()) as i64;
        let leading = first.map_or(0, |f| f - usize::from(dot.is_some_and(|d| d < f))) as i64;
        Some(Decimal {
            negative,
            mantissa,
            span,
            dot,
            point: int_digits.saturating_add(exponent).saturating_sub(leading),
        })
    }

    /// The significant digits (none for zero).
    fn digits(&self) -> impl Iterator<Item = u8> + '_ {
        let run = self.span.map_or(&[][..], |(f, l)| &self.mantissa[f..=l]);
        run.iter().copied().filter(|&c| c != b'.')
    }

    fn significant(&self) -> usize {
        match self.span {
            None => 0,
            Some((f, l)) => l - f + 1 - usize::from(self.dot.is_some_and(|d| f < d && d < l)),
        }
    }

    /// Whether both texts spell the same decimal value (all zeros are the same).
    fn same_value(&self, other: &Decimal) -> bool {
        match (self.span, other.span) {
            (None, None) => true,
            (Some(_), Some(_)) => {
                self.negative == other.negative
                    && self.point == other.point
                    && self.significant() == other.significant()
                    && self.digits().zip(other.digits()).all(|(a, b)| a == b)
            }
            _ => false,
        }
    }
}

/// A short text formatted on the stack (a double's shortest `{:e}` form takes at most 25
/// bytes).
struct StackText {
    buf: [u8; 40],
    len: usize,
}

impl Default for StackText {
    fn default() -> Self {
        StackText {
            buf: [0; 40],
            len: 0,
        }
    }
}

impl StackText {
    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default()
    }
}

impl Write for StackText {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        let room = self.buf.get_mut(self.len..end).ok_or(std::fmt::Error)?;
        room.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{comparable, is_shortest, spelled, Decimal};

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
        assert_eq!(comparable("-122.42916360922355"), Some(-122.42916360922355));
        assert_eq!(
            comparable("-122.429163609223550"),
            Some(-122.42916360922355)
        );
        assert_eq!(comparable("0e99999999999999999999"), None);
        assert_eq!(comparable("5e-324"), Some(5e-324));
    }

    #[test]
    fn shortest_form_without_formatting() {
        let decide = |text: &str| {
            let value: f64 = text.parse().unwrap();
            let decimal = Decimal::parse(text).unwrap();
            let digits = decimal
                .digits()
                .fold(0, |n, d| n * 10 + u64::from(d - b'0'));
            let n = decimal.significant();
            is_shortest(digits, n, decimal.point - n as i64, value)
        };
        assert_eq!(decide("-122.42916360922355"), Some(true));
        assert_eq!(decide("37.729900216217324"), Some(true));
        // A shorter form reads back as the same double.
        assert_eq!(decide("0.30000000000000001"), Some(false));
        assert_eq!(decide("-122.429163609223550"), Some(true));
        for text in [
            "-122.42916360922355",
            "0.1",
            "123.456",
            "37.729900216217324",
        ] {
            let value: f64 = text.parse().unwrap();
            let shortest = format!("{value:e}");
            assert!(Decimal::parse(&shortest)
                .unwrap()
                .same_value(&Decimal::parse(text).unwrap()));
        }
    }

    #[test]
    fn short_numbers_read_as_any_spelling_is() {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut texts: Vec<String> = [
            "0",
            "-0",
            "0.000",
            "1",
            "-1.50",
            "9007199254740992",
            "9007199254740993",
            "9007199254740993.0",
            "0.30000000000000001",
            "0.1000000000000000055511151231257827",
            "1234567890123456789",
            "12345678901234567890",
            "0.0000000000000000001",
            "-122.41029160000001",
            "-122.429163609223550",
            "37.729900216217324",
            "100000000000000000",
            "1.",
            ".5",
            "-.5",
            "-",
            "01",
            "+1",
            "1.5.2",
            "1e5",
            "-0.0e-3",
            "12a",
        ]
        .iter()
        .map(|t| t.to_string())
        .collect();
        for _ in 0..100_000 {
            // Shortest forms of random doubles of every size a short number has, and the same
            // with the last digit moved or a zero added.
            let bits = next();
            let v = f64::from_bits(bits >> 2 | 0x3c00_0000_0000_0000)
                * [1.0, -1.0][(bits & 1) as usize];
            let v = v * 10f64.powi((next() % 36) as i32 - 18);
            let text = format!("{v}");
            if text.contains('e') {
                continue;
            }
            let mut moved = text.clone().into_bytes();
            if let Some(last) = moved
                .last_mut()
                .filter(|d| d.is_ascii_digit() && **d < b'9')
            {
                *last += 1;
            }
            texts.push(format!("{text}0"));
            texts.push(String::from_utf8(moved).unwrap());
            texts.push(text);
        }
        for t in &texts {
            assert_eq!(
                comparable(t).map(f64::to_bits),
                spelled(t).map(f64::to_bits),
                "{t}"
            );
        }
    }
}
