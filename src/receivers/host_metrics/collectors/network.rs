//! The kernel's network counters: `/proc/net/{netstat,snmp,snmp6}`
//! (`node_netstat_*`) and socket use, `/proc/net/sockstat{,6}`
//! (`node_sockstat_*`).
//!
//! They are read from `<proc_path>/1/net/`, the network namespace of the
//! host's init, where it can be read: in a pod that is not on the host's
//! network, `<proc_path>/net` would be the pod's own namespace, and the
//! node's counters are what these series are about. On a host (and in
//! node_exporter's usual `hostNetwork` pod) the two are the same.

use std::io;
use std::sync::LazyLock;

use super::super::config::HostMetricsConfig;
use super::super::page::Page;
use super::{Files, malformed};
use crate::signal::metrics::MetricType;

/// node_exporter's default `--collector.netstat.fields`: the counters its
/// dashboards and alerts use.
static NETSTAT_FIELDS: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(
        r"^(.*_(InErrors|InErrs)|Ip_Forwarding|Ip(6|Ext)_(InOctets|OutOctets)|Icmp6?_(InMsgs|OutMsgs)|TcpExt_(Listen.*|Syncookies.*|TCPSynRetrans|TCPTimeouts)|Tcp_(ActiveOpens|InSegs|OutSegs|OutRsts|PassiveOpens|RetransSegs|CurrEstab)|Udp6?_(InDatagrams|OutDatagrams|NoPorts|RcvbufErrors|SndbufErrors))$",
    )
    .expect("a valid pattern")
});

/// The IPv6 protocols of `/proc/net/snmp6`, whose keys run protocol and
/// field together (`Ip6InOctets`); longest first, so `UdpLite6` is not `Udp`.
const SNMP6_PROTOCOLS: [&str; 4] = ["UdpLite6", "Icmp6", "Udp6", "Ip6"];

/// `<proc_path>/1/net/<file>` if it can be read, else `<proc_path>/net/<file>`.
fn net_file(config: &HostMetricsConfig, file: &str) -> std::path::PathBuf {
    let host = config.proc("1/net").join(file);
    if std::fs::metadata(&host).is_ok() {
        host
    } else {
        config.proc("net").join(file)
    }
}

pub fn netstat(
    config: &HostMetricsConfig,
    page: &mut Page<'_>,
    files: &mut Files,
) -> io::Result<()> {
    let mut name = String::with_capacity(64);
    let mut help = String::with_capacity(64);
    let mut emit =
        |page: &mut Page<'_>, protocol: &str, field: &str, value: &str| -> io::Result<()> {
            name.clear();
            name.push_str("node_netstat_");
            name.push_str(protocol);
            name.push('_');
            name.push_str(field);
            if !NETSTAT_FIELDS.is_match(&name["node_netstat_".len()..]) {
                return Ok(());
            }
            let value: f64 = value.parse().map_err(|_| malformed("netstat value"))?;
            help.clear();
            help.push_str("Statistic ");
            help.push_str(protocol);
            help.push_str(field);
            help.push('.');
            page.family(&name, MetricType::Unknown, &help);
            page.sample(&name, &[], value);
            Ok(())
        };
    // `Proto: Field Field …` lines, each followed by `Proto: value value …`.
    for file in ["netstat", "snmp"] {
        let text = files.read(&net_file(config, file))?;
        let mut lines = text.lines();
        while let (Some(keys), Some(values)) = (lines.next(), lines.next()) {
            let (Some((protocol, keys)), Some((again, values))) =
                (keys.split_once(':'), values.split_once(':'))
            else {
                return Err(malformed(file));
            };
            if protocol != again {
                return Err(malformed(file));
            }
            for (field, value) in keys
                .split_ascii_whitespace()
                .zip(values.split_ascii_whitespace())
            {
                emit(page, protocol, field, value)?;
            }
        }
    }
    // No IPv6 in the kernel: no snmp6, as for node_exporter.
    if let Ok(text) = files.read(&net_file(config, "snmp6")) {
        for line in text.lines() {
            let mut parts = line.split_ascii_whitespace();
            let (Some(key), Some(value)) = (parts.next(), parts.next()) else {
                continue;
            };
            if let Some(protocol) = SNMP6_PROTOCOLS.iter().find(|p| key.starts_with(*p)) {
                emit(page, protocol, &key[protocol.len()..], value)?;
            }
        }
    }
    Ok(())
}

