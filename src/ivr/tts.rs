//! Text-to-speech for `text` prompts: a pluggable command, its output converted to 8 kHz mono
//! and cached by content hash, so each text is synthesised once.
//!
//! The command is a list of arguments in which `{text}` and `{out}` are replaced by the text
//! and the WAV file to write (without `{text}`, the text is written to its standard input);
//! the default is espeak-ng with its Mandarin voice (`espeak-ng -v cmn -w {out} --stdin`,
//! Debian package `espeak-ng`). Its output (espeak-ng
//! writes 22,050 Hz) is resampled to 8 kHz with a windowed-sinc low-pass, so nothing above the
//! telephone band folds back as noise.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sha2::{Digest, Sha256};

/// The default command.
pub const DEFAULT_COMMAND: [&str; 6] = ["espeak-ng", "-v", "cmn", "-w", "{out}", "--stdin"];

/// A text-to-speech engine with a cache.
#[derive(Debug, Clone)]
pub struct Tts {
    /// Program and arguments, with `{text}` and `{out}` placeholders; without `{text}` the
    /// text goes to the program's standard input (so a text starting with `-` is never taken
    /// for an option).
    pub command: Vec<String>,
    /// Where synthesised prompts are kept.
    pub cache_dir: PathBuf,
}

/// Why a text could not be spoken.
#[derive(Debug, thiserror::Error)]
pub enum TtsError {
    /// The program is not there.
    #[error(
        "text-to-speech program {0:?} not found (the default needs: apt-get install espeak-ng)"
    )]
    Missing(String),
    /// It ran and failed.
    #[error("text-to-speech {program:?} failed: {why}")]
    Failed {
        /// The program.
        program: String,
        /// What happened.
        why: String,
    },
    /// Its output is not a WAV we can read.
    #[error("text-to-speech output: {0}")]
    Output(String),
    /// The cache could not be written.
    #[error("text-to-speech cache {dir}: {why}")]
    Cache {
        /// The directory.
        dir: String,
        /// What went wrong.
        why: String,
    },
}

impl Tts {
    /// espeak-ng's Mandarin voice, caching under `cache_dir`.
    pub fn espeak(cache_dir: &Path) -> Tts {
        Tts {
            command: DEFAULT_COMMAND.iter().map(|s| s.to_string()).collect(),
            cache_dir: cache_dir.to_path_buf(),
        }
    }

    /// The engine for a script: `command` (the default when `None`), caching in `.tts-cache`
    /// beside the script.
    pub fn for_script(script: &Path, command: Option<&[String]>) -> Tts {
        let dir = script.parent().unwrap_or(Path::new(".")).join(".tts-cache");
        match command {
            Some(c) if !c.is_empty() => Tts {
                command: c.to_vec(),
                cache_dir: dir,
            },
            _ => Tts::espeak(&dir),
        }
    }

    /// The cached 8 kHz mono WAV for `text`, synthesised first if it is not cached yet.
    pub fn speak(&self, text: &str) -> Result<PathBuf, TtsError> {
        let mut h = Sha256::new();
        for part in &self.command {
            h.update(part.as_bytes());
            h.update([0]);
        }
        h.update(text.as_bytes());
        let key: String = h.finalize()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let cached = self.cache_dir.join(format!("{key}.wav"));
        if cached.is_file() {
            return Ok(cached);
        }
        let cache_err = |e: std::io::Error| TtsError::Cache {
            dir: self.cache_dir.display().to_string(),
            why: e.to_string(),
        };
        std::fs::create_dir_all(&self.cache_dir).map_err(cache_err)?;
        // Scratch names of this process and call: two nodes sharing the cache (tests run in
        // parallel; a node restarting beside one still up) synthesising the same text at once
        // must not write into each other's files.
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let scratch = format!("{key}.{}.{n}", std::process::id());
        let raw = self.cache_dir.join(format!("{scratch}.raw.wav"));
        let samples = self.synthesize(text, &raw)?;
        // Written aside and renamed, so a crash never leaves a half file in the cache (and a
        // reader sees the whole file or none).
        let tmp = self.cache_dir.join(format!("{scratch}.tmp"));
        write_wav(&tmp, &samples).map_err(cache_err)?;
        std::fs::rename(&tmp, &cached).map_err(cache_err)?;
        Ok(cached)
    }

