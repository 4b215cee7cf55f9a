//! Call recordings: one stereo WAV per call under `recordings.dir`, the caller on the left
//! channel and the other party (the IVR's prompts; later the agent) on the right, one frame
//! per 20 ms tick of the call's media clock, so gaps and hold are silence and both sides stay
//! aligned.
//!
//! The files are written by a thread of its own: the media threads hand frames over a channel
//! and never wait on a disk. A recording in progress is `NAME.wav.part`, its header made
//! valid every 5 s; it becomes `NAME.wav` when the call ends. After a crash, [`repair_all`]
//! (run by `serve` at start) makes every `.part` file a valid WAV holding all its audio and
//! gives it its final name.
//!
//! A full disk must not end calls: below `recordings.min_free_mb` of free space (checked
//! every second by the writer) the recordings in progress are finished where they are and new
//! calls are not recorded, each logged and counted (`hotline_recordings_cut_total`,
//! `hotline_recordings_skipped_total`, gauge `hotline_recordings_disk_low`); the calls go on.
//! Recording starts again once the free space is a tenth above the watermark, so a disk at
//! the edge does not flip at every check.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use hotline_sip::media::recorder::{Recorder, repair};
use hotline_sip::rtp::jitter::FRAME;
use hotline_sip::sdp::Codec;

/// Frames between header updates of a recording in progress (5 s).
const FLUSH_FRAMES: u64 = 250;

/// Frames queued for the writer at most: a second of 1,000 calls (about 17 MB). The writer
/// keeps up on average; the queue absorbs its pauses.
const QUEUE: usize = 50_000;

// Frames are nearly every command: carried inline, not boxed (no allocation per frame).
#[allow(clippy::large_enum_variant)]
enum Cmd {
    Open {
        key: u64,
        path: PathBuf,
    },
    Frame {
        key: u64,
        caller: [u8; FRAME],
        caller_codec: Codec,
        ours: [u8; FRAME],
        our_codec: Codec,
    },
    Close {
        key: u64,
    },
}

/// How often the writer looks at the free space.
const DISK_CHECK: Duration = Duration::from_secs(1);

/// The free-space rule: below `min_free` bytes recording stops; it starts again at
/// `min_free` plus a tenth. Sans-IO: the writer feeds it what `statvfs` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watermark {
    min_free: u64,
    low: bool,
}

impl Watermark {
    /// The rule for `min_free` bytes (0: never low).
    pub fn new(min_free: u64) -> Self {
        Watermark {
            min_free,
            low: false,
        }
    }

    /// Whether recording is stopped.
    pub fn low(&self) -> bool {
        self.low
    }

    /// `free` bytes are free now: `Some(low)` when that changes whether recording is stopped.
    pub fn observe(&mut self, free: u64) -> Option<bool> {
        let low = if self.low {
            free < self.min_free.saturating_add(self.min_free / 10)
        } else {
            free < self.min_free
        };
        (low != self.low).then(|| {
            self.low = low;
            low
        })
    }
}

/// Bytes free to an unprivileged writer on the file system holding `dir` (or the nearest
/// existing directory above it); `None` when it cannot be told.
fn free_bytes(dir: &Path) -> Option<u64> {
    let mut d = Some(dir);
    while let Some(p) = d {
        if let Ok(s) = nix::sys::statvfs::statvfs(p) {
            return Some(s.blocks_available().saturating_mul(s.fragment_size()));
        }
        d = p.parent();
    }
    None
}

/// The recording thread's handle.
pub struct Recordings {
    dir: PathBuf,
    tx: Option<mpsc::Sender<Cmd>>,
    /// Frames sent and not yet taken by the writer.
    queued: Arc<AtomicUsize>,
    /// The disk is below the watermark: calls are not recorded.
    low: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Recordings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recordings")
            .field("dir", &self.dir)
            .finish()
    }
}

impl Recordings {
    /// Starts the recording thread writing under `dir`, recording while at least
    /// `min_free` bytes are free there (0: no check).
    pub fn start(dir: &Path, min_free: u64) -> std::io::Result<Recordings> {
        let (tx, rx) = mpsc::channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let q = Arc::clone(&queued);
        let mut mark = Watermark::new(min_free);
        let low = Arc::new(AtomicBool::new(false));
        if min_free > 0 {
            let free = free_bytes(dir);
            if let Some(free) = free
                && mark.observe(free) == Some(true)
            {
                low_space(free, min_free);
                low.store(true, Ordering::Relaxed);
            }
        }
        let (l, d) = (Arc::clone(&low), dir.to_path_buf());
        let thread = std::thread::Builder::new()
            .name("recordings".into())
            .spawn(move || {
                write_loop(
                    rx,
                    &q,
                    Disk {
                        dir: d,
                        mark,
                        low: l,
                    },
                )
            })?;
        Ok(Recordings {
            dir: dir.to_path_buf(),
            tx: Some(tx),
            queued,
            low,
            thread: Some(thread),
        })
    }