/// `node_sockstat_<PROTOCOL>_<state>` for each pair of `/proc/net/sockstat`
/// and `sockstat6`; `mem` (pages) also as `<PROTOCOL>_mem_bytes`; the
/// `sockets: used` line as `node_sockstat_sockets_used`.
pub fn sockstat(
    config: &HostMetricsConfig,
    page: &mut Page<'_>,
    files: &mut Files,
) -> io::Result<()> {
    // SAFETY: sysconf reads a constant of the system.
    let page_size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as f64;
    let mut name = String::with_capacity(48);
    let mut help = String::with_capacity(64);
    for (file, required) in [("sockstat", true), ("sockstat6", false)] {
        let text = match files.read(&net_file(config, file)) {
            Ok(text) => text,
            Err(_) if !required => continue,
            Err(e) => return Err(e),
        };
        for line in text.lines() {
            let Some((protocol, rest)) = line.split_once(':') else {
                continue;
            };
            let mut fields = rest.split_ascii_whitespace();
            while let (Some(state), Some(value)) = (fields.next(), fields.next()) {
                let value: f64 = value.parse().map_err(|_| malformed(file))?;
                if protocol == "sockets" {
                    let name = "node_sockstat_sockets_used";
                    page.family(name, MetricType::Gauge, "Number of IPv4 sockets in use.");
                    page.sample(name, &[], value);
                    continue;
                }
                let mut one = |state: &str, value: f64| {
                    name.clear();
                    name.push_str("node_sockstat_");
                    name.push_str(protocol);
                    name.push('_');
                    name.push_str(state);
                    help.clear();
                    help.push_str("Number of ");
                    help.push_str(protocol);
                    help.push_str(" sockets in state ");
                    help.push_str(state);
                    help.push('.');
                    page.family(&name, MetricType::Gauge, &help);
                    page.sample(&name, &[], value);
                };
                one(state, value);
                if state == "mem" {
                    one("mem_bytes", value * page_size);
                }
            }
        }
    }
    Ok(())
}

/// `/proc/net/dev`'s columns: receive, then transmit.
const RECEIVE: [&str; 8] = [
    "bytes",
    "packets",
    "errs",
    "drop",
    "fifo",
    "frame",
    "compressed",
    "multicast",
];
const TRANSMIT: [&str; 8] = [
    "bytes",
    "packets",
    "errs",
    "drop",
    "fifo",
    "colls",
    "carrier",
    "compressed",
];

/// `node_network_{receive,transmit}_<statistic>_total{device}` from
/// `/proc/net/dev` (of the host's init, as for netstat), less the devices
/// `netdev_device_exclude` matches; `receive_nohandler` from
/// `/sys/class/net/<device>/statistics/rx_nohandler` where the kernel has
/// it, as node_exporter reads it over netlink.
pub fn netdev(
    config: &HostMetricsConfig,
    page: &mut Page<'_>,
    files: &mut Files,
) -> io::Result<()> {
    let text = files.read(&net_file(config, "dev"))?.to_string();
    let mut name = String::with_capacity(48);
    let mut help = String::with_capacity(64);
    let mut sample =
        |page: &mut Page<'_>, direction: &str, statistic: &str, device: &str, value: f64| {
            name.clear();
            name.push_str("node_network_");
            name.push_str(direction);
            name.push('_');
            name.push_str(statistic);
            name.push_str("_total");
            help.clear();
            help.push_str("Network device statistic ");
            help.push_str(direction);
            help.push('_');
            help.push_str(statistic);
            help.push('.');
            page.family(&name, MetricType::Counter, &help);
            page.sample(&name, &[("device", device)], value);
        };
    // Two header lines, then `device: receive… transmit…`.
    for line in text.lines().skip(2) {
        let Some((device, counters)) = line.split_once(':') else {
            return Err(malformed("/proc/net/dev line"));
        };
        let device = device.trim();
        if config
            .netdev_device_exclude
            .as_ref()
            .is_some_and(|p| p.is_match(device))
        {
            continue;
        }
        let mut values = counters.split_ascii_whitespace().map(str::parse::<f64>);
        for (direction, statistics) in [("receive", RECEIVE), ("transmit", TRANSMIT)] {
            for statistic in statistics {
                let value = values
                    .next()
                    .and_then(Result::ok)
                    .ok_or_else(|| malformed("/proc/net/dev counters"))?;
                sample(page, direction, statistic, device, value);
            }
        }
        let nohandler = config
            .sys("class/net")
            .join(device)
            .join("statistics/rx_nohandler");
        if let Ok(text) = files.read(&nohandler)
            && let Ok(value) = text.trim().parse::<f64>()
        {
            sample(page, "receive", "nohandler", device, value);
        }
    }
    Ok(())
}
