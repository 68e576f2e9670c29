//! The built-in rules: the key deny-list, secret patterns (on by default) and
//! personal-data patterns (opt-in).
//!
//! Each pattern names the literal *anchors* one of its matches must contain
//! (case ignored). All anchors go into one Aho-Corasick automaton, so a field
//! is scanned once, and a rule's regex runs only on a field where one of its
//! anchors was found. A rule with no anchor (IP addresses, phone numbers) runs
//! on every field that is looked at, which is why those are opt-in.

/// Normalized key names (lower case, `-` and `_` removed) whose values are
/// secrets. A key is denied when one of its `.`/`/`/`:`-separated segments,
/// normalized, ends with one of these: `db.password`, `X-Api-Key`,
/// `githubToken` and `aws_secret_access_key` are denied; `max_tokens` and
/// `author` are not.
pub const DENY_KEYS: &[&str] = &[
    "password",
    "passwd",
    "passphrase",
    "pwd",
    "secret",
    "token",
    "apikey",
    "authorization",
    "cookie",
    "privatekey",
    "credential",
    "credentials",
    "session",
    "sessionid",
    "accesskey",
    "secretkey",
    "signature",
];

/// Literals one of which every deny-listed key contains, however it is
/// spelt (case, `-`, `_`): what tells the prefilter a region may hold one.
///
/// They are chosen to start with letter triples that are rare in ordinary log
/// text (`ecret`, not `secret`, whose `sec` is in every "second"; `pikey`,
/// not `apikey`, whose `api` is in every URL path): the SIMD prefilter keys
/// on an anchor's first bytes, and each false lead costs a check. That
/// matters most for an anchor under four bytes (`pwd`), searched as it is;
/// longer ones are searched in a pair-hashed copy, where letters spread
/// (see `prefilter`).
const KEY_ANCHORS: &[&str] = &[
    "passw",
    "pass_w",
    "pass-w",
    "passphrase",
    "pwd",
    "ecret",
    "token",
    "pikey",
    "i_key",
    "i-key",
    "horiz",
    "cookie",
    "rivate",
    "edential",
    "ssion",
    "sskey",
    "ss_key",
    "ss-key",
    "gnatu",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The key deny-list: values of secret-named keys.
    Keys,
    /// A secret found by its shape, on by default.
    Secret,
    /// Personal data, off unless listed in `pii`.
    Pii,
}

/// How a rule finds its matches.
#[derive(Clone)]
pub enum Matcher {
    /// Keys only (no value pattern).
    Keys,
    /// A regex; `group` is the capture group replaced (0 = the whole match),
    /// and `accept` must approve the replaced text.
    Regex {
        pattern: &'static str,
        group: usize,
        accept: fn(&str) -> bool,
    },
    /// Card numbers: digit runs checked for issuer prefix, length and Luhn.
    Cards,
}

#[derive(Clone)]
pub struct Builtin {
    pub name: &'static str,
    pub kind: Kind,
    /// Literals (case ignored) one of which each match contains; empty means
    /// the rule runs on every field looked at.
    pub anchors: &'static [&'static str],
    pub matcher: Matcher,
}

pub(super) fn any(_: &str) -> bool {
    true
}

/// Every built-in rule: those below, then the prefixed-token families of
/// [`super::tokens`].
pub static BUILTINS: std::sync::LazyLock<Vec<Builtin>> = std::sync::LazyLock::new(|| {
    CORE.iter()
        .chain(super::tokens::FAMILIES)
        .cloned()
        .collect()
});

