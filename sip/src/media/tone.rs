//! In-band DTMF detection (Goertzel), for gateways that send the tones in the audio instead
//! of RFC 4733 events. Works on 8 kHz 16-bit linear samples in blocks of 205 (25.6 ms, the
//! classic size whose bins fall close to the eight DTMF frequencies); a digit is reported once
//! when two consecutive blocks agree, and again only after a pause or another digit.

const RATE: f64 = 8000.0;
const BLOCK: usize = 205;
const ROWS: [f64; 4] = [697.0, 770.0, 852.0, 941.0];
const COLS: [f64; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
const KEYS: [[char; 4]; 4] = [
    ['1', '2', '3', 'A'],
    ['4', '5', '6', 'B'],
    ['7', '8', '9', 'C'],
    ['*', '0', '#', 'D'],
];

/// Goertzel coefficient for one frequency.
fn coeff(freq: f64) -> f64 {
    let k = (0.5 + BLOCK as f64 * freq / RATE).floor();
    2.0 * (2.0 * std::f64::consts::PI * k / BLOCK as f64).cos()
}

/// Detects DTMF digits in a stream of samples.
#[derive(Debug)]
pub struct ToneDetector {
    coeffs: [f64; 8],
    block: Vec<f64>,
    last_block: Option<char>,
    reported: Option<char>,
}

impl Default for ToneDetector {
    fn default() -> Self {
        Self::new()
    }
}

impl ToneDetector {
    /// A detector.
    pub fn new() -> Self {
        let mut coeffs = [0.0; 8];
        for (i, f) in ROWS.iter().chain(COLS.iter()).enumerate() {
            coeffs[i] = coeff(*f);
        }
        ToneDetector {
            coeffs,
            block: Vec::with_capacity(BLOCK),
            last_block: None,
            reported: None,
        }
    }

    /// Feeds samples (any frame size); returns the digits that started in them.
    pub fn push(&mut self, samples: &[i16]) -> Vec<char> {
        let mut out = Vec::new();
        for &s in samples {
            self.block.push(f64::from(s));
            if self.block.len() == BLOCK {
                let d = self.analyse();
                self.block.clear();
                // Two blocks in a row make a digit; a gap or another digit re-arms it.
                if d.is_some() && d == self.last_block && self.reported != d {
                    if let Some(c) = d {
                        out.push(c);
                    }
                    self.reported = d;
                }
                if d.is_none() && self.last_block.is_none() {
                    self.reported = None;
                }
                self.last_block = d;
            }
        }
        out
    }

    /// The digit in the current block, if the tones are clean enough.
    fn analyse(&self) -> Option<char> {
        let mut power = [0.0f64; 8];
        for (i, c) in self.coeffs.iter().enumerate() {
            let (mut s1, mut s2) = (0.0, 0.0);
            for &x in &self.block {
                let s0 = x + c * s1 - s2;
                s2 = s1;
                s1 = s0;
            }
            power[i] = s1 * s1 + s2 * s2 - c * s1 * s2;
        }
        let energy: f64 = self.block.iter().map(|x| x * x).sum::<f64>() * BLOCK as f64 / 2.0;
        if energy < 1e9 {
            return None; // silence (about -45 dBm0 over the block)
        }
        let best = |range: std::ops::Range<usize>| {
            range
                .map(|i| (i, power[i]))
                .fold((0, 0.0), |a, b| if b.1 > a.1 { b } else { a })
        };
        let (r, rp) = best(0..4);
        let (c, cp) = best(4..8);
        // Twist: the two tones within 8 dB (reverse) and 4 dB (normal) of each other.
        if cp > rp * 6.3 || rp > cp * 2.5 {
            return None;
        }
        // Each tone well above the other tones of its group (6 dB).
        let others_low = (0..4).filter(|i| *i != r).all(|i| power[i] * 4.0 < rp)
            && (4..8).filter(|i| *i != c).all(|i| power[i] * 4.0 < cp);
        // The two tones carry most of the block's energy (speech does not).
        if !others_low || (rp + cp) < energy * 0.6 {
            return None;
        }
        Some(KEYS[r][c - 4])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(f1: f64, f2: f64, ms: usize, amp: f64) -> Vec<i16> {
        (0..ms * 8)
            .map(|i| {
                let t = i as f64 / RATE;
                (amp * ((2.0 * std::f64::consts::PI * f1 * t).sin()
                    + (2.0 * std::f64::consts::PI * f2 * t).sin())) as i16
            })
            .collect()
    }

    fn silence(ms: usize) -> Vec<i16> {
        vec![0; ms * 8]
    }

    fn dial(digits: &str, on_ms: usize, off_ms: usize) -> Vec<i16> {
        let mut s = Vec::new();
        for d in digits.chars() {
            let (r, c) = KEYS
                .iter()
                .enumerate()
                .find_map(|(r, row)| row.iter().position(|k| *k == d).map(|c| (r, c)))
                .unwrap();
            s.extend(tone(ROWS[r], COLS[c], on_ms, 6000.0));
            s.extend(silence(off_ms));
        }
        s
    }

    #[test]
    fn every_key_is_detected_once() {
        let mut det = ToneDetector::new();
        let samples = dial("123A456B789C*0#D", 80, 60);
        let mut got = String::new();
        // In 20 ms frames, as the media path delivers them.
        for frame in samples.chunks(160) {
            got.extend(det.push(frame));
        }
        assert_eq!(got, "123A456B789C*0#D");
    }

    #[test]
    fn a_long_press_and_a_repeated_key() {
        let mut det = ToneDetector::new();
        let mut s = dial("5", 1000, 100);
        s.extend(dial("55", 80, 80));
        let got: String = det.push(&s).into_iter().collect();
        assert_eq!(got, "555");
    }

    #[test]
    fn single_tones_speech_like_sound_and_silence_are_not_digits() {
        let mut det = ToneDetector::new();
        let one_tone: Vec<i16> = tone(1000.0, 1000.0, 500, 6000.0);
        assert!(det.push(&one_tone).is_empty());
        // A row tone with a column tone 20 dB weaker: too much twist.
        let twisted: Vec<i16> = (0..4000)
            .map(|i| {
                let t = i as f64 / RATE;
                (6000.0 * (2.0 * std::f64::consts::PI * 770.0 * t).sin()
                    + 600.0 * (2.0 * std::f64::consts::PI * 1336.0 * t).sin())
                    as i16
            })
            .collect();
        assert!(det.push(&twisted).is_empty());
        // A chord of several tones.
        let chord: Vec<i16> = (0..4000)
            .map(|i| {
                let t = i as f64 / RATE;
                [300.0, 697.0, 1209.0, 2200.0]
                    .iter()
                    .map(|f| 3000.0 * (2.0 * std::f64::consts::PI * f * t).sin())
                    .sum::<f64>() as i16
            })
            .collect();
        assert!(det.push(&chord).is_empty());
        assert!(det.push(&silence(500)).is_empty());
    }
}
