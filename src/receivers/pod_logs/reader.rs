//! Reading a file in bounded chunks and cutting it into lines.
//!
//! Memory is bounded whatever the file holds: at most one chunk plus one line
//! of up to `max_raw` bytes is buffered. A longer line keeps its first
//! `max_raw` bytes and its last [`TAIL`] bytes; the middle is skipped as it is
//! read, so a 10 MiB line costs no more than a short one.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use super::formats::RawLine;

/// Bytes read from a file at a time.
pub const CHUNK: usize = 64 * 1024;

/// Bytes kept from the end of a line too long to keep whole.
pub const TAIL: usize = 512;

pub struct LineReader {
    buf: Vec<u8>,
    /// File offset of `buf[0]`.
    base: u64,
    /// Bytes of `buf` already cut into lines.
    pos: usize,
    max_raw: usize,
    /// The line too long to keep, while its end is being looked for.
    long: Option<LongLine>,
    /// The last long line, once ended, for [`LineReader::raw`].
    done: Option<LongLine>,
}

struct LongLine {
    head: Vec<u8>,
    tail: Vec<u8>,
    start: u64,
}

/// A line found by [`LineReader::next_line`]; its bytes come from [`LineReader::raw`].
#[derive(Clone, Copy, Debug)]
pub enum Line {
    InBuffer { from: usize, to: usize },
    Long,
}

impl LineReader {
    pub fn new(offset: u64, max_raw: usize) -> Self {
        Self {
            buf: Vec::new(),
            base: offset,
            pos: 0,
            max_raw,
            long: None,
            done: None,
        }
    }

    /// The file offset the next read starts at.
    pub fn read_offset(&self) -> u64 {
        self.base + self.buf.len() as u64
    }

    /// The offset up to which every byte belongs to a line already handed out.
    pub fn consumed(&self) -> u64 {
        match &self.long {
            Some(long) => long.start,
            None => self.base + self.pos as u64,
        }
    }

    /// Bytes held: what memory this reader costs.
    pub fn buffered(&self) -> usize {
        let long = |l: &Option<LongLine>| l.as_ref().map_or(0, |l| l.head.len() + l.tail.len());
        self.buf.len() + long(&self.long) + long(&self.done)
    }

    /// Reads up to one chunk from `file`; returns the bytes read (0 at end of file).
    pub fn fill(&mut self, file: &File) -> io::Result<usize> {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.base += self.pos as u64;
            self.pos = 0;
        }
        let old = self.buf.len();
        self.buf.resize(old + CHUNK, 0);
        let result = loop {
            match file.read_at(&mut self.buf[old..], self.base + old as u64) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        let n = *result.as_ref().unwrap_or(&0);
        self.buf.truncate(old + n);
        result
    }

    /// The next complete line, or `None` until more is read.
    pub fn next_line(&mut self) -> Option<Line> {
        let rest = &self.buf[self.pos..];
        match memchr::memchr(b'\n', rest) {
            Some(i) => {
                let (from, to) = (self.pos, self.pos + i);
                self.pos = to + 1;
                match self.long.take() {
                    Some(mut long) => {
                        keep_tail(&mut long.tail, &self.buf[from..to]);
                        self.done = Some(long);
                        Some(Line::Long)
                    }
                    None if to - from > self.max_raw => {
                        let mut tail = Vec::new();
                        keep_tail(&mut tail, &self.buf[from + self.max_raw..to]);
                        self.done = Some(LongLine {
                            head: self.buf[from..from + self.max_raw].to_vec(),
                            tail,
                            start: self.base + from as u64,
                        });
                        Some(Line::Long)
                    }
                    None => Some(Line::InBuffer { from, to }),
                }
            }
            None => {
                let pending = self.buf.len() - self.pos;
                if let Some(long) = &mut self.long {
                    keep_tail(&mut long.tail, &self.buf[self.pos..]);
                    self.pos = self.buf.len();
                } else if pending > self.max_raw {
                    let from = self.pos;
                    let mut tail = Vec::new();
                    keep_tail(&mut tail, &self.buf[from + self.max_raw..]);
                    self.long = Some(LongLine {
                        head: self.buf[from..from + self.max_raw].to_vec(),
                        tail,
                        start: self.base + from as u64,
                    });
                    self.pos = self.buf.len();
                }
                None
            }
        }
    }

    /// What is left after the last `\n` (the file ended without one), as a
    /// last line; `None` if nothing is left.
    pub fn take_rest(&mut self) -> Option<Line> {
        if let Some(long) = self.long.take() {
            self.done = Some(long);
            return Some(Line::Long);
        }
        if self.pos == self.buf.len() {
            return None;
        }
        let (from, to) = (self.pos, self.buf.len());
        self.pos = to;
        Some(Line::InBuffer { from, to })
    }

    /// The bytes of `line`.
    pub fn raw(&self, line: Line) -> RawLine<'_> {
        match line {
            Line::InBuffer { from, to } => {
                RawLine::whole(&self.buf[from..to], self.base + from as u64)
            }
            Line::Long => {
                let long = self.done.as_ref().expect("a long line was handed out");
                RawLine {
                    head: &long.head,
                    tail: &long.tail,
                    cut: true,
                    start: long.start,
                }
            }
        }
    }

    /// Takes back what was read from `offset` on, before any of it is cut
    /// into lines.
    pub fn unread_to(&mut self, offset: u64) {
        let keep = offset.saturating_sub(self.base) as usize;
        self.buf.truncate(keep.max(self.pos));
    }

    /// Forgets everything buffered and goes on at `offset` (a truncated file).
    pub fn reset(&mut self, offset: u64) {
        *self = Self::new(offset, self.max_raw);
    }

    /// Gives back buffer memory while the file is idle.
    pub fn shrink(&mut self) {
        if self.pos == self.buf.len() {
            self.base += self.pos as u64;
            self.pos = 0;
            self.buf = Vec::new();
        }
        self.done = None;
    }
}

fn keep_tail(tail: &mut Vec<u8>, more: &[u8]) {
    if more.len() >= TAIL {
        tail.clear();
        tail.extend_from_slice(&more[more.len() - TAIL..]);
    } else {
        let excess = (tail.len() + more.len()).saturating_sub(TAIL);
        tail.drain(..excess);
        tail.extend_from_slice(more);
    }
}
