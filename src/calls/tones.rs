//! The tones the node plays itself: music on hold when none is configured, and China's
//! ringback tone while a transfer target rings.

use hotline_sip::media::player::Prompt;

/// Music on hold when none is configured: a soft, slow chime (C-E-G-E, 0.4 s a note, at
/// about -26 dBFS, with a gentle decay), 1.6 s looped, so a held party knows the call is
/// still there.
pub fn default_music_on_hold() -> Prompt {
    let notes = [261.63f64, 329.63, 392.0, 329.63];
    let per_note = 3200usize;
    let samples: Vec<i16> = notes
        .iter()
        .flat_map(|f| {
            (0..per_note).map(move |i| {
                let t = i as f64 / 8000.0;
                let envelope = (-3.0 * t).exp();
                (1600.0 * envelope * (2.0 * std::f64::consts::PI * f * t).sin()) as i16
            })
        })
        .collect();
    Prompt::from_linear("music on hold", &samples)
}

/// The ringback tone heard on China's networks: 450 Hz, 1 s on and 4 s off, here at about
/// -18 dBFS.
pub fn ringback_tone() -> Prompt {
    let samples: Vec<i16> = (0..5 * 8000)
        .map(|i| {
            if i < 8000 {
                (4000.0 * (2.0 * std::f64::consts::PI * 450.0 * f64::from(i) / 8000.0).sin()) as i16
            } else {
                0
            }
        })
        .collect();
    Prompt::from_linear("ringback", &samples)
}