const CORE: &[Builtin] = &[
    Builtin {
        name: "secret_keys",
        kind: Kind::Keys,
        anchors: KEY_ANCHORS,
        matcher: Matcher::Keys,
    },
    Builtin {
        // `password=…`, `"token": "…"`, `Authorization: Bearer …`, query
        // parameters: the value after a secret-named key, in text.
        name: "secret_pairs",
        kind: Kind::Secret,
        anchors: KEY_ANCHORS,
        matcher: Matcher::Regex {
            pattern: r#"(?i)[a-z0-9_.-]*?(?:password|passwd|pass[_-]word|passphrase|pwd|secret|token|api[_-]?key|authorization|cookie|private[_-]?key|credentials?|session(?:[_-]?id)?|access[_-]?key|signature)["']?[ \t]*[=:][ \t]*((?:(?:bearer|basic|token)[ \t]+)?(?:"(?:[^"\\]|\\.)*"|'[^']*'|[^\s&,;"'}\]]+))"#,
            group: 1,
            accept: any,
        },
    },
    Builtin {
        name: "jwt",
        kind: Kind::Secret,
        // The payload's `.eyJ`: four bytes, so that it is searched in the
        // prefilter's pair-hashed copy (see `prefilter`).
        anchors: &[".eyJ"],
        matcher: Matcher::Regex {
            pattern: r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*",
            group: 0,
            accept: any,
        },
    },
    Builtin {
        name: "bearer",
        kind: Kind::Secret,
        anchors: &["bearer"],
        matcher: Matcher::Regex {
            pattern: r"(?i)\bbearer[ \t]+([A-Za-z0-9\-._~+/]{8,}=*)",
            group: 1,
            accept: looks_like_token,
        },
    },
    Builtin {
        name: "basic_auth",
        kind: Kind::Secret,
        anchors: &["basic"],
        matcher: Matcher::Regex {
            pattern: r"(?i)\bbasic[ \t]+([A-Za-z0-9+/]{4,}={0,2})",
            group: 1,
            accept: is_basic_credential,
        },
    },
    Builtin {
        name: "url_credentials",
        kind: Kind::Secret,
        anchors: &["://"],
        matcher: Matcher::Regex {
            pattern: r"(?i)\b[a-z][a-z0-9+.-]*://[^/\s:@]+:([^/\s@]+)@",
            group: 1,
            accept: any,
        },
    },
    Builtin {
        name: "aws_access_key",
        kind: Kind::Secret,
        // Access key ids (long-term AKIA, temporary ASIA, bearer-token
        // ABIA, context-specific ACCA); user, role and group ids (AIDA,
        // AROA, AGPA…) are identifiers, not credentials.
        anchors: &["AKIA", "ASIA", "ABIA", "ACCA"],
        matcher: Matcher::Regex {
            pattern: r"\b(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b",
            group: 0,
            accept: any,
        },
    },
    Builtin {
        name: "gcp_api_key",
        kind: Kind::Secret,
        anchors: &["AIza"],
        matcher: Matcher::Regex {
            pattern: r"\bAIza[0-9A-Za-z_-]{35}",
            group: 0,
            accept: any,
        },
    },
    Builtin {
        name: "gcp_oauth_token",
        kind: Kind::Secret,
        anchors: &["ya29."],
        matcher: Matcher::Regex {
            pattern: r"\bya29\.[0-9A-Za-z_-]{20,}",
            group: 0,
            accept: any,
        },
    },
    Builtin {
        name: "azure_storage_key",
        kind: Kind::Secret,
        anchors: &["ntkey=", "sskey="],
        matcher: Matcher::Regex {
            pattern: r"(?i)\b(?:AccountKey|SharedAccessKey)=([A-Za-z0-9+/]{20,}={0,2})",
            group: 1,
            accept: any,
        },
    },
    Builtin {
        name: "azure_sas_signature",
        kind: Kind::Secret,
        anchors: &["&sig=", "?sig="],
        matcher: Matcher::Regex {
            pattern: r"[?&]sig=([A-Za-z0-9%+/=]{16,})",
            group: 1,
            accept: any,
        },
    },
    Builtin {
        name: "github_token",
        kind: Kind::Secret,
        anchors: &["ghp_", "gho_", "ghu_", "ghs_", "ghr_", "ub_pat_"],
        matcher: Matcher::Regex {
            pattern: r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})",
            group: 0,
            accept: any,
        },
    },
    Builtin {
        name: "gitlab_token",
        kind: Kind::Secret,
        // Personal, deploy, runner, trigger, CI job, feed, incoming mail,
        // agent, OAuth application, SCIM and feature flag tokens (a
        // personal token may end in `.` and a routing checksum), and runner
        // registration tokens.
        anchors: &[
            "glpat-",
            "gldt-",
            "glrt-",
            "glptt-",
            "glcbt-",
            "glft-",
            "glimt-",
            "glagent-",
            "gloas-",
            "glsoat-",
            "glffct-",
            "GR1348941",
        ],
        matcher: Matcher::Regex {
            pattern: r"\b(?:gl(?:pat|dt|rt|ptt|cbt|ft|imt|agent|oas|soat|ffct)-[A-Za-z0-9_-]{20,}(?:\.[0-9a-z]{9}\b)?|GR1348941[A-Za-z0-9_-]{20,})",
            group: 0,
            accept: any,
        },
    },
    Builtin {
        name: "slack_token",
        kind: Kind::Secret,
        // Bot, user, app-level, legacy and configuration tokens (`xoxe`,
        // `xoxe.xoxb-`); webhook URLs are found by their `://`. The anchors
        // are four bytes, so that they are searched pair-hashed.
        anchors: &[
            "xoxa", "xoxb", "xoxp", "xoxo", "xoxs", "xoxr", "xoxe", "xapp-", "://",
        ],
        matcher: Matcher::Regex {
            pattern: r"\bxox[abposre](?:\.xox[bp])?-[A-Za-z0-9-]{10,}|\bxapp-[0-9]-[A-Za-z0-9-]{10,}|https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9/_+-]+",
            group: 0,
            accept: any,
        },
    },
    Builtin {
        name: "stripe_key",
        kind: Kind::Secret,
        anchors: &["k_live_", "k_test_", "k_prod_"],
        matcher: Matcher::Regex {
            pattern: r"\b[rs]k_(?:live|test|prod)_[A-Za-z0-9]{16,}",
            group: 0,
            accept: any,
        },
    },
    Builtin {
        name: PRIVATE_KEY,
        kind: Kind::Secret,
        anchors: &["-----begin"],
        matcher: Matcher::Regex {
            pattern: r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----(?s:.*?)(?:-----END[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|\z)",
            group: 0,
            accept: any,
        },
    },
    Builtin {
        name: "credit_card",
        kind: Kind::Secret,
        anchors: &[],
        matcher: Matcher::Cards,
    },
    Builtin {
        name: "email",
        kind: Kind::Pii,
        anchors: &["@"],
        matcher: Matcher::Regex {
            pattern: r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b",
            group: 0,
            accept: any,
        },
    },
    Builtin {
        name: "ipv4",
        kind: Kind::Pii,
        anchors: &[],
        matcher: Matcher::Regex {
            pattern: r"\b(?:[0-9]{1,3}\.){3}[0-9]{1,3}\b",
            group: 0,
            accept: is_ipv4,
        },
    },
    Builtin {
        name: "ipv6",
        kind: Kind::Pii,
        anchors: &[],
        matcher: Matcher::Regex {
            pattern: r"(?i)(?:[0-9a-f]{0,4}:){2,7}(?:[0-9a-f]{1,4}|:)(?:%[0-9a-z]+)?",
            group: 0,
            accept: is_ipv6,
        },
    },
    Builtin {
        name: "phone",
        kind: Kind::Pii,
        anchors: &[],
        matcher: Matcher::Regex {
            pattern: r"\+[1-9][0-9]{7,14}\b|(?:\+?1[ .-])?\(?\b[2-9][0-9]{2}\)?[ .-][0-9]{3}[ .-][0-9]{4}\b",
            group: 0,
            accept: any,
        },
    },
];