    /// Speech for a text said once (a ticket's status): synthesised into a scratch file that
    /// is removed at once, never cached, so what a citizen heard is not kept on disk.
    pub fn speak_once(&self, text: &str) -> Result<Vec<i16>, TtsError> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let raw =
            std::env::temp_dir().join(format!("hotline-tts-{}-{n}.raw.wav", std::process::id()));
        self.synthesize(text, &raw)
    }

    /// Runs the program to write `raw` and reads it back as 8 kHz mono samples; `raw` is
    /// removed either way.
    fn synthesize(&self, text: &str, raw: &Path) -> Result<Vec<i16>, TtsError> {
        let Some((program, args)) = self.command.split_first() else {
            return Err(TtsError::Missing(String::new()));
        };
        let by_stdin = !args.iter().any(|a| a.contains("{text}"));
        let args: Vec<String> = args
            .iter()
            .map(|a| {
                a.replace("{out}", &raw.to_string_lossy())
                    .replace("{text}", text)
            })
            .collect();
        let run = || -> std::io::Result<std::process::Output> {
            let mut child = Command::new(program)
                .args(&args)
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()?;
            if let Some(mut stdin) = child.stdin.take()
                && by_stdin
            {
                // A program that exits without reading is judged by its exit status.
                if let Err(e) = stdin.write_all(text.as_bytes())
                    && e.kind() != std::io::ErrorKind::BrokenPipe
                {
                    return Err(e);
                }
            }
            child.wait_with_output()
        };
        let out = run().map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                TtsError::Missing(program.clone())
            } else {
                TtsError::Failed {
                    program: program.clone(),
                    why: e.to_string(),
                }
            }
        })?;
        if !out.status.success() {
            let _ = std::fs::remove_file(raw);
            return Err(TtsError::Failed {
                program: program.clone(),
                why: format!(
                    "{}: {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            });
        }
        let converted = to_8k_mono(raw);
        let _ = std::fs::remove_file(raw);
        converted
    }
}

/// The samples of a WAV the cache holds (or any 16-bit PCM WAV), as 8 kHz mono.
pub fn read_8k(path: &Path) -> Result<Vec<i16>, TtsError> {
    to_8k_mono(path)
}

/// Reads a 16-bit PCM WAV of any rate and channel count; returns 8 kHz mono samples.
fn to_8k_mono(path: &Path) -> Result<Vec<i16>, TtsError> {
    let reader = hound::WavReader::open(path).map_err(|e| TtsError::Output(e.to_string()))?;
    let spec = reader.spec();
    if spec.sample_format != hound::SampleFormat::Int || spec.bits_per_sample != 16 {
        return Err(TtsError::Output(format!(
            "{}-bit {:?} samples; expected 16-bit PCM",
            spec.bits_per_sample, spec.sample_format
        )));
    }
    let channels = usize::from(spec.channels.max(1));
    let all: Vec<i16> = reader
        .into_samples::<i16>()
        .collect::<Result<_, _>>()
        .map_err(|e| TtsError::Output(e.to_string()))?;
    let mono: Vec<i16> = all
        .chunks(channels)
        .map(|c| (c.iter().map(|&s| i32::from(s)).sum::<i32>() / c.len() as i32) as i16)
        .collect();
    Ok(resample(&mono, spec.sample_rate, 8000))
}

fn write_wav(path: &Path, samples: &[i16]) -> std::io::Result<()> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).map_err(std::io::Error::other)?;
    for &s in samples {
        w.write_sample(s).map_err(std::io::Error::other)?;
    }
    w.finalize().map_err(std::io::Error::other)
}

/// Resamples with a Hann-windowed sinc whose cut-off sits at 90 % of the lower Nyquist
/// frequency.
pub fn resample(input: &[i16], from: u32, to: u32) -> Vec<i16> {
    if from == to || from == 0 || to == 0 || input.is_empty() {
        return input.to_vec();
    }
    let ratio = f64::from(from) / f64::from(to);
    // Cut-off in cycles per input sample.
    let fc = 0.5 * 0.9 * (f64::from(to) / f64::from(from)).min(1.0);
    let half = (8.0 * ratio.max(1.0)).ceil() as i64;
    let len = (input.len() as u64 * u64::from(to) / u64::from(from)) as usize;
    let last = input.len() as i64 - 1;
    (0..len)
        .map(|n| {
            let t = n as f64 * ratio;
            let centre = t.floor() as i64;
            let mut acc = 0.0;
            for k in (centre - half + 1).max(0)..=(centre + half).min(last) {
                let x = t - k as f64;
                let window = 0.5 * (1.0 + (std::f64::consts::PI * x / half as f64).cos());
                let arg = 2.0 * fc * x;
                let sinc = if arg.abs() < 1e-12 {
                    1.0
                } else {
                    (std::f64::consts::PI * arg).sin() / (std::f64::consts::PI * arg)
                };
                // k is within 0..=last by the range above.
                acc += f64::from(input[k as usize]) * 2.0 * fc * sinc * window;
            }
            acc.round().clamp(f64::from(i16::MIN), f64::from(i16::MAX)) as i16
        })
        .collect()
}

#[cfg(test)]
mod tests;
