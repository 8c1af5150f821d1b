//! CPU accounting from /proc (Linux): which process burnt how much CPU during
//! a measured window, so a figure can be said to be bound by the API, the
//! workers, PostgreSQL, Redis or the load generator itself. Elsewhere the
//! figures are simply absent.

use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::time::Instant;

/// Clock ticks per second of /proc/<pid>/stat (USER_HZ; 100 on every Linux
/// this runs on).
const TICKS: f64 = 100.0;

/// `--watch NAME=PID[,PID…]` or `--watch NAME=comm:COMM` (every process whose
/// command name is COMM, e.g. `postgres` for all its backends).
#[derive(Debug, Clone)]
pub struct Watch {
    pub name: String,
    pub pids: Vec<u32>,
    pub comm: Option<String>,
}

impl std::str::FromStr for Watch {
    type Err = String;
    fn from_str(s: &str) -> Result<Watch, String> {
        let (name, what) = s
            .split_once('=')
            .ok_or_else(|| format!("expected NAME=PID[,PID…] or NAME=comm:COMM, got {s:?}"))?;
        if let Some(comm) = what.strip_prefix("comm:") {
            return Ok(Watch {
                name: name.into(),
                pids: vec![],
                comm: Some(comm.into()),
            });
        }
        let pids = what
            .split(',')
            .filter(|p| !p.trim().is_empty())
            .map(|p| {
                p.trim()
                    .parse::<u32>()
                    .map_err(|_| format!("bad pid {p:?}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Watch {
            name: name.into(),
            pids,
            comm: None,
        })
    }
}

/// utime + stime of a process, in ticks.
fn proc_ticks(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces.
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ")": state(0) ppid(1) … utime is field 14 of the line, index 11 here.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

fn pids_by_comm(comm: &str) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .map(|c| c.trim() == comm)
                .unwrap_or(false)
        })
        .collect()
}

/// (busy, total) ticks of the whole machine.
fn machine_ticks() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().next()?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    if v.len() < 5 {
        return None;
    }
    let total: u64 = v.iter().take(8).sum();
    let idle = v[3] + v[4];
    Some((total - idle, total))
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// A snapshot of every watched process (and this one, and the machine).
pub struct Snapshot {
    at: Instant,
    per_watch: BTreeMap<String, BTreeMap<u32, u64>>,
    machine: Option<(u64, u64)>,
}

pub fn snapshot(watches: &[Watch]) -> Snapshot {
    let mut per_watch = BTreeMap::new();
    let mut me = BTreeMap::new();
    if let Some(t) = proc_ticks(std::process::id()) {
        me.insert(std::process::id(), t);
    }
    per_watch.insert("paygate-bench".to_string(), me);
    for w in watches {
        let pids = match &w.comm {
            Some(c) => pids_by_comm(c),
            None => w.pids.clone(),
        };
        let m = pids
            .into_iter()
            .filter_map(|p| proc_ticks(p).map(|t| (p, t)))
            .collect();
        per_watch.insert(w.name.clone(), m);
    }
    Snapshot {
        at: Instant::now(),
        per_watch,
        machine: machine_ticks(),
    }
}

/// CPU use between two snapshots, in percent of one core (so 200 = both
/// cores of a 2-core machine), per watched name; `machine` is the whole box.
pub fn cpu_between(a: &Snapshot, b: &Snapshot) -> Value {
    let wall = b.at.duration_since(a.at).as_secs_f64().max(1e-6);
    let mut out = Map::new();
    for (name, end) in &b.per_watch {
        let start = a.per_watch.get(name);
        // A process that appeared meanwhile counts from zero.
        let ticks: u64 = end
            .iter()
            .map(|(pid, t)| t.saturating_sub(start.and_then(|s| s.get(pid)).copied().unwrap_or(0)))
            .sum();
        out.insert(
            name.clone(),
            json!(crate::load::round3(ticks as f64 / TICKS / wall * 100.0)),
        );
    }
    if let (Some((b0, t0)), Some((b1, t1))) = (a.machine, b.machine) {
        let busy = (b1 - b0) as f64 / ((t1 - t0) as f64).max(1.0);
        out.insert(
            "machine".into(),
            json!(crate::load::round3(busy * 100.0 * cores() as f64)),
        );
        out.insert("machine_capacity".into(), json!(100 * cores()));
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_specs_parse() {
        let w: Watch = "api=12,13".parse().unwrap();
        assert_eq!(w.pids, vec![12, 13]);
        let w: Watch = "pg=comm:postgres".parse().unwrap();
        assert_eq!(w.comm.as_deref(), Some("postgres"));
        assert!("nope".parse::<Watch>().is_err());
    }

    #[test]
    fn own_cpu_is_measured() {
        if proc_ticks(std::process::id()).is_none() {
            return; // not Linux
        }
        let a = snapshot(&[]);
        let t = Instant::now();
        let mut x = 0u64;
        while t.elapsed().as_millis() < 100 {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        let b = snapshot(&[]);
        let v = cpu_between(&a, &b);
        assert!(v["paygate-bench"].as_f64().unwrap() >= 0.0, "{v} {x}");
    }
}