/// A bearer credential, not a word: has a digit or a token punctuation mark.
/// The name of the built-in rule for PEM private keys, which also follows a
/// key logged one line per record (see [`key_continues`]).
pub const PRIVATE_KEY: &str = "private_key";

/// Lines after a `BEGIN … PRIVATE KEY` line taken as the key's, at most: an
/// 8192-bit RSA key in PKCS#8 is about 75 lines of 64 characters.
pub const MAX_KEY_LINES: u16 = 256;

/// Whether `text` begins a PEM private key that it does not end: the lines
/// that follow in the same stream are the key's.
pub fn opens_private_key(text: &str) -> bool {
    let Some(begin) = text.rfind("-----BEGIN") else {
        return false;
    };
    let rest = &text[begin..];
    rest.contains("PRIVATE KEY") && !rest.contains("-----END")
}

/// What a line inside an open PEM private key is.
#[derive(Debug, PartialEq, Eq)]
pub enum KeyLine {
    /// Key material at these bytes: replace them, the key goes on.
    Body(usize, usize),
    /// Nothing to replace (a blank line), the key goes on.
    Blank,
    /// The `END` line, replaced from its start to the end of the marker.
    End(usize, usize),
    /// Not part of a key: the key was cut short, this line is ordinary.
    Other,
}

