//! The prefilter: whether a region holds an anchor of any rule, answered
//! with SIMD (Teddy) over a lower-cased copy of the region, a chunk at a
//! time on the stack.
//!
//! Teddy keys each anchor on the nibbles of its first three or four bytes,
//! eight buckets to a searcher; a position whose bytes fit a bucket's
//! nibbles is a lead, checked against the bucket's anchors. Lower-case
//! letters all have the high nibble 6 or 7, so on plain text the leads of a
//! bucket holding a few anchors pile up, and a searcher only stays fast with
//! about sixteen anchors; every further sixteen cost another pass over the
//! text (about 130 µs per MB here). With the hundred and fifty anchors of
//! the token families that would have tripled the cost of clean lines.
//!
//! So anchors of four bytes or more are searched in a *pair-hashed* copy:
//! byte `i` of it mixes bytes `i` and `i + 1` of the lower-cased text
//! ([`mix`]), which spreads letters over all sixteen high and low nibbles.
//! A bucket of four anchors then stays sparse, a searcher holds 32 of them,
//! and a pass over pair-hashed text with no leads costs about half of one
//! over plain text (measured on the bench's log lines: 155 anchors in five
//! hashed searchers plus sixteen short ones cost 508 µs per MB, the 47
//! anchors before them in three plain searchers 470). Two different pairs
//! can hash alike, so a hashed match is checked against the lower-cased
//! bytes before it counts. Anchors shorter than four bytes (`pwd`, `://`,
//! `hf_`…) have too few pairs to hash and are searched as they are, in
//! their own plain searcher: the fewer of them the better.
//!
//! Text shorter than 64 bytes (most attribute and label values) goes to one
//! DFA of every anchor instead: on text that short, each SIMD searcher
//! would fall back to Rabin-Karp, pass after pass.

use aho_corasick::{Span, packed};

/// Byte `i` of the pair-hashed copy, from bytes `i` and `i + 1` of the
/// lower-cased text: the second byte's nibbles are swapped into the first's
/// (a letter's low nibble is the varied one), and a shift breaks the
/// symmetry of a plain XOR. Written so that the loop over a chunk
/// vectorizes.
fn mix(a: u8, b: u8) -> u8 {
    a ^ b.rotate_left(4) ^ (b >> 1)
}

/// A searcher of pair-hashed anchors and the anchors themselves, to check a
/// hashed match against the text.
struct Hashed {
    searcher: packed::Searcher,
    anchors: Vec<Vec<u8>>,
}

impl Hashed {
    fn find(&self, low: &[u8], pairs: &[u8]) -> bool {
        let mut at = 0;
        while let Some(m) = self.searcher.find_in(pairs, Span::from(at..pairs.len())) {
            let start = m.start();
            if self.anchors.iter().any(|a| low[start..].starts_with(a)) {
                return true;
            }
            at = start + 1;
        }
        false
    }
}

pub(super) struct Prefilter {
    /// Every anchor in one DFA, for text shorter than [`Self::SHORT`]:
    /// attribute values and label values, mostly. On text that short the
    /// SIMD searchers fall back to Rabin-Karp, each on its own pass.
    short: aho_corasick::AhoCorasick,
    /// Anchors shorter than [`Self::HASHED`], searched as they are.
    plain: Vec<packed::Searcher>,
    /// The other anchors, in groups of at most [`Self::GROUP`].
    hashed: Vec<Hashed>,
    /// The longest anchor less one: how much consecutive chunks overlap.
    overlap: usize,
}

impl Prefilter {
    const CHUNK: usize = 4096;

    /// Text shorter than this is searched with the DFA of every anchor, one
    /// byte at a time; longer text with the SIMD searchers.
    const SHORT: usize = 64;

    /// The shortest anchor searched in the pair-hashed copy: three pairs,
    /// so that a bucket's fingerprint spans three hashed bytes.
    const HASHED: usize = 4;

    /// Anchors per searcher: four to a bucket, the most that still keeps a
    /// bucket's nibbles sparse in hashed text, and the most before Teddy
    /// switches to its slower sixteen-bucket form. Plain searchers take
    /// sixteen (two to a bucket).
    const GROUP: usize = 32;
    const PLAIN_GROUP: usize = 16;

