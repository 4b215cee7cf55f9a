//! The stereo call recorder: caller on the left channel, agent on the right, 8 kHz 16-bit
//! WAV. Frames come from both legs at every tick of the media clock (a missing frame is
//! silence). The file is kept valid on disk: every `flush_every` of audio the WAV header is
//! rewritten for the samples so far, so a crash of the process loses at most that much (and
//! [`repair`] recovers even that) and never leaves an unreadable file; `finish` closes it and
//! syncs it to disk.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use super::g711::{alaw_decode, ulaw_decode};
use crate::rtp::jitter::FRAME;
use crate::sdp::Codec;

/// One recording in progress.
pub struct Recorder {
    path: PathBuf,
    writer: Option<hound::WavWriter<BufWriter<File>>>,
    sync: File,
    frames: u64,
    flush_every: u64,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("path", &self.path)
            .field("frames", &self.frames)
            .finish()
    }
}

fn decode(frame: Option<&[u8]>, codec: Codec, i: usize) -> i16 {
    match frame.and_then(|f| f.get(i)) {
        Some(b) => match codec {
            Codec::Pcmu => ulaw_decode(*b),
            Codec::Pcma => alaw_decode(*b),
        },
        None => 0,
    }
}

impl Recorder {
    /// Creates the file; the header is made valid every `flush_every_frames` frames of 20 ms
    /// (250 = 5 s).
    pub fn create(path: &Path, flush_every_frames: u64) -> std::io::Result<Recorder> {
        let file = File::create(path)?;
        let sync = file.try_clone()?;
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 8000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let writer = hound::WavWriter::new(BufWriter::new(file), spec)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(Recorder {
            path: path.to_path_buf(),
            writer: Some(writer),
            sync,
            frames: 0,
            flush_every: flush_every_frames.max(1),
        })
    }

    /// One 20 ms tick: the caller's and the agent's frames (each in its own law).
    pub fn push(
        &mut self,
        caller: Option<&[u8]>,
        caller_codec: Codec,
        agent: Option<&[u8]>,
        agent_codec: Codec,
    ) -> std::io::Result<()> {
        let Some(w) = self.writer.as_mut() else {
            return Err(std::io::Error::other("recording already finished"));
        };
        let err = |e: hound::Error| std::io::Error::other(e.to_string());
        // hound's fixed-size 16-bit writer: one bounds check per frame, not per sample.
        let mut out = w.get_i16_writer((FRAME * 2) as u32);
        for i in 0..FRAME {
            out.write_sample(decode(caller, caller_codec, i));
            out.write_sample(decode(agent, agent_codec, i));
        }
        out.flush().map_err(err)?;
        self.frames += 1;
        if self.frames.is_multiple_of(self.flush_every) {
            self.flush()?;
        }
        Ok(())
    }

    /// Makes the file valid for everything pushed so far (header rewritten, buffers written
    /// to the file). It does not wait for the disk: a process that dies keeps all of it (the
    /// kernel has it); a machine that dies keeps what the kernel wrote back, and `finish`
    /// syncs. Syncing every few seconds for every call would cost a disk wait per call per
    /// flush, which at a thousand calls is more than a disk gives.
    pub fn flush(&mut self) -> std::io::Result<()> {
        if let Some(w) = self.writer.as_mut() {
            w.flush()
                .map_err(|e| std::io::Error::other(e.to_string()))?;
        }
        Ok(())
    }

    /// Seconds recorded.
    pub fn seconds(&self) -> f64 {
        self.frames as f64 * 0.02
    }

    /// Closes the recording; returns its path.
    pub fn finish(mut self) -> std::io::Result<PathBuf> {
        if let Some(w) = self.writer.take() {
            w.finalize()
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            self.sync.sync_all()?;
        }
        Ok(self.path.clone())
    }
}

