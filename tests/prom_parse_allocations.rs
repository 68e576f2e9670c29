//! The parser's promise that a sample costs no allocation, checked with a
//! counting allocator (which needs a test binary of its own).

use ferro::prom::parse::{Entry, Format, Parser};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct CountingAllocator;

thread_local! {
    /// Per thread, so that the test harness' own threads do not count.
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded to the system allocator unchanged.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: the caller upholds `alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller upholds `dealloc`'s contract.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: the caller upholds `realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

fn allocations_while(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

fn count_samples(body: &[u8], format: Format) -> usize {
    let mut parser = Parser::new(body, format);
    let mut samples = 0;
    while let Some(entry) = parser.next() {
        if let Entry::Sample(_) = entry.expect("the fixture is valid") {
            samples += 1;
        }
    }
    samples
}

#[test]
fn samples_without_escapes_allocate_nothing() {
    for (body, format) in [
        (
            &include_bytes!("fixtures/prom/node_exporter.txt")[..],
            Format::Text004,
        ),
        (
            include_bytes!("fixtures/prom/prometheus.txt"),
            Format::Text004,
        ),
    ] {
        let mut samples = 0;
        let allocations = allocations_while(|| samples = count_samples(body, format));
        assert!(samples > 300);
        // The label buffer grows a few times to the widest label set; no
        // label value or help text on these pages has an escape.
        assert!(
            allocations <= 8,
            "{allocations} allocations for {samples} samples"
        );
    }
}