    /// Whether a call starting now is recorded (false while the disk is below the
    /// watermark).
    pub fn accepting(&self) -> bool {
        !self.low.load(Ordering::Relaxed)
    }

    /// Where the recording of a call that started at `started` goes (its final name):
    /// `DIR/YYYY-MM-DD/HHMMSS-KEY-CALLID.wav`, the Call-ID cut to safe characters.
    pub fn path_for(&self, started: DateTime<Utc>, key: u64, call_id: &str) -> PathBuf {
        let safe: String = call_id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .take(64)
            .collect();
        self.dir
            .join(started.format("%Y-%m-%d").to_string())
            .join(format!("{}-{key}-{safe}.wav", started.format("%H%M%S")))
    }

    /// Starts recording call `key` to `path` (written as `path.part` until closed).
    pub fn open(&self, key: u64, path: PathBuf) {
        self.send(Cmd::Open { key, path });
    }

    /// One tick: what the caller said and what we sent.
    pub fn frame(
        &self,
        key: u64,
        caller: &[u8],
        caller_codec: Codec,
        ours: &[u8],
        our_codec: Codec,
    ) {
        let mut c = [caller_codec.silence(); FRAME];
        let n = caller.len().min(FRAME);
        c[..n].copy_from_slice(&caller[..n]);
        let mut o = [our_codec.silence(); FRAME];
        let n = ours.len().min(FRAME);
        o[..n].copy_from_slice(&ours[..n]);
        self.send(Cmd::Frame {
            key,
            caller: c,
            caller_codec,
            ours: o,
            our_codec,
        });
    }

    /// The call ended: the file is finished and gets its final name.
    pub fn close(&self, key: u64) {
        self.send(Cmd::Close { key });
    }

    /// Queues a command without ever blocking the media thread. When the disk cannot keep
    /// up and [`QUEUE`] frames wait already, a frame is dropped (a gap in that recording,
    /// counted) rather than late audio for every caller; opening and closing always go.
    fn send(&self, c: Cmd) {
        let Some(tx) = &self.tx else {
            return;
        };
        if matches!(c, Cmd::Frame { .. }) {
            if self.queued.load(Ordering::Relaxed) >= QUEUE {
                metrics::counter!("hotline_recording_frames_dropped_total").increment(1);
                return;
            }
            self.queued.fetch_add(1, Ordering::Relaxed);
        }
        let _ = tx.send(c);
    }
}