    /// `None` where Teddy is not available (no SIMD, too long anchors).
    pub(super) fn new(anchors: &[String]) -> Option<Self> {
        let longest = anchors.iter().map(String::len).max()?;
        if longest >= 256 {
            return None;
        }
        // Shortest first: a searcher's fingerprint is as long as its
        // shortest anchor allows, so anchors of one length go together.
        let mut sorted: Vec<&[u8]> = anchors.iter().map(|a| a.as_bytes()).collect();
        sorted.sort_by_key(|a| a.len());
        let split = sorted.partition_point(|a| a.len() < Self::HASHED);
        let build = |patterns: &mut dyn Iterator<Item = Vec<u8>>| {
            packed::Config::new()
                .heuristic_pattern_limits(false)
                .builder()
                .extend(patterns)
                .build()
        };
        let plain = sorted[..split]
            .chunks(Self::PLAIN_GROUP)
            .map(|group| build(&mut group.iter().map(|a| a.to_vec())))
            .collect::<Option<Vec<_>>>()?;
        let hashed = sorted[split..]
            .chunks(Self::GROUP)
            .map(|group| {
                let searcher = build(
                    &mut group
                        .iter()
                        .map(|a| a.windows(2).map(|pair| mix(pair[0], pair[1])).collect()),
                )?;
                Some(Hashed {
                    searcher,
                    anchors: group.iter().map(|a| a.to_vec()).collect(),
                })
            })
            .collect::<Option<Vec<_>>>()?;
        let short = aho_corasick::AhoCorasick::builder()
            .kind(Some(aho_corasick::AhoCorasickKind::DFA))
            .build(&sorted)
            .ok()?;
        Some(Self {
            short,
            plain,
            hashed,
            overlap: longest - 1,
        })
    }

    /// Whether the lower-cased `low` holds an anchor; `pairs` is room for
    /// its pair-hashed copy.
    fn find(&self, low: &[u8], pairs: &mut [u8]) -> bool {
        if low.len() < Self::SHORT {
            return self.short.is_match(low);
        }
        if self.plain.iter().any(|s| s.find(low).is_some()) {
            return true;
        }
        if low.len() < Self::HASHED || self.hashed.is_empty() {
            return false;
        }
        let pairs = &mut pairs[..low.len() - 1];
        for ((to, &a), &b) in pairs.iter_mut().zip(low).zip(&low[1..]) {
            *to = mix(a, b);
        }
        self.hashed.iter().any(|h| h.find(low, pairs))
    }

    /// Whether any region holds an anchor (or, with `cards`, a digit run).
    /// Short regions are lower-cased into one buffer, a newline between
    /// them (no anchor holds one), and searched together.
    pub(super) fn is_match_any(
        &self,
        regions: &mut dyn Iterator<Item = &[u8]>,
        cards: bool,
    ) -> bool {
        SCRATCH.with_borrow_mut(|Scratch { low: chunk, pairs }| {
            chunk.resize(Self::CHUNK, 0);
            pairs.resize(Self::CHUNK, 0);
            let mut len = 0;
            for region in regions {
                if cards && super::rules::has_digit_run(region) {
                    return true;
                }
                if region.len() >= Self::CHUNK / 4 {
                    if len > 0 && self.find(&chunk[..len], pairs) {
                        return true;
                    }
                    len = 0;
                    if self.scan_long(region, chunk, pairs) {
                        return true;
                    }
                    continue;
                }
                if len + region.len() + 1 > Self::CHUNK {
                    if self.find(&chunk[..len], pairs) {
                        return true;
                    }
                    len = 0;
                }
                for (to, from) in chunk[len..len + region.len()].iter_mut().zip(region) {
                    *to = from.to_ascii_lowercase();
                }
                len += region.len();
                chunk[len] = b'\n';
                len += 1;
            }
            len > 0 && self.find(&chunk[..len], pairs)
        })
    }

    /// A long region, a chunk at a time, consecutive chunks overlapping by
    /// the longest anchor less one.
    fn scan_long(&self, bytes: &[u8], chunk: &mut [u8], pairs: &mut [u8]) -> bool {
        let mut start = 0;
        loop {
            let end = (start + Self::CHUNK).min(bytes.len());
            let len = end - start;
            for (to, from) in chunk[..len].iter_mut().zip(&bytes[start..end]) {
                *to = from.to_ascii_lowercase();
            }
            if self.find(&chunk[..len], pairs) {
                return true;
            }
            if end == bytes.len() {
                return false;
            }
            start = end - self.overlap;
        }
    }
}

/// The prefilter's lower-cased copy of a chunk and its pair-hashed copy.
struct Scratch {
    low: Vec<u8>,
    pairs: Vec<u8>,
}

thread_local! {
    /// One per thread, so that a search neither allocates nor clears a
    /// buffer.
    static SCRATCH: std::cell::RefCell<Scratch> = const {
        std::cell::RefCell::new(Scratch {
            low: Vec::new(),
            pairs: Vec::new(),
        })
    };
}
