//! IP addresses and CIDR blocks, with event-ruler's parsing and its comparison quirks.
//!
//! event-ruler turns a range into a trie over upper-case hex digits (8 for IPv4, 32 for IPv6)
//! and walks a value's characters through it, accepting as soon as the value is strictly inside
//! the range. The walk sees an address's hex digits, but also the raw text of a JSON number, so
//! `0.0.0.0/0` matches `::1` (its first 8 digits fit), an IPv4 address can match an IPv6 range,
//! and the number `5` matches `0.0.0.0/0`. [`IpRange::accepts`] reproduces that walk.

/// An address range as event-ruler stores it: bottom and top hex-digit strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IpRange {
    bottom: Vec<u8>,
    top: Vec<u8>,
    open_bottom: bool,
    open_top: bool,
}

/// A parsed address: 4 or 16 bytes, as Java's `InetAddress` would give.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ip {
    V4(u32),
    V6(u128),
}

// === impl IpRange ===

impl IpRange {
    /// The range of one address, for exact-match pattern strings that look like an IP. Like
    /// event-ruler, `[x, x+1)` on the last digit, or `(x-1, x]` when that digit is `F`.
    pub(crate) fn single(text: &str) -> Option<IpRange> {
        let digits = hex(parse_ip(text)?);
        let last = *digits.last().expect("non-empty");
        let mut bottom = digits.clone();
        let mut top = digits;
        let n = top.len() - 1;
        if last == b'F' {
            bottom[n] = b'E';
            Some(IpRange {
                bottom,
                top,
                open_bottom: true,
                open_top: false,
            })
        } else {
            top[n] = if last == b'9' { b'A' } else { last + 1 };
            Some(IpRange {
                bottom,
                top,
                open_bottom: false,
                open_top: true,
            })
        }
    }

    /// A `cidr` match expression, with event-ruler's error texts.
    pub(crate) fn cidr(text: &str) -> Result<IpRange, String> {
        // Java's String.split drops trailing empty strings.
        let mut parts: Vec<&str> = text.split('/').collect();
        while parts.len() > 1 && parts.last() == Some(&"") {
            parts.pop();
        }
        if parts.len() != 2 {
            return Err("Malformed CIDR, one '/' required".to_owned());
        }
        let bits = java_parse_int(parts[1])
            .ok_or_else(|| "Malformed CIDR, mask bits must be an integer".to_owned())?;
        if bits < 0 {
            return Err("Malformed CIDR, mask bits must not be negative".to_owned());
        }
        let ip = if looks_like_ip(parts[0]) {
            parse_ip(parts[0]).ok_or_else(|| format!("Invalid IP address: {}", parts[0]))?
        } else {
            return Err(format!("Nonstandard IP address: {}", parts[0]));
        };
        let (low, high) = match ip {
            Ip::V4(v) => {
                if bits > 31 {
                    return Err("IPv4 mask bits must be < 32".to_owned());
                }
                let free = 32 - bits as u32;
                let mask = if free == 32 { 0 } else { u32::MAX << free };
                (Ip::V4(v & mask), Ip::V4(v | !mask))
            }
            Ip::V6(v) => {
                if bits > 127 {
                    return Err("IPv6 mask bits must be < 128".to_owned());
                }
                let free = 128 - bits as u32;
                let mask = if free == 128 { 0 } else { u128::MAX << free };
                (Ip::V6(v & mask), Ip::V6(v | !mask))
            }
        };
        Ok(IpRange {
            bottom: hex(low),
            top: hex(high),
            open_bottom: false,
            open_top: false,
        })
    }

    /// Whether an address lies in the range (see [`IpRange::accepts`]).
    pub(crate) fn contains(&self, ip: Ip) -> bool {
        self.accepts(&hex(ip))
    }

    /// event-ruler's range-trie walk over `text`: follow the digits shared by bottom and top,
    /// accept on a digit strictly between them, then follow one edge, accepting on a digit
    /// beyond it or on reaching its end (if that end is closed).
    pub(crate) fn accepts(&self, text: &[u8]) -> bool {
        let is_digit = |c: u8| c.is_ascii_digit() || (b'A'..=b'F').contains(&c);
        let last = self.bottom.len() - 1;
        // 0: on both edges, 1: on the bottom edge, 2: on the top edge.
        let mut edge = 0;
        for (i, &c) in text.iter().enumerate().take(self.bottom.len()) {
            if !is_digit(c) {
                return false;
            }
            let (b, t) = (self.bottom[i], self.top[i]);
            match edge {
                0 if b == t => {
                    if c != b {
                        return false;
                    }
                    if i == last {
                        return !self.open_bottom && !self.open_top;
                    }
                }
                0 => {
                    if c > b && c < t {
                        return true;
                    }
                    if c == b {
                        if i == last {
                            return !self.open_bottom;
                        }
                        edge = 1;
                    } else if c == t {
                        if i == last {
                            return !self.open_top;
                        }
                        edge = 2;
                    } else {
                        return false;
                    }
                }
                1 => {
                    if c > b {
                        return true;
                    }
                    if c != b {
                        return false;
                    }
                    if i == last {
                        return !self.open_bottom;
                    }
                }
                _ => {
                    if c < t {
                        return true;
                    }
                    if c != t {
                        return false;
                    }
                    if i == last {
                        return !self.open_top;
                    }
                }
            }
        }
        false
    }
}

