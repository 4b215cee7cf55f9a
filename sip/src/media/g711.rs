//! G.711 (ITU-T G.711): mu-law (PCMU, payload type 0) and A-law (PCMA, 8), 8 kHz, one byte per
//! sample. Encoders follow the ITU segment tables (the classic Sun reference implementation);
//! decoders and the PCMU <-> PCMA transcoders are 256-entry tables built at compile time, so
//! the media path does one lookup per sample.

const BIAS: i32 = 0x84;
const CLIP: i32 = 32635;

/// Encodes one 16-bit linear sample as mu-law.
pub fn ulaw_encode(sample: i16) -> u8 {
    let s = i32::from(sample);
    let sign = if s < 0 { 0x80 } else { 0x00 };
    let mag = (if s < 0 { -s } else { s }).min(CLIP) + BIAS;
    let mut exponent = 7;
    let mut mask = 0x4000;
    while exponent > 0 && mag & mask == 0 {
        exponent -= 1;
        mask >>= 1;
    }
    let mantissa = (mag >> (exponent + 3)) & 0x0F;
    !(sign | (exponent << 4) as u8 | mantissa as u8)
}

/// Decodes one mu-law byte to 16-bit linear.
pub const fn ulaw_decode_calc(code: u8) -> i16 {
    let u = !code;
    let exponent = ((u >> 4) & 0x07) as i32;
    let mantissa = (u & 0x0F) as i32;
    let mag = (((mantissa << 3) + BIAS) << exponent) - BIAS;
    if u & 0x80 != 0 {
        -mag as i16
    } else {
        mag as i16
    }
}

/// Encodes one 16-bit linear sample as A-law.
pub fn alaw_encode(sample: i16) -> u8 {
    let s = i32::from(sample);
    let (sign, mag) = if s >= 0 { (0x80, s) } else { (0x00, -s - 1) };
    let mag = mag.min(0x7FFF);
    let code = if mag < 0x100 {
        (mag >> 4) as u8
    } else {
        let mut seg = 1;
        while seg < 7 && mag >= (0x200 << (seg - 1)) {
            seg += 1;
        }
        ((seg << 4) | ((mag >> (seg + 3)) & 0x0F)) as u8
    };
    (sign | code) ^ 0x55
}

/// Decodes one A-law byte to 16-bit linear.
pub const fn alaw_decode_calc(code: u8) -> i16 {
    let a = code ^ 0x55;
    let seg = ((a >> 4) & 0x07) as i32;
    let quant = (a & 0x0F) as i32;
    let mag = if seg == 0 {
        (quant << 4) + 8
    } else {
        ((quant << 4) + 0x108) << (seg - 1)
    };
    if a & 0x80 != 0 {
        mag as i16
    } else {
        -mag as i16
    }
}

const fn decode_table(alaw: bool) -> [i16; 256] {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = if alaw {
            alaw_decode_calc(i as u8)
        } else {
            ulaw_decode_calc(i as u8)
        };
        i += 1;
    }
    t
}

static ULAW_TO_LINEAR: [i16; 256] = decode_table(false);
static ALAW_TO_LINEAR: [i16; 256] = decode_table(true);

/// mu-law byte to linear, by table.
#[inline]
pub fn ulaw_decode(code: u8) -> i16 {
    ULAW_TO_LINEAR[code as usize]
}

/// A-law byte to linear, by table.
#[inline]
pub fn alaw_decode(code: u8) -> i16 {
    ALAW_TO_LINEAR[code as usize]
}

/// Transcodes PCMU to PCMA in place (the bridge between legs that chose different laws).
pub fn ulaw_to_alaw(frame: &mut [u8]) {
    for b in frame {
        *b = alaw_encode(ulaw_decode(*b));
    }
}

/// Transcodes PCMA to PCMU in place.
pub fn alaw_to_ulaw(frame: &mut [u8]) {
    for b in frame {
        *b = ulaw_encode(alaw_decode(*b));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_values() {
        // ITU G.711 end points and zeros.
        assert_eq!(ulaw_decode(0x00), -32124);
        assert_eq!(ulaw_decode(0x80), 32124);
        assert_eq!(ulaw_decode(0xFF), 0);
        assert_eq!(ulaw_decode(0x7F), 0);
        assert_eq!(ulaw_encode(0), 0xFF);
        assert_eq!(ulaw_encode(i16::MAX), 0x80);
        assert_eq!(ulaw_encode(i16::MIN), 0x00);
        assert_eq!(alaw_decode(0xD5), 8);
        assert_eq!(alaw_decode(0x55), -8);
        assert_eq!(alaw_decode(0xAA), 32256);
        assert_eq!(alaw_decode(0x2A), -32256);
        assert_eq!(alaw_encode(0), 0xD5);
        assert_eq!(alaw_encode(i16::MAX), 0xAA);
        assert_eq!(alaw_encode(i16::MIN), 0x2A);
    }

    #[test]
    fn every_code_survives_decode_then_encode() {
        for c in 0..=255u8 {
            let u = ulaw_encode(ulaw_decode(c));
            // 0x7F is mu-law's negative zero; it comes back as positive zero.
            assert_eq!(u, if c == 0x7F { 0xFF } else { c }, "mu-law {c:#04x}");
            assert_eq!(alaw_encode(alaw_decode(c)), c, "A-law {c:#04x}");
        }
    }

    #[test]
    fn encoding_is_monotonic_and_close() {
        let mut last_u = i16::MIN;
        let mut last_a = i16::MIN;
        for s in (i16::MIN..=i16::MAX).step_by(7) {
            let u = ulaw_decode(ulaw_encode(s));
            let a = alaw_decode(alaw_encode(s));
            assert!(u >= last_u && a >= last_a, "monotonic at {s}");
            // Quantisation error below the largest step (1024 at the top segment).
            assert!(
                (i32::from(u) - i32::from(s)).abs() <= 1024,
                "mu-law error at {s}"
            );
            assert!(
                (i32::from(a) - i32::from(s)).abs() <= 1024,
                "A-law error at {s}"
            );
            last_u = u;
            last_a = a;
        }
    }

    #[test]
    fn transcoding_keeps_the_signal() {
        let mut frame: Vec<u8> = (0..160)
            .map(|i| ulaw_encode(((i as f64 / 8.0).sin() * 8000.0) as i16))
            .collect();
        let original: Vec<i16> = frame.iter().map(|b| ulaw_decode(*b)).collect();
        ulaw_to_alaw(&mut frame);
        let via_alaw: Vec<i16> = frame.iter().map(|b| alaw_decode(*b)).collect();
        for (a, b) in original.iter().zip(&via_alaw) {
            assert!((i32::from(*a) - i32::from(*b)).abs() <= 256, "{a} vs {b}");
        }
        alaw_to_ulaw(&mut frame);
        let back: Vec<i16> = frame.iter().map(|b| ulaw_decode(*b)).collect();
        for (a, b) in original.iter().zip(&back) {
            assert!((i32::from(*a) - i32::from(*b)).abs() <= 256, "{a} vs {b}");
        }
    }
}