/// Classifies a line that follows an unfinished `BEGIN … PRIVATE KEY` line
/// in the same stream: base64 (the whole line, or its last word when a
/// logger prefixes each line), the `Proc-Type`/`DEK-Info` headers of an
/// encrypted key, blank lines, or the `END` line.
pub fn key_continues(line: &str) -> KeyLine {
    let trimmed = line.trim();
    if trimmed.is_empty() {
        return KeyLine::Blank;
    }
    let start = line.len() - line.trim_start().len();
    if let Some(end) = line.find("-----END") {
        let after = end + "-----END".len();
        let marker_end = line[after..]
            .find("-----")
            .map_or(line.len(), |at| after + at + 5);
        return if line[end..marker_end].contains("PRIVATE KEY") {
            KeyLine::End(start, marker_end)
        } else {
            KeyLine::Other
        };
    }
    for header in ["Proc-Type:", "DEK-Info:"] {
        if let Some(at) = line.find(header) {
            return KeyLine::Body(at, start + trimmed.len());
        }
    }
    let is_base64 = |word: &str| {
        word.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
    };
    let word_start = trimmed
        .char_indices()
        .rev()
        .find(|(_, c)| c.is_whitespace())
        .map_or(0, |(at, c)| at + c.len_utf8());
    let word = &trimmed[word_start..];
    // After a logger's prefix, a short word is key material only as the
    // key's padded last line.
    if is_base64(word) && (word_start == 0 || word.len() >= 16 || word.ends_with('=')) {
        let at = start + word_start;
        KeyLine::Body(at, at + word.len())
    } else {
        KeyLine::Other
    }
}

fn looks_like_token(text: &str) -> bool {
    text.bytes()
        .any(|b| b.is_ascii_digit() || b"-._~+/=".contains(&b))
}

/// `Basic` followed by base64 of `user:password`.
fn is_basic_credential(text: &str) -> bool {
    base64_decode(text).is_some_and(|decoded| decoded.contains(&b':'))
}

fn is_ipv4(text: &str) -> bool {
    text.parse::<std::net::Ipv4Addr>().is_ok()
}

fn is_ipv6(text: &str) -> bool {
    let address = text.split('%').next().unwrap_or(text);
    address.parse::<std::net::Ipv6Addr>().is_ok()
}