/// Makes an unfinished recording (the process died before [`Recorder::finish`]) a valid WAV
/// with all the audio it holds: the RIFF and data sizes are set from the file's length, and a
/// torn last sample frame is cut. Returns the seconds of audio. A file that is not a WAV this
/// recorder wrote (no RIFF/WAVE, no fmt and data chunks) is an error and is left alone.
pub fn repair(path: &Path) -> std::io::Result<f64> {
    use std::io::{Read, Seek, SeekFrom, Write};
    let bad = |why: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, why.to_string());
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)?;
    let len = f.metadata()?.len();
    let mut head = [0u8; 12];
    f.read_exact(&mut head)?;
    if &head[0..4] != b"RIFF" || &head[8..12] != b"WAVE" {
        return Err(bad("not a RIFF/WAVE file"));
    }
    // Walk the chunks to `data`, reading the block size from `fmt `.
    let mut pos = 12u64;
    let mut block_align = 0u64;
    let mut bytes_per_second = 0u64;
    let data_at = loop {
        if pos + 8 > len {
            return Err(bad("no data chunk"));
        }
        f.seek(SeekFrom::Start(pos))?;
        let mut ch = [0u8; 8];
        f.read_exact(&mut ch)?;
        let size = u64::from(u32::from_le_bytes([ch[4], ch[5], ch[6], ch[7]]));
        if &ch[0..4] == b"data" {
            break pos;
        }
        if &ch[0..4] == b"fmt " {
            let mut fmt = [0u8; 16];
            f.read_exact(&mut fmt)?;
            bytes_per_second = u64::from(u32::from_le_bytes([fmt[8], fmt[9], fmt[10], fmt[11]]));
            block_align = u64::from(u16::from_le_bytes([fmt[12], fmt[13]]));
        }
        pos += 8 + size + (size & 1);
    };
    if block_align == 0 || bytes_per_second == 0 {
        return Err(bad("no usable fmt chunk before the data"));
    }
    let data_start = data_at + 8;
    let data_len = (len.saturating_sub(data_start) / block_align) * block_align;
    let riff_len = data_start + data_len - 8;
    let (Ok(data32), Ok(riff32)) = (u32::try_from(data_len), u32::try_from(riff_len)) else {
        return Err(bad("longer than a WAV can say"));
    };
    f.set_len(data_start + data_len)?;
    f.seek(SeekFrom::Start(4))?;
    f.write_all(&riff32.to_le_bytes())?;
    f.seek(SeekFrom::Start(data_at + 4))?;
    f.write_all(&data32.to_le_bytes())?;
    f.sync_all()?;
    Ok(data_len as f64 / bytes_per_second as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::g711::ulaw_encode;

    fn read(path: &Path) -> (hound::WavSpec, Vec<i16>) {
        let r = hound::WavReader::open(path).unwrap();
        let spec = r.spec();
        (spec, r.into_samples::<i16>().map(Result::unwrap).collect())
    }

    #[test]
    fn caller_left_agent_right() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("call.wav");
        let mut rec = Recorder::create(&path, 250).unwrap();
        let caller = [ulaw_encode(8000); FRAME];
        let agent = [super::super::g711::alaw_encode(-4000); FRAME];
        for _ in 0..50 {
            rec.push(Some(&caller), Codec::Pcmu, Some(&agent), Codec::Pcma)
                .unwrap();
        }
        rec.push(Some(&caller), Codec::Pcmu, None, Codec::Pcma)
            .unwrap();
        assert!((rec.seconds() - 1.02).abs() < 1e-9);
        let path = rec.finish().unwrap();
        let (spec, samples) = read(&path);
        assert_eq!(
            (spec.channels, spec.sample_rate, spec.bits_per_sample),
            (2, 8000, 16)
        );
        assert_eq!(samples.len(), 51 * FRAME * 2);
        assert!(
            (7800..=8200).contains(&samples[0]),
            "left is the caller: {}",
            samples[0]
        );
        assert!(
            (-4200..=-3800).contains(&samples[1]),
            "right is the agent: {}",
            samples[1]
        );
        assert_eq!(
            samples[samples.len() - 1],
            0,
            "a missing agent frame is silence"
        );
    }

    #[test]
    fn a_crash_keeps_everything_up_to_the_last_flush_readable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("crash.wav");
        let mut rec = Recorder::create(&path, 50).unwrap();
        let frame = [ulaw_encode(1000); FRAME];
        for _ in 0..120 {
            rec.push(Some(&frame), Codec::Pcmu, Some(&frame), Codec::Pcmu)
                .unwrap();
        }
        // "Crash" now: what is on disk is a valid WAV with the 100 frames flushed at the
        // 50th and 100th, possibly more; never fewer, never unreadable.
        let snapshot = dir.path().join("snapshot.wav");
        std::fs::copy(&path, &snapshot).unwrap();
        let (_, samples) = read(&snapshot);
        assert!(
            samples.len() >= 100 * FRAME * 2,
            "{} samples",
            samples.len()
        );
        std::mem::forget(rec);
    }

    #[test]
    fn repair_recovers_the_audio_written_after_the_last_flush() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cut.wav");
        let mut rec = Recorder::create(&path, 50).unwrap();
        let frame = [ulaw_encode(1000); FRAME];
        for _ in 0..130 {
            rec.push(Some(&frame), Codec::Pcmu, Some(&frame), Codec::Pcmu)
                .unwrap();
        }
        let path = rec.finish().unwrap();
        // As a kill leaves it: the header says what the last flush (frame 100) saw, 30 more
        // frames follow, and the last sample frame is torn in half.
        let mut bytes = std::fs::read(&path).unwrap();
        let data = (100 * FRAME * 4) as u32;
        bytes[4..8].copy_from_slice(&(36 + data).to_le_bytes());
        bytes[40..44].copy_from_slice(&data.to_le_bytes());
        bytes.extend_from_slice(&[1, 2]);
        std::fs::write(&path, bytes).unwrap();
        let (_, before) = read(&path);
        assert!(before.len() < 130 * FRAME * 2, "the header lags behind");
        let seconds = repair(&path).unwrap();
        assert!((seconds - 2.6).abs() < 1e-9, "{seconds}");
        let (spec, after) = read(&path);
        assert_eq!(spec.channels, 2);
        assert_eq!(after.len(), 130 * FRAME * 2, "every frame written is back");
        assert!(after.iter().all(|s| (900..=1100).contains(s)));
        // Repairing a whole file changes nothing.
        assert!((repair(&path).unwrap() - 2.6).abs() < 1e-9);
    }

    #[test]
    fn repair_leaves_what_is_not_a_wav_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("junk.wav");
        std::fs::write(&path, b"not a wav at all, just text").unwrap();
        assert!(repair(&path).is_err());
        assert_eq!(
            std::fs::read(&path).unwrap(),
            b"not a wav at all, just text"
        );
        std::fs::write(&path, b"RIFF\0\0\0\0WAVE").unwrap();
        assert!(repair(&path).is_err(), "no chunks");
    }
}
