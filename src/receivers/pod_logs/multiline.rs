//! Joining continuation lines (stack traces, pretty-printed JSON) to the line
//! that starts them: a line matching `start` opens an entry, the lines that do
//! not match are appended to it with `\n`, and the entry is sent at the next
//! start, after `max_lines`, or when no line came for `timeout`. Each stream
//! (stdout, stderr, none) of a file joins on its own.

use std::time::Instant;

use super::config::MultilineConfig;
use super::formats::Decoded;

pub struct Multiline {
    config: MultilineConfig,
    max_line_size: usize,
    /// Per stream: stdout, stderr, and lines without one.
    open: [Option<Block>; 3],
    /// Joined entries cut to `max_line_size`, for the counter.
    pub truncated: u64,
}

struct Block {
    entry: Decoded,
    lines: usize,
    last_line: Instant,
}

fn slot(entry: &Decoded) -> usize {
    entry.stream.map_or(2, |s| s as usize)
}

impl Multiline {
    pub fn new(config: MultilineConfig, max_line_size: usize) -> Self {
        Self {
            config,
            max_line_size,
            open: [None, None, None],
            truncated: 0,
        }
    }

    /// Takes one line; returns the entry it completes, if any.
    pub fn push(&mut self, line: Decoded, now: Instant, out: &mut Vec<Decoded>) {
        let i = slot(&line);
        let starts = self.config.start.is_match(&line.text);
        match &mut self.open[i] {
            Some(block) if !starts => {
                let entry = &mut block.entry;
                if entry.text.len() + 1 + line.text.len() <= self.max_line_size {
                    entry.text.push('\n');
                    entry.text.push_str(&line.text);
                } else if !entry.truncated {
                    let room = self.max_line_size.saturating_sub(entry.text.len() + 1);
                    if room > 0 {
                        let mut end = room.min(line.text.len());
                        while !line.text.is_char_boundary(end) {
                            end -= 1;
                        }
                        entry.text.push('\n');
                        entry.text.push_str(&line.text[..end]);
                    }
                    entry.truncated = true;
                    self.truncated += 1;
                }
                entry.truncated |= line.truncated;
                block.lines += 1;
                block.last_line = now;
                if block.lines >= self.config.max_lines {
                    out.extend(self.open[i].take().map(|b| b.entry));
                }
            }
            open => {
                out.extend(open.take().map(|b| b.entry));
                *open = Some(Block {
                    entry: line,
                    lines: 1,
                    last_line: now,
                });
            }
        }
    }

    /// Sends the entries that waited `timeout` for another line.
    pub fn flush_expired(&mut self, now: Instant, out: &mut Vec<Decoded>) {
        for open in &mut self.open {
            if open
                .as_ref()
                .is_some_and(|b| now.duration_since(b.last_line) >= self.config.timeout)
            {
                out.extend(open.take().map(|b| b.entry));
            }
        }
        out.sort_by_key(|e| e.start);
    }

    /// Sends everything open (the file is done).
    pub fn flush(&mut self, out: &mut Vec<Decoded>) {
        let mut taken: Vec<Decoded> = self
            .open
            .iter_mut()
            .filter_map(|o| o.take().map(|b| b.entry))
            .collect();
        taken.sort_by_key(|e| e.start);
        out.extend(taken);
    }

    /// When the next open entry times out.
    pub fn deadline(&self) -> Option<Instant> {
        self.open
            .iter()
            .flatten()
            .map(|b| b.last_line + self.config.timeout)
            .min()
    }

    /// Where the oldest open entry starts in the file.
    pub fn pending_start(&self) -> Option<u64> {
        self.open.iter().flatten().map(|b| b.entry.start).min()
    }
}
