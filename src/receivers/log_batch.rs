//! The batch a log receiver that reads its own source (the journal, the
//! cluster's events) fills before it sends: entries grouped into streams by
//! label set, with their count and their size as Loki would see them.
//! Shared by the journald and kubernetes_events receivers.

use std::collections::HashMap;

use crate::signal::logs::{Entry, Stream};
use crate::signal::{Labels, Logs};

#[derive(Default)]
pub struct LogBatch {
    streams: Vec<Stream>,
    index: HashMap<Labels, usize>,
    pub entries: usize,
    pub bytes: usize,
}

/// A batch taken out to be sent.
pub struct Taken {
    pub logs: Logs,
    pub entries: u64,
    pub bytes: usize,
}

impl LogBatch {
    pub fn push(&mut self, labels: Labels, entry: Entry) {
        self.bytes += entry.line.len()
            + entry
                .metadata
                .iter()
                .map(|(n, v)| n.len() + v.len() + 4)
                .sum::<usize>()
            + 24;
        self.entries += 1;
        let i = match self.index.get(&labels) {
            Some(&i) => i,
            None => {
                self.bytes += labels.heap_size();
                self.streams.push(Stream::new(labels.clone()));
                self.index.insert(labels, self.streams.len() - 1);
                self.streams.len() - 1
            }
        };
        self.streams[i].entries.push(entry);
    }

    /// The entries gathered, if any; the batch starts empty again.
    pub fn take(&mut self) -> Option<Taken> {
        if self.entries == 0 {
            return None;
        }
        self.index.clear();
        let taken = Taken {
            logs: Logs::new(std::mem::take(&mut self.streams)),
            entries: self.entries as u64,
            bytes: self.bytes,
        };
        self.entries = 0;
        self.bytes = 0;
        Some(taken)
    }
}
