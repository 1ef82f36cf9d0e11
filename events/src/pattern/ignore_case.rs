//! `equals-ignore-case` as event-ruler implements it: each pattern character may appear in the
//! value as its lower-case or its upper-case form (Java, `Locale.ROOT`, full mappings, so `ß`
//! also matches `SS`), and nothing else.

/// A pattern prepared for case-insensitive comparison.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Folded {
    /// Per pattern character, the spellings it accepts.
    alternatives: Vec<Vec<String>>,
    /// `key` of every accepted value, when one exists (see `key`).
    key: Option<String>,
    /// The pattern in lower case when it is ASCII: then each character accepts exactly its
    /// two ASCII cases, so values compare byte by byte without the general search.
    ascii: Option<String>,
}

// === impl Folded ===

impl Folded {
    pub(crate) fn new(pattern: &str) -> Folded {
        let mut alternatives = Vec::new();
        let mut key = Some(String::new());
        for c in pattern.chars() {
            // Java works on UTF-16 units; case mapping leaves a lone surrogate unchanged, so
            // characters outside the BMP only match themselves.
            let alts: Vec<String> = if (c as u32) > 0xFFFF {
                vec![c.to_string()]
            } else {
                let mut v = vec![c.to_lowercase().collect::<String>()];
                let upper: String = c.to_uppercase().collect();
                if upper != v[0] {
                    v.push(upper);
                }
                v
            };
            let k0 = self::key(&alts[0]);
            if alts.iter().any(|a| self::key(a) != k0) {
                key = None;
            }
            if let Some(k) = key.as_mut() {
                k.push_str(&k0);
            }
            alternatives.push(alts);
        }
        let ascii = pattern.is_ascii().then(|| pattern.to_ascii_lowercase());
        Folded {
            alternatives,
            key,
            ascii,
        }
    }

    /// The index key shared by every value this pattern accepts, if there is one.
    pub(crate) fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    pub(crate) fn equals(&self, value: &str) -> bool {
        if let Some(p) = &self.ascii {
            return value.as_bytes().eq_ignore_ascii_case(p.as_bytes());
        }
        self.ends(value).contains(&value.len())
    }

    pub(crate) fn is_prefix_of(&self, value: &str) -> bool {
        if let Some(p) = &self.ascii {
            return value
                .as_bytes()
                .get(..p.len())
                .is_some_and(|v| v.eq_ignore_ascii_case(p.as_bytes()));
        }
        !self.ends(value).is_empty()
    }

    pub(crate) fn is_suffix_of(&self, value: &str) -> bool {
        if let Some(p) = &self.ascii {
            let v = value.as_bytes();
            return v.len() >= p.len() && v[v.len() - p.len()..].eq_ignore_ascii_case(p.as_bytes());
        }
        let mut starts = vec![value.len()];
        for alts in self.alternatives.iter().rev() {
            let mut next = Vec::new();
            for &p in &starts {
                for a in alts {
                    if value[..p].ends_with(a.as_str()) {
                        next.push(p - a.len());
                    }
                }
            }
            next.sort_unstable();
            next.dedup();
            if next.is_empty() {
                return false;
            }
            starts = next;
        }
        true
    }

    /// Byte offsets in `value` at which a full match of the pattern can end.
    fn ends(&self, value: &str) -> Vec<usize> {
        let mut ends = vec![0];
        for alts in &self.alternatives {
            let mut next = Vec::new();
            for &p in &ends {
                for a in alts {
                    if value[p..].starts_with(a.as_str()) {
                        next.push(p + a.len());
                    }
                }
            }
            next.sort_unstable();
            next.dedup();
            if next.is_empty() {
                return next;
            }
            ends = next;
        }
        ends
    }
}

/// A case-folded form such that every value a pattern accepts has the pattern's key (checked
/// per pattern in `Folded::new`). It is only an index key; matches are always verified.
pub(crate) fn key(text: &str) -> String {
    let mut out = String::new();
    key_into(text, &mut out);
    out
}

/// Appends `key(text)` to `out` (matching reuses one buffer for every value).
pub(crate) fn key_into(text: &str, out: &mut String) {
    if text.is_ascii() {
        // Upper then lower case of an ASCII character is its ASCII lower case.
        let start = out.len();
        out.push_str(text);
        out[start..].make_ascii_lowercase();
    } else {
        out.extend(
            text.chars()
                .flat_map(char::to_uppercase)
                .flat_map(char::to_lowercase),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_case_alternatives() {
        let f = Folded::new("straße");
        assert!(f.equals("STRASSE"));
        assert!(f.equals("Straße"));
        assert!(!f.equals("STRAẞE"));
        assert_eq!(f.key(), Some(key("STRASSE").as_str()));
        assert!(Folded::new("ÉCOLE").equals("école"));
        assert!(Folded::new("EventB").is_prefix_of("eventbridge"));
        assert!(!Folded::new("EventB").is_prefix_of("xEventB"));
        assert!(Folded::new(".png").is_suffix_of("A.PNG"));
    }
}
