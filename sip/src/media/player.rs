//! Prompts and the prompt player. A prompt is a WAV file decoded once, at load time, into
//! ready-to-send 20 ms G.711 frames in both laws; the player walks a playlist frame by frame
//! for the media clock, and stops at a digit when barge-in is allowed.
//!
//! Accepted: 16-bit PCM WAV, mono or stereo (mixed down), at 8, 16, 32 or 48 kHz (8 kHz by
//! averaging). Anything else is refused with the file name and what is wrong.

use std::path::Path;
use std::sync::Arc;

use super::g711::{alaw_encode, ulaw_encode};
use crate::rtp::jitter::FRAME;
use crate::sdp::Codec;

/// Why a prompt could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    /// The file could not be read as WAV.
    #[error("prompt {file}: {why}")]
    Unreadable {
        /// The file.
        file: String,
        /// What went wrong.
        why: String,
    },
    /// The WAV's format is not one we convert.
    #[error("prompt {file}: {why}; expected 16-bit PCM, mono or stereo, at 8, 16, 32 or 48 kHz")]
    Format {
        /// The file.
        file: String,
        /// What it is.
        why: String,
    },
}

/// A decoded prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompt {
    /// Where it came from.
    pub name: String,
    ulaw: Vec<u8>,
    alaw: Vec<u8>,
}

impl Prompt {
    /// Loads and converts a WAV file.
    pub fn load(path: &Path) -> Result<Prompt, PromptError> {
        let file = path.display().to_string();
        let reader = hound::WavReader::open(path).map_err(|e| PromptError::Unreadable {
            file: file.clone(),
            why: e.to_string(),
        })?;
        let spec = reader.spec();
        if spec.sample_format != hound::SampleFormat::Int || spec.bits_per_sample != 16 {
            return Err(PromptError::Format {
                file,
                why: format!(
                    "{}-bit {:?} samples",
                    spec.bits_per_sample, spec.sample_format
                ),
            });
        }
        if !(1..=2).contains(&spec.channels) {
            return Err(PromptError::Format {
                file,
                why: format!("{} channels", spec.channels),
            });
        }
        let factor = match spec.sample_rate {
            8000 => 1,
            16000 => 2,
            32000 => 4,
            48000 => 6,
            r => {
                return Err(PromptError::Format {
                    file,
                    why: format!("{r} Hz"),
                });
            }
        };
        let samples: Vec<i16> = reader
            .into_samples::<i16>()
            .collect::<Result<_, _>>()
            .map_err(|e| PromptError::Unreadable {
                file: file.clone(),
                why: e.to_string(),
            })?;
        let group = usize::from(spec.channels) * factor;
        let linear: Vec<i16> = samples
            .chunks(group)
            .map(|g| (g.iter().map(|s| i32::from(*s)).sum::<i32>() / g.len() as i32) as i16)
            .collect();
        Ok(Prompt::from_linear(&file, &linear))
    }

    /// A prompt from 8 kHz linear samples (text-to-speech output, tones, tests).
    pub fn from_linear(name: &str, samples: &[i16]) -> Prompt {
        let frames = samples.len().div_ceil(FRAME).max(1);
        let mut ulaw = vec![ulaw_encode(0); frames * FRAME];
        let mut alaw = vec![alaw_encode(0); frames * FRAME];
        for (i, s) in samples.iter().enumerate() {
            ulaw[i] = ulaw_encode(*s);
            alaw[i] = alaw_encode(*s);
        }
        Prompt {
            name: name.to_string(),
            ulaw,
            alaw,
        }
    }

    /// Number of 20 ms frames.
    pub fn frames(&self) -> usize {
        self.ulaw.len() / FRAME
    }

    /// One frame in one law.
    pub fn frame(&self, i: usize, codec: Codec) -> Option<&[u8]> {
        let data = match codec {
            Codec::Pcmu => &self.ulaw,
            Codec::Pcma => &self.alaw,
        };
        data.get(i * FRAME..(i + 1) * FRAME)
    }
}

/// Plays a playlist of prompts for one call leg.
#[derive(Debug, Clone)]
pub struct Player {
    playlist: Vec<Arc<Prompt>>,
    item: usize,
    frame: usize,
    barge_in: bool,
}

impl Player {
    /// A player for `playlist`; with `barge_in`, a digit stops it.
    pub fn new(playlist: Vec<Arc<Prompt>>, barge_in: bool) -> Self {
        Player {
            playlist,
            item: 0,
            frame: 0,
            barge_in,
        }
    }