/// An address as event-ruler's upper-case hex digits.
fn hex(ip: Ip) -> Vec<u8> {
    match ip {
        Ip::V4(v) => format!("{v:08X}").into_bytes(),
        Ip::V6(v) => format!("{v:032X}").into_bytes(),
    }
}

fn java_parse_int(text: &str) -> Option<i32> {
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// event-ruler only treats a string as an address if it matches one of these shapes.
fn looks_like_ip(text: &str) -> bool {
    let v4 = {
        let parts: Vec<&str> = text.split('.').collect();
        parts.len() == 4
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    };
    let v6 = text.contains(':') && text.bytes().all(|b| b.is_ascii_hexdigit() || b == b':');
    v4 || v6
}

/// Parses an address the way event-ruler does (shape check, then Java's literal parsing), or
/// `None` when event-ruler would not treat the text as an address.
pub(crate) fn parse_ip(text: &str) -> Option<Ip> {
    if !looks_like_ip(text) {
        return None;
    }
    if text.contains(':') {
        let v = parse_v6(text)?;
        // Java turns IPv4-mapped IPv6 addresses into IPv4 addresses.
        if v >> 32 == 0xffff {
            return Some(Ip::V4(v as u32));
        }
        return Some(Ip::V6(v));
    }
    let mut out = 0u32;
    for part in text.split('.') {
        // Java reads each part as decimal (leading zeros allowed), each at most 255.
        let trimmed = part.trim_start_matches('0');
        if trimmed.len() > 3 {
            return None;
        }
        let n: u32 = if trimmed.is_empty() {
            0
        } else {
            trimmed.parse().ok()?
        };
        if n > 255 {
            return None;
        }
        out = (out << 8) | n;
    }
    Some(Ip::V4(out))
}

fn parse_v6(text: &str) -> Option<u128> {
    let (head, tail, compressed) = match text.find("::") {
        Some(i) => (&text[..i], &text[i + 2..], true),
        None => (text, "", false),
    };
    if tail.contains("::") {
        return None;
    }
    let groups = |s: &str| -> Option<Vec<u16>> {
        if s.is_empty() {
            return Some(Vec::new());
        }
        s.split(':')
            .map(|g| {
                if g.is_empty() || g.len() > 4 {
                    None
                } else {
                    u16::from_str_radix(g, 16).ok()
                }
            })
            .collect()
    };
    let head = groups(head)?;
    let tail = groups(tail)?;
    let total = head.len() + tail.len();
    if (compressed && total > 7) || (!compressed && total != 8) {
        return None;
    }
    let mut all = head;
    all.resize(8 - tail.len(), 0);
    all.extend(tail);
    Some(all.iter().fold(0u128, |acc, g| (acc << 16) | *g as u128))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_errors_use_event_ruler_text() {
        assert_eq!(
            IpRange::cidr("hello").unwrap_err(),
            "Malformed CIDR, one '/' required"
        );
        assert_eq!(
            IpRange::cidr("bad-/64filter").unwrap_err(),
            "Malformed CIDR, mask bits must be an integer"
        );
        assert_eq!(
            IpRange::cidr("xx.11.xx/8").unwrap_err(),
            "Nonstandard IP address: xx.11.xx"
        );
        assert_eq!(
            IpRange::cidr("10.0.0.0/32").unwrap_err(),
            "IPv4 mask bits must be < 32"
        );
        assert_eq!(
            IpRange::cidr("::1/128").unwrap_err(),
            "IPv6 mask bits must be < 128"
        );
    }

    #[test]
    fn ranges() {
        let r = IpRange::cidr("10.0.0.0/24").unwrap();
        assert!(r.contains(parse_ip("10.0.0.255").unwrap()));
        assert!(!r.contains(parse_ip("10.0.1.0").unwrap()));
        let all = IpRange::cidr("0.0.0.0/0").unwrap();
        assert!(all.contains(parse_ip("::1").unwrap()));
        let v6 = IpRange::cidr("2001:db8::/32").unwrap();
        assert!(v6.contains(parse_ip("2001:DB8:0:0::ff").unwrap()));
        assert_eq!(parse_ip("010.0.0.1"), parse_ip("10.0.0.1"));
        assert_eq!(parse_ip("::ffff:a00:1"), Some(Ip::V4(0x0a00_0001)));
    }
}
