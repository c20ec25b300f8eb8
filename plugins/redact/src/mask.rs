//! Finding and masking emails and payment card numbers in text, without allocating for
//! text that holds neither.

/// What to look for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Patterns {
    /// `local@domain.tld`.
    pub emails: bool,
    /// 13 to 19 digits, with single spaces or dashes between groups, that pass the Luhn
    /// check.
    pub cards: bool,
}

/// `text` with every match replaced by `mask`, or None when nothing matched.
pub fn mask(text: &str, patterns: Patterns, mask: &str) -> Option<String> {
    let bytes = text.as_bytes();
    // Most log lines hold neither: decide that in one pass.
    let maybe_email = patterns.emails && bytes.contains(&b'@');
    let maybe_card = patterns.cards && bytes.iter().filter(|b| b.is_ascii_digit()).count() >= 13;
    if !maybe_email && !maybe_card {
        return None;
    }
    let mut spans = Vec::new();
    if maybe_email {
        email_spans(bytes, &mut spans);
    }
    if maybe_card {
        card_spans(bytes, &mut spans);
    }
    if spans.is_empty() {
        return None;
    }
    spans.sort_unstable();
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (start, end) in spans {
        if start < at {
            continue; // overlaps the one before
        }
        out.push_str(&text[at..start]);
        out.push_str(mask);
        at = end;
    }
    out.push_str(&text[at..]);
    Some(out)
}

fn is_local(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"._%+-".contains(&b)
}

fn is_domain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'.' || b == b'-'
}

fn email_spans(bytes: &[u8], spans: &mut Vec<(usize, usize)>) {
    for (at, _) in bytes.iter().enumerate().filter(|(_, b)| **b == b'@') {
        let start = bytes[..at]
            .iter()
            .rposition(|&b| !is_local(b))
            .map_or(0, |p| p + 1);
        let mut end = at
            + 1
            + bytes[at + 1..]
                .iter()
                .take_while(|&&b| is_domain(b))
                .count();
        while end > at + 1 && !bytes[end - 1].is_ascii_alphanumeric() {
            end -= 1; // a trailing dot ends a sentence, not the domain
        }
        let domain = &bytes[at + 1..end];
        let has_tld = domain
            .iter()
            .rposition(|&b| b == b'.')
            .is_some_and(|dot| dot > 0 && domain.len() - dot > 2);
        if start < at && has_tld {
            spans.push((start, end));
        }
    }
}

fn card_spans(bytes: &[u8], spans: &mut Vec<(usize, usize)>) {
    let mut i = 0;
    while i < bytes.len() {
        if !bytes[i].is_ascii_digit() || (i > 0 && bytes[i - 1].is_ascii_alphanumeric()) {
            i += 1;
            continue;
        }
        // Digits with single separators between them.
        let start = i;
        let mut digits = Vec::with_capacity(19);
        let mut end = i;
        let mut j = i;
        while j < bytes.len() && digits.len() < 19 {
            match bytes[j] {
                b'0'..=b'9' => {
                    digits.push(bytes[j] - b'0');
                    end = j + 1;
                    j += 1;
                }
                b' ' | b'-' if j + 1 < bytes.len() && bytes[j + 1].is_ascii_digit() => j += 1,
                _ => break,
            }
        }
        let followed_by_digit = bytes.get(end).is_some_and(u8::is_ascii_digit);
        if (13..=19).contains(&digits.len()) && !followed_by_digit && luhn(&digits) {
            spans.push((start, end));
            i = end;
        } else {
            i = end.max(i + 1);
        }
    }
}

fn luhn(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(n, &d)| {
            let d = u32::from(d);
            if n % 2 == 1 {
                let doubled = d * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOTH: Patterns = Patterns {
        emails: true,
        cards: true,
    };

    #[test]
    fn emails_and_cards_are_masked_and_the_rest_kept() {
        assert_eq!(
            mask(
                "user jane.doe+x@mail.example.com paid with 4111 1111 1111 1111.",
                BOTH,
                "****"
            )
            .as_deref(),
            Some("user **** paid with ****.")
        );
        assert_eq!(
            mask("card=5500-0000-0000-0004 ok", BOTH, "[card]").as_deref(),
            Some("card=[card] ok")
        );
        assert_eq!(
            mask("contact: a@b.io.", BOTH, "*").as_deref(),
            Some("contact: *.")
        );
    }

    #[test]
    fn lookalikes_are_left_alone() {
        assert_eq!(
            mask("order 4111111111111112 failed", BOTH, "*"),
            None,
            "fails Luhn"
        );
        assert_eq!(
            mask("trace 41111111111111111111111", BOTH, "*"),
            None,
            "too long"
        );
        assert_eq!(
            mask("@here and user@localhost", BOTH, "*"),
            None,
            "no domain"
        );
        assert_eq!(mask("plain text", BOTH, "*"), None);
        let cards_only = Patterns {
            emails: false,
            cards: true,
        };
        assert_eq!(mask("a@b.io", cards_only, "*"), None);
    }
}
