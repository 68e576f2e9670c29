use super::*;
use crate::config::Validate;
use crate::signal::Metrics;
use std::path::Path;

/// A host's `/proc` and `/sys`, as far as the collectors read them.
fn host(dir: &Path) {
    let write = |path: &str, text: &str| {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write(
        "proc/stat",
        "cpu  300 20 100 5000 10 0 5 1 0 0\n\
         cpu0 200 10 60 2500 5 0 3 1 7 2\n\
         cpu1 100 10 40 2500 5 0 2 0 0 0\n\
         intr 12345 0 1 2\nctxt 999\nbtime 1700000000\nprocesses 4242\n\
         procs_running 3\nprocs_blocked 1\nsoftirq 1 2 3\n",
    );
    write(
        "proc/meminfo",
        "MemTotal:       16384 kB\nMemFree:         1024 kB\nActive(anon):      12 kB\n\
         HugePages_Total:       0\nHugepagesize:       2048 kB\n",
    );
    write("proc/loadavg", "0.50 0.25 0.10 2/345 6789\n");
    write(
        "proc/vmstat",
        "nr_free_pages 100\npgpgin 11\npgmajfault 3\npgfault 50\noom_kill 1\nthp_fault_alloc 9\n",
    );
    write("proc/sys/fs/file-nr", "512\t0\t100000\n");
    write(
        "proc/pressure/cpu",
        "some avg10=0.00 avg60=0.00 avg300=0.00 total=2500000\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
    );
    write(
        "proc/pressure/io",
        "some avg10=0.00 avg60=0.00 avg300=0.00 total=1000000\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=500000\n",
    );
    write(
        "proc/pressure/memory",
        "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
    );
    write(
        "proc/diskstats",
        "   8       0 sda 100 2 800 30 50 5 400 20 0 40 60 7 1 56 9 3 4\n\
            8       1 sda1 90 2 700 25 40 5 300 15 0 30 50 0 0 0 0 0 0\n\
            7       0 loop0 1 0 2 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n\
          259       0 nvme0n1 1 0 8 1 2 0 16 2 1 3 4\n",
    );
    write(
        "run/udev/data/b8:0",
        "S:disk/by-id/ata-X\nE:ID_MODEL=Samsung_SSD\nE:ID_SERIAL_SHORT=S123\nE:ID_PATH=pci-0000:00:1f.2-ata-1\n",
    );
    write(
        "proc/net/netstat",
        "TcpExt: SyncookiesSent ListenDrops TCPTimeouts DelayedACKs\nTcpExt: 1 2 3 4\n\
         IpExt: InOctets OutOctets InNoRoutes\nIpExt: 100 200 0\n",
    );
    write(
        "proc/net/snmp",
        "Ip: Forwarding DefaultTTL InReceives\nIp: 1 64 999\n\
         Tcp: ActiveOpens InSegs InErrs MaxConn\nTcp: 5 600 7 -1\n\
         Udp: InDatagrams NoPorts InErrors IgnoredMulti\nUdp: 8 9 10 11\n",
    );
    write(
        "proc/net/snmp6",
        "Ip6InReceives 3\nIp6InOctets 384\nIcmp6InMsgs 2\nUdp6InDatagrams 4\nUdpLite6InErrors 0\n",
    );
    write(
        "proc/net/sockstat",
        "sockets: used 17\nTCP: inuse 4 orphan 0 tw 2 alloc 5 mem 3\nUDP: inuse 1 mem 2\nFRAG: inuse 0 memory 0\n",
    );
    write("proc/net/sockstat6", "TCP6: inuse 2\nUDP6: inuse 1\n");
    write(
        "etc/os-release",
        "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\n\
         VERSION_ID=\"12.4\"\nVERSION=\"12 (bookworm)\"\nID=debian\n",
    );
    write(
        "proc/net/dev",
        "Inter-|   Receive                                                |  Transmit\n\
          face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n\
             lo: 1000 10 0 0 0 0 0 0 1000 10 0 0 0 0 0 0\n\
           eth0: 5000 50 1 2 3 4 5 6 7000 70 7 8 9 10 11 12\n",
    );
    write("sys/class/net/eth0/statistics/rx_nohandler", "13\n");
    write(
        "proc/1/mounts",
        "/dev/vda / ext4 rw,relatime 0 0\n\
         proc /proc proc rw 0 0\n\
         tmpfs /dev/shm tmpfs rw 0 0\n\
         overlay /var/lib/docker/overlay2/abc/merged overlay rw 0 0\n\
         cgroup2 /sys/fs/cgroup cgroup2 rw 0 0\n\
         tmpfs /run/user/1000 tmpfs ro,nosuid 0 0\n\
         tmpfs /data\\040disk tmpfs rw 0 0\n\
         tmpfs /gone tmpfs rw 0 0\n\
         /dev/vda / ext4 rw,relatime 0 0\n",
    );
    std::fs::create_dir_all(dir.join("run/user/1000")).unwrap();
    std::fs::create_dir_all(dir.join("data disk")).unwrap();
    write(
        "sys/devices/system/clocksource/clocksource0/available_clocksource",
        "tsc hpet acpi_pm \n",
    );
    write(
        "sys/devices/system/clocksource/clocksource0/current_clocksource",
        "tsc\n",
    );
}

fn config(dir: &Path, extra: &str) -> HostMetricsConfig {
    let raw: RawHostMetricsConfig = toml::from_str(&format!(
        "root_path = \"{}\"\ninstance = \"h\"\n{extra}",
        dir.display()
    ))
    .unwrap();
    raw.validate().unwrap()
}

fn value(metrics: &Metrics, series: &str) -> Option<f64> {
    metrics
        .series
        .iter()
        .find(|s| {
            let name = s.labels.get("__name__").unwrap_or("");
            let rest: Vec<String> = s
                .labels
                .iter()
                .filter(|(n, _)| !matches!(*n, "__name__" | "job" | "instance"))
                .map(|(n, v)| format!("{n}={v:?}"))
                .collect();
            format!("{name}{{{}}}", rest.join(",")) == series
        })
        .map(|s| s.samples[0].value)
}

#[test]
fn the_collectors_read_a_host_as_node_exporter_does() {
    let dir = tempfile::tempdir().unwrap();
    host(dir.path());
    let config = config(dir.path(), "");
    let mut collection = Collection::new(&config);
    let (metrics, failed) = collection.run(&config);
    assert!(failed.is_empty(), "{failed:?}");
    let hz = 100.0;
    for (series, want) in [
        (r#"node_cpu_seconds_total{cpu="0",mode="user"}"#, 200.0 / hz),
        (
            r#"node_cpu_seconds_total{cpu="1",mode="idle"}"#,
            2500.0 / hz,
        ),
        (r#"node_cpu_seconds_total{cpu="0",mode="steal"}"#, 1.0 / hz),
        (
            r#"node_cpu_guest_seconds_total{cpu="0",mode="user"}"#,
            7.0 / hz,
        ),
        (
            r#"node_cpu_guest_seconds_total{cpu="0",mode="nice"}"#,
            2.0 / hz,
        ),
        ("node_intr_total{}", 12345.0),
        ("node_context_switches_total{}", 999.0),
        ("node_boot_time_seconds{}", 1.7e9),
        ("node_forks_total{}", 4242.0),
        ("node_procs_running{}", 3.0),
        ("node_procs_blocked{}", 1.0),
        ("node_memory_MemTotal_bytes{}", 16384.0 * 1024.0),
        ("node_memory_Active_anon_bytes{}", 12.0 * 1024.0),
        ("node_memory_HugePages_Total{}", 0.0),
        ("node_memory_Hugepagesize_bytes{}", 2048.0 * 1024.0),
        ("node_load1{}", 0.5),
        ("node_load15{}", 0.1),
        ("node_vmstat_pgpgin{}", 11.0),
        ("node_vmstat_pgmajfault{}", 3.0),
        ("node_vmstat_oom_kill{}", 1.0),
        ("node_filefd_allocated{}", 512.0),
        ("node_filefd_maximum{}", 100000.0),
        ("node_pressure_cpu_waiting_seconds_total{}", 2.5),
        ("node_pressure_io_stalled_seconds_total{}", 0.5),
        (
            r#"node_time_clocksource_available_info{clocksource="hpet",device="0"}"#,
            1.0,
        ),
        (
            r#"node_time_clocksource_current_info{clocksource="tsc",device="0"}"#,
            1.0,
        ),
    ] {
        let hz_dependent = series.starts_with("node_cpu");
        let got = value(&metrics, series).unwrap_or_else(|| panic!("no {series}"));
        if !hz_dependent || clock_ticks_are_100() {
            assert_eq!(got, want, "{series}");
        }
    }
    for (series, want) in [
        (r#"node_disk_reads_completed_total{device="sda"}"#, 100.0),
        (r#"node_disk_read_bytes_total{device="sda"}"#, 800.0 * 512.0),
        (r#"node_disk_read_time_seconds_total{device="sda"}"#, 0.03),
        (r#"node_disk_io_now{device="sda"}"#, 0.0),
        (
            r#"node_disk_io_time_weighted_seconds_total{device="sda"}"#,
            0.06,
        ),
        (r#"node_disk_discarded_sectors_total{device="sda"}"#, 56.0),
        (
            r#"node_disk_flush_requests_time_seconds_total{device="sda"}"#,
            0.004,
        ),
        (r#"node_disk_writes_completed_total{device="nvme0n1"}"#, 2.0),
        (
            r#"node_disk_info{device="sda",major="8",minor="0",model="Samsung_SSD",path="pci-0000:00:1f.2-ata-1",serial="S123"}"#,
            1.0,
        ),
        (
            r#"node_disk_info{device="nvme0n1",major="259",minor="0"}"#,
            1.0,
        ),
        ("node_netstat_TcpExt_SyncookiesSent{}", 1.0),
        ("node_netstat_TcpExt_ListenDrops{}", 2.0),
        ("node_netstat_TcpExt_TCPTimeouts{}", 3.0),
        ("node_netstat_IpExt_InOctets{}", 100.0),
        ("node_netstat_Ip_Forwarding{}", 1.0),
        ("node_netstat_Tcp_InSegs{}", 600.0),
        ("node_netstat_Tcp_InErrs{}", 7.0),
        ("node_netstat_Udp_NoPorts{}", 9.0),
        ("node_netstat_Udp_InErrors{}", 10.0),
        ("node_netstat_Ip6_InOctets{}", 384.0),
        ("node_netstat_Icmp6_InMsgs{}", 2.0),
        ("node_netstat_Udp6_InDatagrams{}", 4.0),
        ("node_netstat_UdpLite6_InErrors{}", 0.0),
        (r#"node_network_receive_bytes_total{device="eth0"}"#, 5000.0),
        (
            r#"node_network_receive_multicast_total{device="eth0"}"#,
            6.0,
        ),
        (
            r#"node_network_receive_nohandler_total{device="eth0"}"#,
            13.0,
        ),
        (r#"node_network_transmit_colls_total{device="eth0"}"#, 10.0),
        (
            r#"node_network_transmit_compressed_total{device="eth0"}"#,
            12.0,
        ),
        (r#"node_network_receive_bytes_total{device="lo"}"#, 1000.0),
        ("node_sockstat_sockets_used{}", 17.0),
        ("node_sockstat_TCP_tw{}", 2.0),
        ("node_sockstat_TCP_mem{}", 3.0),
        ("node_sockstat_UDP_mem{}", 2.0),
        ("node_sockstat_FRAG_memory{}", 0.0),
        ("node_sockstat_TCP6_inuse{}", 2.0),
        (
            r#"node_os_info{id="debian",name="Debian GNU/Linux",pretty_name="Debian GNU/Linux 12 (bookworm)",version="12 (bookworm)",version_id="12.4"}"#,
            1.0,
        ),
        (
            r#"node_os_version{id="debian",name="Debian GNU/Linux"}"#,
            12.4,
        ),
    ] {
        let got = value(&metrics, series).unwrap_or_else(|| panic!("no {series}"));
        assert!((got - want).abs() < 1e-9, "{series}: {got}, want {want}");
    }
    // Mounts: excluded by mount point and by type, a mount listed twice
    // once, an escaped space, and one whose statfs fails.
    let fs = |mount: &str, fs_type: &str, name: &str| {
        value(
            &metrics,
            &format!(
                r#"node_filesystem_{name}{{device="{}",fstype="{fs_type}",mountpoint="{mount}"}}"#,
                if fs_type == "ext4" {
                    "/dev/vda"
                } else {
                    "tmpfs"
                }
            ),
        )
    };
    assert!(fs("/", "ext4", "size_bytes").unwrap() > 0.0);
    assert_eq!(fs("/", "ext4", "readonly"), Some(0.0));
    assert_eq!(fs("/run/user/1000", "tmpfs", "readonly"), Some(1.0));
    assert_eq!(fs("/data disk", "tmpfs", "device_error"), Some(0.0));
    assert_eq!(fs("/gone", "tmpfs", "device_error"), Some(1.0));
    assert_eq!(fs("/gone", "tmpfs", "size_bytes"), None);
    assert_eq!(fs("/dev/shm", "tmpfs", "size_bytes"), None);
    let filesystems = metrics
        .series
        .iter()
        .filter(|s| s.labels.get("__name__") == Some("node_filesystem_device_error"))
        .count();
    assert_eq!(filesystems, 4, "/, /run/user/1000, /data disk, /gone");
    let mem_bytes = value(&metrics, "node_sockstat_TCP_mem_bytes{}").unwrap();
    // SAFETY: sysconf has no preconditions.
    let page_size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as f64;
    assert_eq!(mem_bytes, 3.0 * page_size);
    // Left out as node_exporter leaves them: partitions and loop devices,
    // netstat fields outside its default set.
    assert!(
        value(
            &metrics,
            r#"node_disk_reads_completed_total{device="sda1"}"#
        )
        .is_none()
    );
    assert!(
        value(
            &metrics,
            r#"node_disk_reads_completed_total{device="loop0"}"#
        )
        .is_none()
    );
    assert!(value(&metrics, "node_netstat_TcpExt_DelayedACKs{}").is_none());
    assert!(value(&metrics, "node_netstat_Ip_InReceives{}").is_none());
    assert!(value(&metrics, "node_netstat_Ip6_InReceives{}").is_none());
    assert!(value(&metrics, "node_netstat_Tcp_MaxConn{}").is_none());
    // Left out as node_exporter leaves them: the sum over CPUs, vmstat
    // fields outside its default set, cpu "full" pressure.
    assert!(value(&metrics, r#"node_cpu_seconds_total{cpu="",mode="user"}"#).is_none());
    assert!(value(&metrics, "node_vmstat_nr_free_pages{}").is_none());
    assert!(value(&metrics, "node_vmstat_thp_fault_alloc{}").is_none());
    assert!(value(&metrics, "node_pressure_cpu_stalled_seconds_total{}").is_none());
    let memory = metrics
        .metadata
        .iter()
        .find(|m| m.family == "node_memory_Active_anon_bytes")
        .unwrap();
    assert_eq!(memory.help, "Memory information field Active_anon_bytes.");
    assert!(
        metrics
            .series
            .iter()
            .all(|s| s.labels.get("job") == Some("node-exporter")
                && s.labels.get("instance") == Some("h"))
    );
}

fn clock_ticks_are_100() -> bool {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_CLK_TCK) == 100 }
}

#[test]
fn a_bad_or_missing_file_fails_its_collector_only() {
    let dir = tempfile::tempdir().unwrap();
    host(dir.path());
    std::fs::write(dir.path().join("proc/stat"), "cpu0 1 2 x\n").unwrap();
    std::fs::write(dir.path().join("proc/loadavg"), "").unwrap();
    std::fs::remove_dir_all(dir.path().join("proc/pressure")).unwrap();
    std::fs::write(dir.path().join("proc/meminfo"), [0xff, 0xfe, b'\n']).unwrap();
    let config = config(dir.path(), "");
    let mut collection = Collection::new(&config);
    let (metrics, failed) = collection.run(&config);
    let failed: Vec<&str> = failed.iter().map(|(c, _)| c.name()).collect();
    assert_eq!(failed, ["cpu", "loadavg", "meminfo", "pressure"]);
    assert_eq!(value(&metrics, "node_filefd_allocated{}"), Some(512.0));
    assert_eq!(value(&metrics, "node_vmstat_pgfault{}"), Some(50.0));
}

#[test]
fn a_series_that_is_gone_gets_a_staleness_marker_once() {
    let dir = tempfile::tempdir().unwrap();
    host(dir.path());
    let config = config(dir.path(), "collectors = [\"cpu\"]");
    let mut collection = Collection::new(&config);
    let (first, _) = collection.run(&config);
    assert_eq!(first.series.len(), 2 * (8 + 2));
    std::fs::write(
        dir.path().join("proc/stat"),
        "cpu0 200 10 60 2500 5 0 3 1 7 2\n",
    )
    .unwrap();
    let (second, _) = collection.run(&config);
    let stale: Vec<_> = second
        .series
        .iter()
        .filter(|s| crate::signal::metrics::is_stale_nan(s.samples[0].value))
        .collect();
    assert_eq!(stale.len(), 10, "cpu1's series end");
    assert!(stale.iter().all(|s| s.labels.get("cpu") == Some("1")));
    let (third, _) = collection.run(&config);
    assert_eq!(third.series.len(), 10, "and are forgotten");
}

#[test]
fn config_errors_name_the_key() {
    let check = |text: &str| {
        toml::from_str::<RawHostMetricsConfig>(text)
            .unwrap()
            .validate()
            .unwrap_err()
            .into_iter()
            .map(|e| e.field)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        check("collectors = [\"cpu\", \"bogus\"]\ncollection_interval = \"1ms\""),
        ["collection_interval", "collectors.1"]
    );
    assert_eq!(check("collectors = []"), ["collectors"]);
    let raw: RawHostMetricsConfig = toml::from_str("root_path = \"/host\"").unwrap();
    let config = raw.validate().unwrap();
    assert_eq!(config.proc_path, Path::new("/host/proc"));
    assert_eq!(config.sys_path, Path::new("/host/sys"));
    assert_eq!(config.collectors, Collector::ALL);
}

#[test]
fn network_counters_come_from_the_hosts_init_where_they_can() {
    let dir = tempfile::tempdir().unwrap();
    host(dir.path());
    // In a pod, <proc>/net is the pod's namespace; <proc>/1/net the node's.
    std::fs::create_dir_all(dir.path().join("proc/1/net")).unwrap();
    std::fs::write(
        dir.path().join("proc/1/net/sockstat"),
        "sockets: used 900\nTCP: inuse 40 orphan 0 tw 0 alloc 41 mem 1\n",
    )
    .unwrap();
    let config = config(
        dir.path(),
        "collectors = [\"sockstat\", \"netdev\"]\nnetdev_device_exclude = \"^lo$\"",
    );
    let (metrics, failed) = Collection::new(&config).run(&config);
    assert!(failed.is_empty(), "{failed:?}");
    assert!(value(&metrics, r#"node_network_receive_bytes_total{device="lo"}"#).is_none());
    assert!(
        value(
            &metrics,
            r#"node_network_receive_bytes_total{device="eth0"}"#
        )
        .is_some()
    );
    assert_eq!(value(&metrics, "node_sockstat_sockets_used{}"), Some(900.0));
    assert_eq!(
        value(&metrics, "node_sockstat_TCP6_inuse{}"),
        Some(2.0),
        "sockstat6 from <proc>/net where <proc>/1/net has none"
    );
}