/// Standard base64 with optional padding; `None` if it is not base64.
pub(super) fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=');
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for b in text.bytes() {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

/// The fewest digits a card number has: the length of the run the
/// prefilter looks for.
const SPAN: usize = 13;

/// Whether `bytes` holds a run of 13 or more digits (single spaces or dashes
/// between them allowed): the cheap test before the card scan.
///
/// A run is made of candidate bytes (digits, spaces, dashes) and holds at
/// least 13 digits, so it spans at least 13 consecutive candidates. The
/// bytes are turned into candidate bitmasks eight at a time (SWAR), and only
/// a stretch of 13 or more candidates is looked at byte by byte.
pub fn has_digit_run(bytes: &[u8]) -> bool {
    let mut at = 0;
    // Consecutive candidates ending just before `at`.
    let mut streak = 0usize;
    while at < bytes.len() {
        let block = &bytes[at..bytes.len().min(at + 64)];
        let n = block.len();
        let mask = candidates(block);
        let full = if n == 64 { u64::MAX } else { (1u64 << n) - 1 };
        // Where `SPAN` candidates in a row start within the block, or a
        // streak from earlier blocks that this block's first bytes extend.
        let mut run = mask;
        for shift in [1, 2, 4, 5] {
            run &= run >> shift;
        }
        let leading = (!mask).trailing_zeros().min(n as u32) as usize;
        let found = if streak > 0 && streak + leading >= SPAN {
            Some(at - streak)
        } else if run != 0 {
            Some(at + run.trailing_zeros() as usize)
        } else {
            None
        };
        if let Some(start) = found {
            // The whole stretch of candidates around `start`.
            let mut end = start;
            while end < bytes.len() && is_candidate(bytes[end]) {
                end += 1;
            }
            if digit_run_in(&bytes[start..end]) {
                return true;
            }
            at = end;
            streak = 0;
            continue;
        }
        streak = if mask == full {
            streak + n
        } else {
            (mask << (64 - n)).leading_ones() as usize
        };
        at += n;
    }
    false
}

fn is_candidate(b: u8) -> bool {
    b.is_ascii_digit() || b == b' ' || b == b'-'
}

/// Bit `i` set where `block[i]` (at most 64 bytes) is a digit, a space or a
/// dash, eight bytes at a time.
fn candidates(block: &[u8]) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    const LOW: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    // 0x80 in each byte of `v` (ASCII) equal to `c`; no carry crosses bytes.
    let equal = |v: u64, c: u8| {
        let t = v ^ (ONES * c as u64);
        !(((t & LOW) + LOW) | t) & HIGH
    };
    let word_bits = |w: u64| {
        let ascii = !w & HIGH;
        let v = w & LOW;
        // v >= '0' and not v >= ':'; v <= 0x7f, so the sums stay in the byte.
        let digit = (v + ONES * 0x50) & !(v + ONES * 0x46) & HIGH;
        let hits = (digit | equal(v, b' ') | equal(v, b'-')) & ascii;
        // Byte i's 0x80 to bit i.
        ((hits >> 7).wrapping_mul(0x0102_0408_1020_4080)) >> 56
    };
    let mut mask = 0u64;
    let words = block.chunks_exact(8);
    let tail = words.remainder();
    let mut k = 0;
    for chunk in words {
        let w = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
        mask |= word_bits(w) << (8 * k);
        k += 1;
    }
    if !tail.is_empty() {
        let mut word = [0u8; 8];
        word[..tail.len()].copy_from_slice(tail);
        mask |= word_bits(u64::from_le_bytes(word)) << (8 * k);
    }
    mask
}

/// Whether a stretch of candidate bytes holds 13 digits in one run: digits,
/// with single spaces or dashes between them.
fn digit_run_in(stretch: &[u8]) -> bool {
    let mut digits = 0;
    for (i, &b) in stretch.iter().enumerate() {
        if b.is_ascii_digit() {
            digits += 1;
            if digits >= SPAN {
                return true;
            }
        } else if !(i > 0
            && stretch[i - 1].is_ascii_digit()
            && stretch.get(i + 1).is_some_and(u8::is_ascii_digit))
        {
            digits = 0;
        }
    }
    false
}

/// Byte ranges of card numbers in `text`: 13–19 digits, in groups separated by
/// single spaces or dashes, not inside a longer run of digits or letters,
/// with a known issuer prefix and length, passing Luhn.
pub fn find_cards(text: &str, out: &mut Vec<(usize, usize)>) {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if !bytes[i].is_ascii_digit() || (i > 0 && bytes[i - 1].is_ascii_alphanumeric()) {
            i += 1;
            continue;
        }
        // Extend over digits and single separators.
        let start = i;
        let mut end = i;
        let mut digits = [0u8; 19];
        let mut count = 0;
        let mut j = i;
        let mut too_long = false;
        while j < bytes.len() {
            let b = bytes[j];
            if b.is_ascii_digit() {
                if count == digits.len() {
                    too_long = true;
                    break;
                }
                digits[count] = b - b'0';
                count += 1;
                j += 1;
                end = j;
            } else if (b == b' ' || b == b'-')
                && j + 1 < bytes.len()
                && bytes[j + 1].is_ascii_digit()
                && bytes[j - 1].is_ascii_digit()
            {
                j += 1;
            } else {
                break;
            }
        }
        let followed_by_word = bytes.get(end).is_some_and(|b| b.is_ascii_alphanumeric());
        if !too_long && !followed_by_word && is_card(&digits[..count]) {
            out.push((start, end));
        }
        i = j.max(i + 1);
        // Skip the rest of an over-long run.
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
    }
}