    /// The next frame for the media clock, `None` when the playlist is over.
    pub fn next_frame(&mut self, codec: Codec) -> Option<&[u8]> {
        while let Some(p) = self.playlist.get(self.item) {
            if self.frame < p.frames() {
                self.frame += 1;
                return self.playlist[self.item].frame(self.frame - 1, codec);
            }
            self.item += 1;
            self.frame = 0;
        }
        None
    }

    /// A digit arrived: with barge-in the playlist stops (returns true).
    pub fn on_digit(&mut self) -> bool {
        if self.barge_in {
            self.item = self.playlist.len();
        }
        self.barge_in
    }

    /// Whether no frame is left to play (everything played, or stopped): true as soon as the
    /// last frame has been taken, so the next prompt can follow without a gap.
    pub fn finished(&self) -> bool {
        let rest = self.playlist.get(self.item..).unwrap_or_default();
        rest.iter().enumerate().all(|(i, p)| {
            let played = if i == 0 { self.frame } else { 0 };
            played >= p.frames()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::g711::ulaw_decode;

    fn write_wav(path: &Path, rate: u32, channels: u16, bits: u16, samples: &[i32]) {
        let spec = hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: bits,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(path, spec).unwrap();
        for s in samples {
            w.write_sample(*s).unwrap();
        }
        w.finalize().unwrap();
    }

    #[test]
    fn an_8khz_mono_prompt_becomes_frames_padded_with_silence() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("greeting.wav");
        let samples: Vec<i32> = (0..400)
            .map(|i| if i % 2 == 0 { 4000 } else { -4000 })
            .collect();
        write_wav(&path, 8000, 1, 16, &samples);
        let p = Prompt::load(&path).unwrap();
        assert_eq!(p.frames(), 3, "400 samples: 2.5 frames, padded");
        let last = p.frame(2, Codec::Pcmu).unwrap();
        assert_eq!(ulaw_decode(last[100]), 0, "padding is silence");
        assert!(ulaw_decode(p.frame(0, Codec::Pcmu).unwrap()[0]) > 3800);
        assert!(p.frame(0, Codec::Pcma).is_some());
        assert!(p.frame(3, Codec::Pcmu).is_none());
    }

    #[test]
    fn wideband_stereo_is_converted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("music.wav");
        // 16 kHz stereo, one second: left 1000, right 3000 -> 2000 mono at 8 kHz.
        let samples: Vec<i32> = (0..32000)
            .map(|i| if i % 2 == 0 { 1000 } else { 3000 })
            .collect();
        write_wav(&path, 16000, 2, 16, &samples);
        let p = Prompt::load(&path).unwrap();
        assert_eq!(p.frames(), 50);
        let v = ulaw_decode(p.frame(10, Codec::Pcmu).unwrap()[5]);
        assert!((1900..=2100).contains(&v), "{v}");
    }

    #[test]
    fn other_formats_are_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hifi.wav");
        write_wav(&path, 44100, 1, 16, &[0; 100]);
        let e = Prompt::load(&path).unwrap_err().to_string();
        assert!(e.contains("hifi.wav") && e.contains("44100 Hz"), "{e}");
        let path = dir.path().join("deep.wav");
        write_wav(&path, 8000, 1, 24, &[0; 100]);
        let e = Prompt::load(&path).unwrap_err().to_string();
        assert!(e.contains("deep.wav") && e.contains("24-bit"), "{e}");
        let e = Prompt::load(&dir.path().join("missing.wav"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing.wav"), "{e}");
        let path = dir.path().join("text.wav");
        std::fs::write(&path, "not a wav").unwrap();
        assert!(
            Prompt::load(&path)
                .unwrap_err()
                .to_string()
                .contains("text.wav")
        );
    }

    #[test]
    fn a_playlist_plays_in_order_and_barge_in_stops_it() {
        let a = Arc::new(Prompt::from_linear("a", &[1000; 320]));
        let b = Arc::new(Prompt::from_linear("b", &[-1000; 160]));
        let mut p = Player::new(vec![a.clone(), b.clone()], false);
        let mut levels = Vec::new();
        while !p.finished() {
            let f = p.next_frame(Codec::Pcmu).unwrap();
            levels.push(ulaw_decode(f[0]).signum());
        }
        assert_eq!(levels, [1, 1, -1]);
        assert_eq!(p.next_frame(Codec::Pcmu), None);
        assert!(p.finished());
        let mut p = Player::new(vec![a.clone(), b.clone()], true);
        p.next_frame(Codec::Pcmu);
        assert!(p.on_digit());
        assert!(p.next_frame(Codec::Pcmu).is_none());
        let mut p = Player::new(vec![a, b], false);
        p.next_frame(Codec::Pcmu);
        assert!(!p.on_digit(), "without barge-in the prompt goes on");
        assert!(p.next_frame(Codec::Pcmu).is_some());
    }
}
