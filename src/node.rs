//! What the node as a whole is doing, shared by the call handler, the ACD, the HTTP routes
//! and `serve`: whether it is draining (new calls refused with 503 and Retry-After, `/ready`
//! answering 503 so a load balancer or trunk stops sending), how many calls are in progress,
//! and what it restored from PostgreSQL at start (issue 24). `[node]` configures the drain and
//! the pid file `hotline drain` reads.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use serde::{Deserialize, Serialize};

/// `[node]`: how this node stops.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    /// On SIGTERM (or `hotline drain`) the node stops taking new calls and waits this many
    /// seconds at most for the calls in progress to end before it stops; 0 stops at once.
    pub drain_secs: u64,
    /// The Retry-After of the 503 a new call gets while the node drains.
    pub retry_after_secs: u32,
    /// Where `serve` writes its process id (`hotline drain` reads it).
    pub pid_file: PathBuf,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            drain_secs: 120,
            retry_after_secs: 30,
            pid_file: PathBuf::from("data/hotline.pid"),
        }
    }
}

impl NodeConfig {
    /// Problems of the section (an empty list: usable).
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.drain_secs > 86_400 {
            out.push(format!(
                "`node.drain_secs` is {}: expected 0 to 86400 seconds",
                self.drain_secs
            ));
        }
        if !(1..=3600).contains(&self.retry_after_secs) {
            out.push(format!(
                "`node.retry_after_secs` is {}: expected 1 to 3600 seconds",
                self.retry_after_secs
            ));
        }
        out
    }
}

/// What the node restored from PostgreSQL at start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Restored {
    /// SIP registrations still valid, live again without the phones re-registering.
    pub bindings: usize,
    /// Agents back in the state they chose.
    pub agents: usize,
    /// Kept callbacks back in their queue's order.
    pub callbacks: usize,
    /// Callers whose calls died with the last process, put on the missed-call list.
    pub missed: usize,
    /// Rows that could not be read (logged with their ids) and were skipped.
    pub skipped: usize,
}

/// The node as the wall board shows it.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct NodeView {
    /// New calls are refused while the calls in progress end.
    pub draining: bool,
    /// Calls in progress.
    pub calls_in_progress: usize,
    /// What the node restored from the last run at start.
    pub restored: Restored,
}

/// The node's state as every part sees it.
#[derive(Debug)]
pub struct NodeState {
    draining: AtomicBool,
    live_calls: AtomicUsize,
    retry_after_secs: u32,
    restored: Mutex<Restored>,
}

impl Default for NodeState {
    fn default() -> Self {
        NodeState::new(NodeConfig::default().retry_after_secs)
    }
}

impl NodeState {
    /// A node taking calls; a drain asks callers to retry after `retry_after_secs`.
    pub fn new(retry_after_secs: u32) -> NodeState {
        NodeState {
            draining: AtomicBool::new(false),
            live_calls: AtomicUsize::new(0),
            retry_after_secs,
            restored: Mutex::new(Restored::default()),
        }
    }

    /// From now on new calls are refused.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
        metrics::gauge!("hotline_node_draining").set(1.0);
    }

    /// Whether the node is draining.
    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Seconds a caller refused during the drain is asked to wait.
    pub fn retry_after_secs(&self) -> u32 {
        self.retry_after_secs
    }

    /// The call handler's count of calls in progress (callers' calls and callbacks being
    /// dialled).
    pub fn set_live_calls(&self, n: usize) {
        self.live_calls.store(n, Ordering::SeqCst);
    }

    /// Calls in progress.
    pub fn live_calls(&self) -> usize {
        self.live_calls.load(Ordering::SeqCst)
    }

    /// Adds to what was restored at start, and to its metrics.
    pub fn add_restored(&self, f: impl FnOnce(&mut Restored)) {
        if let Ok(mut r) = self.restored.lock() {
            f(&mut r);
            for (what, n) in [
                ("bindings", r.bindings),
                ("agents", r.agents),
                ("callbacks", r.callbacks),
                ("missed", r.missed),
                ("skipped", r.skipped),
            ] {
                metrics::gauge!("hotline_node_restored", "what" => what).set(n as f64);
            }
        }
    }

    /// What was restored at start.
    pub fn restored(&self) -> Restored {
        self.restored.lock().map(|r| *r).unwrap_or_default()
    }

    /// The node as the wall board shows it.
    pub fn view(&self) -> NodeView {
        NodeView {
            draining: self.draining(),
            calls_in_progress: self.live_calls(),
            restored: self.restored(),
        }
    }
}

/// The process id written at `path` by a node starting; removed again by [`PidFile::drop`]
/// (only while it still names this process).
#[derive(Debug)]
pub struct PidFile {
    path: PathBuf,
}

impl PidFile {
    /// Writes this process's id at `path` (creating its folder). A file naming another live
    /// process is an error: two nodes would share the file and `hotline drain` would stop the
    /// wrong one.
    pub fn write(path: &Path) -> Result<PidFile, String> {
        if let Some(pid) = read_pid(path)
            && pid != std::process::id()
            && process_alive(pid)
        {
            return Err(format!(
                "`node.pid_file` {} names process {pid}, which is running: another node uses this file",
                path.display()
            ));
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("`node.pid_file` {}: {e}", path.display()))?;
        }
        std::fs::write(path, format!("{}\n", std::process::id()))
            .map_err(|e| format!("`node.pid_file` {}: {e}", path.display()))?;
        Ok(PidFile {
            path: path.to_path_buf(),
        })
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        if read_pid(&self.path) == Some(std::process::id()) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The process id in a pid file, if it holds one.
pub fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Whether a process with this id runs (signal 0 checks without sending anything); one that
/// has exited and waits for its parent to collect it (a zombie) does not.
pub fn process_alive(pid: u32) -> bool {
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    if nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), None).is_err() {
        return false;
    }
    // /proc/PID/stat: "pid (comm) S ...", the state after the last ')'.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next());
    !matches!(state, Some("Z" | "X"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pid_file_names_this_process_and_goes_with_it_but_another_live_nodes_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/hotline.pid");
        {
            let _f = PidFile::write(&path).unwrap();
            assert_eq!(read_pid(&path), Some(std::process::id()));
        }
        assert!(!path.exists(), "removed at stop");
        // pid 1 runs on every Linux machine.
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "1\n").unwrap();
        let e = PidFile::write(&path).unwrap_err();
        assert!(e.contains("names process 1"), "{e}");
        // A stale file (no such process) is taken over.
        std::fs::write(&path, format!("{}\n", i32::MAX)).unwrap();
        let f = PidFile::write(&path).unwrap();
        assert_eq!(read_pid(&path), Some(std::process::id()));
        drop(f);
    }

    #[test]
    fn bad_drain_settings_are_named() {
        let c = NodeConfig {
            drain_secs: 100_000,
            retry_after_secs: 0,
            ..NodeConfig::default()
        };
        let p = c.problems();
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].contains("node.drain_secs") && p[1].contains("node.retry_after_secs"));
    }
}