fn is_card(digits: &[u8]) -> bool {
    let len = digits.len();
    if !(13..=19).contains(&len) {
        return false;
    }
    let prefix = |n: usize| {
        digits[..n]
            .iter()
            .fold(0u32, |acc, &d| acc * 10 + u32::from(d))
    };
    let issuer_length_ok = match digits[0] {
        4 => matches!(len, 13 | 16 | 19),                     // Visa
        5 => (51..=55).contains(&prefix(2)) && len == 16,     // Mastercard
        2 => (2221..=2720).contains(&prefix(4)) && len == 16, // Mastercard 2-series
        3 => match prefix(2) {
            34 | 37 => len == 15,                                                 // Amex
            35 => (3528..=3589).contains(&prefix(4)) && (16..=19).contains(&len), // JCB
            36 | 38 | 39 => (14..=19).contains(&len),                             // Diners
            30 => (300..=305).contains(&prefix(3)) && (14..=19).contains(&len),   // Diners
            _ => false,
        },
        6 => {
            (prefix(4) == 6011
                || prefix(2) == 65
                || (644..=649).contains(&prefix(3))
                || prefix(2) == 62)
                && (16..=19).contains(&len) // Discover, UnionPay
        }
        _ => false,
    };
    issuer_length_ok && luhn(digits)
}

fn luhn(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 1 {
                let doubled = d * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// The longest deny-list entry (normalized) an operator may add: suffix
/// checks need only this many trailing bytes of a key.
pub const MAX_DENY_KEY: usize = 128;

/// Whether `key` is deny-listed: one of its `.`/`/`/`:`-separated segments,
/// normalized, ends with an entry of [`DENY_KEYS`] or of `extra`; an `extra`
/// entry that itself holds separators is compared with the whole key.
/// Allocation-free: it runs for every attribute of every record looked at.
pub fn key_denied(key: &str, extra: &[String]) -> bool {
    let mut whole = Tail::default();
    let mut segment = Tail::default();
    let ends_with_entry = |tail: &Tail, with_separators: bool| {
        let tail = tail.as_slice();
        (!with_separators && DENY_KEYS.iter().any(|d| tail.ends_with(d.as_bytes())))
            || extra
                .iter()
                .filter(|d| !with_separators || d.contains(['.', '/', ':', ' ']))
                .any(|d| tail.ends_with(d.as_bytes()))
    };
    for b in key.bytes() {
        match b {
            b'-' | b'_' => {}
            b'.' | b'/' | b':' | b' ' => {
                if ends_with_entry(&segment, false) {
                    return true;
                }
                segment = Tail::default();
                whole.push(b);
            }
            _ => {
                segment.push(b.to_ascii_lowercase());
                whole.push(b.to_ascii_lowercase());
            }
        }
    }
    ends_with_entry(&segment, false) || ends_with_entry(&whole, true)
}

/// The last [`MAX_DENY_KEY`] bytes pushed.
struct Tail {
    buf: [u8; MAX_DENY_KEY],
    len: usize,
}

impl Default for Tail {
    fn default() -> Self {
        Self {
            buf: [0; MAX_DENY_KEY],
            len: 0,
        }
    }
}

impl Tail {
    fn push(&mut self, b: u8) {
        if self.len == self.buf.len() {
            self.buf.copy_within(1.., 0);
            self.len -= 1;
        }
        self.buf[self.len] = b;
        self.len += 1;
    }

    fn as_slice(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// The longest run of letters and digits in `key`: the prefilter anchor of
/// an operator's deny-list entry.
pub fn key_anchor(key: &str) -> &str {
    key.split(|c: char| !c.is_alphanumeric())
        .max_by_key(|run| run.len())
        .unwrap_or(key)
}