impl Drop for Recordings {
    /// Finishes every recording still open (the node is stopping).
    fn drop(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn part(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".part");
    PathBuf::from(p)
}

/// The writer's view of the disk.
struct Disk {
    dir: PathBuf,
    mark: Watermark,
    /// Shared with the handle: new calls are not recorded while set.
    low: Arc<AtomicBool>,
}

fn low_space(free: u64, min_free: u64) {
    metrics::gauge!("hotline_recordings_disk_low").set(1.0);
    tracing::error!(
        free_mb = free / (1 << 20),
        min_free_mb = min_free / (1 << 20),
        "recordings stop: the disk is below recordings.min_free_mb (calls go on unrecorded)"
    );
}

fn write_loop(rx: mpsc::Receiver<Cmd>, queued: &AtomicUsize, mut disk: Disk) {
    // Finishing a file waits for the disk (sync); a thread of its own does it, so the frames
    // of every other call keep being written meanwhile.
    let (close_tx, close_rx) = mpsc::channel::<(Recorder, PathBuf)>();
    let closer = std::thread::Builder::new()
        .name("recordings-close".into())
        .spawn(move || {
            while let Ok((r, path)) = close_rx.recv() {
                finish(r, &path);
            }
        });
    let close = |r: Recorder, path: PathBuf| match &closer {
        Ok(_) => {
            if let Err(mpsc::SendError((r, path))) = close_tx.send((r, path)) {
                finish(r, &path);
            }
        }
        Err(_) => finish(r, &path),
    };
    let mut open: HashMap<u64, (Recorder, PathBuf)> = HashMap::new();
    let mut checked = Instant::now();
    loop {
        let cmd = match rx.recv_timeout(DISK_CHECK) {
            Ok(cmd) => Some(cmd),
            Err(mpsc::RecvTimeoutError::Timeout) => None,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        if disk.mark.min_free > 0 && checked.elapsed() >= DISK_CHECK {
            checked = Instant::now();
            match free_bytes(&disk.dir).map(|f| (f, disk.mark.observe(f))) {
                Some((free, Some(true))) => {
                    low_space(free, disk.mark.min_free);
                    disk.low.store(true, Ordering::Relaxed);
                    let cut = open.len();
                    metrics::counter!("hotline_recordings_cut_total", "reason" => "disk_low")
                        .increment(cut as u64);
                    for (_, (r, path)) in open.drain() {
                        tracing::warn!(path = %path.display(), "recording finished early: the disk is low");
                        close(r, path);
                    }
                }
                Some((free, Some(false))) => {
                    metrics::gauge!("hotline_recordings_disk_low").set(0.0);
                    tracing::warn!(
                        free_mb = free / (1 << 20),
                        "recordings start again: the disk has room"
                    );
                    disk.low.store(false, Ordering::Relaxed);
                }
                _ => {}
            }
        }
        let Some(cmd) = cmd else {
            continue;
        };
        if matches!(cmd, Cmd::Frame { .. }) {
            queued.fetch_sub(1, Ordering::Relaxed);
        }
        match cmd {
            Cmd::Open { key, path } if disk.mark.low() => {
                metrics::counter!("hotline_recordings_skipped_total", "reason" => "disk_low")
                    .increment(1);
                tracing::warn!(key, path = %path.display(), "call not recorded: the disk is low");
            }
            Cmd::Open { key, path } => {
                if let Some(dir) = path.parent()
                    && let Err(e) = std::fs::create_dir_all(dir)
                {
                    tracing::error!(error = %e, dir = %dir.display(), "cannot create the recordings directory");
                    continue;
                }
                match Recorder::create(&part(&path), FLUSH_FRAMES) {
                    Ok(r) => {
                        open.insert(key, (r, path));
                    }
                    Err(e) => {
                        metrics::counter!("hotline_recordings_failed_total").increment(1);
                        tracing::error!(error = %e, path = %path.display(), "cannot start a recording");
                    }
                }
            }
            Cmd::Frame {
                key,
                caller,
                caller_codec,
                ours,
                our_codec,
            } => {
                if let Some((r, path)) = open.get_mut(&key)
                    && let Err(e) =
                        r.push(Some(&caller[..]), caller_codec, Some(&ours[..]), our_codec)
                {
                    tracing::error!(error = %e, path = %path.display(), "recording write failed; it stops here");
                    open.remove(&key);
                }
            }
            Cmd::Close { key } => {
                if let Some((r, path)) = open.remove(&key) {
                    close(r, path);
                }
            }
        }
    }
    for (_, (r, path)) in open.drain() {
        close(r, path);
    }
    drop(close_tx);
    if let Ok(t) = closer {
        let _ = t.join();
    }
}

fn finish(r: Recorder, path: &Path) {
    match r.finish() {
        Ok(tmp) => {
            if let Err(e) = std::fs::rename(&tmp, path) {
                tracing::error!(error = %e, path = %path.display(), "cannot give a recording its name");
            } else {
                metrics::counter!("hotline_recordings_total").increment(1);
            }
        }
        Err(e) => tracing::error!(error = %e, path = %path.display(), "cannot finish a recording"),
    }
}

/// Repairs every unfinished recording (`*.wav.part`) under `dir` and gives it its final name;
/// returns the final paths with their seconds of audio. Files that cannot be repaired are
/// left as they are and logged.
pub fn repair_all(dir: &Path) -> Vec<(PathBuf, f64)> {
    let mut done = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let Some(name) = p.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            let Some(final_name) = name.strip_suffix(".part") else {
                continue;
            };
            let target = p.with_file_name(final_name);
            match repair(&p).and_then(|secs| std::fs::rename(&p, &target).map(|()| secs)) {
                Ok(secs) => {
                    tracing::warn!(path = %target.display(), seconds = secs, "unfinished recording repaired");
                    done.push((target, secs));
                }
                Err(e) => {
                    tracing::error!(error = %e, path = %p.display(), "unfinished recording cannot be repaired")
                }
            }
        }
    }
    done
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn below_the_watermark_recording_stops_and_starts_again_a_tenth_above() {
        let mut m = Watermark::new(1000);
        assert_eq!(m.observe(5000), None, "plenty of room: nothing changes");
        assert_eq!(m.observe(999), Some(true), "below: recording stops");
        assert!(m.low());
        assert_eq!(m.observe(1050), None, "just above is not enough");
        assert_eq!(
            m.observe(1100),
            Some(false),
            "a tenth above: it starts again"
        );
        assert_eq!(m.observe(1000), None);
        let mut off = Watermark::new(0);
        assert_eq!(off.observe(0), None, "0 turns the check off");
    }

    #[test]
    fn the_free_space_of_a_directory_not_made_yet_is_its_parents() {
        let dir = std::env::temp_dir().join("hotline-no-such-dir/a/b");
        assert!(free_bytes(&dir).is_some_and(|f| f > 0));
    }
}
