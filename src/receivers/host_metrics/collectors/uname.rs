//! `node_uname_info`: the uname system call's fields as labels.

use std::ffi::CStr;
use std::io;

use super::super::page::Page;
use crate::signal::metrics::MetricType;

/// The fields of `uname(2)`.
struct Uname {
    sysname: String,
    nodename: String,
    release: String,
    version: String,
    machine: String,
    domainname: String,
}

fn uname() -> io::Result<Uname> {
    // SAFETY: utsname is plain data; uname fills it or fails.
    let mut raw: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `raw` is a valid, writable utsname.
    if unsafe { libc::uname(&mut raw) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let text = |field: &[libc::c_char]| {
        // SAFETY: the kernel NUL-terminates every field within its array.
        unsafe { CStr::from_ptr(field.as_ptr()) }
            .to_string_lossy()
            .into_owned()
    };
    Ok(Uname {
        sysname: text(&raw.sysname),
        nodename: text(&raw.nodename),
        release: text(&raw.release),
        version: text(&raw.version),
        machine: text(&raw.machine),
        domainname: text(&raw.domainname),
    })
}

/// This machine's host name, for a default `instance`.
pub fn host_name() -> Option<String> {
    uname().ok().map(|u| u.nodename).filter(|n| !n.is_empty())
}

pub fn collect(page: &mut Page<'_>) -> io::Result<()> {
    let u = uname()?;
    page.family(
        "node_uname_info",
        MetricType::Gauge,
        "Labeled system information as provided by the uname system call.",
    );
    page.sample(
        "node_uname_info",
        &[
            ("domainname", &u.domainname),
            ("machine", &u.machine),
            ("nodename", &u.nodename),
            ("release", &u.release),
            ("sysname", &u.sysname),
            ("version", &u.version),
        ],
        1.0,
    );
    Ok(())
}
