//! RFC 4733 telephone-event payloads (DTMF digits carried in RTP).

/// One telephone-event payload (4 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    /// Event code: 0-9 digits, 10 `*`, 11 `#`, 12-15 A-D.
    pub event: u8,
    /// End of the event (sent three times).
    pub end: bool,
    /// Volume in -dBm0 (0-63).
    pub volume: u8,
    /// Duration so far, in timestamp units.
    pub duration: u16,
}

impl TelephoneEvent {
    /// Parses a payload; `None` when it is shorter than 4 bytes.
    pub fn parse(b: &[u8]) -> Option<TelephoneEvent> {
        let b: &[u8; 4] = b.get(..4)?.try_into().ok()?;
        Some(TelephoneEvent {
            event: b[0],
            end: b[1] & 0x80 != 0,
            volume: b[1] & 0x3F,
            duration: u16::from_be_bytes([b[2], b[3]]),
        })
    }

    /// The 4-byte payload.
    pub fn to_bytes(self) -> [u8; 4] {
        let d = self.duration.to_be_bytes();
        [
            self.event,
            (u8::from(self.end) << 7) | (self.volume & 0x3F),
            d[0],
            d[1],
        ]
    }

    /// The DTMF character of the event, if it is one (`0-9`, `*`, `#`, `A-D`).
    pub fn digit(self) -> Option<char> {
        match self.event {
            0..=9 => Some(char::from(b'0' + self.event)),
            10 => Some('*'),
            11 => Some('#'),
            12..=15 => Some(char::from(b'A' + self.event - 12)),
            _ => None,
        }
    }

    /// The event code of a DTMF character.
    pub fn code_of(digit: char) -> Option<u8> {
        match digit {
            '0'..='9' => Some(digit as u8 - b'0'),
            '*' => Some(10),
            '#' => Some(11),
            'A'..='D' => Some(digit as u8 - b'A' + 12),
            'a'..='d' => Some(digit as u8 - b'a' + 12),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_round_trip_and_digits() {
        let e = TelephoneEvent {
            event: 11,
            end: true,
            volume: 10,
            duration: 1600,
        };
        let b = e.to_bytes();
        assert_eq!(b, [11, 0x8A, 0x06, 0x40]);
        assert_eq!(TelephoneEvent::parse(&b), Some(e));
        assert_eq!(e.digit(), Some('#'));
        for c in "0123456789*#ABCD".chars() {
            let code = TelephoneEvent::code_of(c).unwrap();
            let ev = TelephoneEvent {
                event: code,
                end: false,
                volume: 0,
                duration: 0,
            };
            assert_eq!(ev.digit(), Some(c));
        }
        assert_eq!(TelephoneEvent::parse(&[1, 2, 3]), None);
        assert_eq!(
            TelephoneEvent {
                event: 16,
                end: false,
                volume: 0,
                duration: 0
            }
            .digit(),
            None
        );
    }
}

/// A digit pressed, once per key press.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Digit {
    /// The character.
    pub digit: char,
    /// How long it was held, in timestamp units (8 kHz: 800 = 100 ms), as far as known.
    pub duration: u16,
}

/// Turns telephone-event packets into one digit per key press (RFC 4733 section 2.5): an
/// event is identified by its RTP timestamp, which stays the same through its updates and its
/// three end packets; the digit is reported at the first packet, so a long press is one digit
/// and a lost start packet still yields it.
#[derive(Debug, Default)]
pub struct DtmfReceiver {
    /// (ssrc, timestamp) of the last event reported.
    last: Option<(u32, u32)>,
}

impl DtmfReceiver {
    /// A receiver.
    pub fn new() -> Self {
        Self::default()
    }

    /// One telephone-event packet; returns the digit when it starts a new key press.
    pub fn on_packet(&mut self, ssrc: u32, timestamp: u32, payload: &[u8]) -> Option<Digit> {
        let ev = TelephoneEvent::parse(payload)?;
        let digit = ev.digit()?;
        if self.last == Some((ssrc, timestamp)) {
            return None; // an update or an end retransmission of the same press
        }
        self.last = Some((ssrc, timestamp));
        Some(Digit {
            digit,
            duration: ev.duration,
        })
    }
}

/// The telephone-event payloads of one key press, in sending order, as RFC 4733 2.5 has a
/// sender emit them: the first at once, an update every 50 ms with the duration so far, then
/// the final duration three times with the end bit (so a lost end packet does not stretch
/// the key). All are sent with the same RTP timestamp, the press's start, the first with the
/// marker bit. `None` for a character that is no key.
pub fn press(key: char, duration_ms: u16) -> Option<Vec<[u8; 4]>> {
    let event = TelephoneEvent::code_of(key)?;
    let total = duration_ms.clamp(40, 5000) * 8;
    let mut out = Vec::new();
    let mut d = 0u16;
    while d < total {
        out.push(
            TelephoneEvent {
                event,
                end: false,
                volume: 10,
                duration: d.max(160),
            }
            .to_bytes(),
        );
        d = d.saturating_add(400);
    }
    let end = TelephoneEvent {
        event,
        end: true,
        volume: 10,
        duration: total,
    }
    .to_bytes();
    out.extend([end; 3]);
    Some(out)
}

/// The key a SIP INFO carries (the de-facto `application/dtmf-relay` body, `Signal=5` and
/// `Duration=160` lines, or `application/dtmf` with the key alone), if it names one. The
/// content type's subtype is given in lower case; anything else is not a key.
pub fn info_digit(subtype: &str, body: &[u8]) -> Option<char> {
    let text = std::str::from_utf8(body).ok()?;
    let value = match subtype {
        "dtmf-relay" => text.lines().find_map(|line| {
            let (k, v) = line.split_once('=')?;
            k.trim().eq_ignore_ascii_case("signal").then_some(v.trim())
        })?,
        "dtmf" => text.trim(),
        _ => return None,
    };
    let mut chars = value.chars();
    let c = chars.next()?.to_ascii_uppercase();
    if chars.next().is_some() {
        // Some gateways send the event code ("Signal=10" for *, "11" for #).
        return match value {
            "10" => Some('*'),
            "11" => Some('#'),
            _ => None,
        };
    }
    matches!(c, '0'..='9' | '*' | '#' | 'A'..='D').then_some(c)
}

#[cfg(test)]
mod receiver_tests {
    use super::*;

    fn payload(event: u8, end: bool, duration: u16) -> [u8; 4] {
        TelephoneEvent {
            event,
            end,
            volume: 10,
            duration,
        }
        .to_bytes()
    }

    #[test]
    fn one_digit_per_press_despite_updates_and_three_ends() {
        let mut r = DtmfReceiver::new();
        let mut got = Vec::new();
        // "1": start, two updates, three ends at timestamp 1000; then "1" again at 3000
        // (a second press of the same key), then "#" at 5000 whose start packet was lost.
        let packets = [
            (1000, payload(1, false, 160)),
            (1000, payload(1, false, 320)),
            (1000, payload(1, false, 480)),
            (1000, payload(1, true, 640)),
            (1000, payload(1, true, 640)),
            (1000, payload(1, true, 640)),
            (3000, payload(1, false, 160)),
            (3000, payload(1, true, 800)),
            (5000, payload(11, false, 480)),
            (5000, payload(11, true, 960)),
        ];
        for (ts, p) in packets {
            if let Some(d) = r.on_packet(42, ts, &p) {
                got.push(d.digit);
            }
        }
        assert_eq!(got, ['1', '1', '#']);
    }

    #[test]
    fn a_long_press_is_one_digit() {
        let mut r = DtmfReceiver::new();
        let n = (1..200u16)
            .filter_map(|i| r.on_packet(1, 8000, &payload(5, false, i * 160)))
            .count();
        assert_eq!(n, 1);
    }

    #[test]
    fn non_digits_and_garbage_are_ignored() {
        let mut r = DtmfReceiver::new();
        assert_eq!(r.on_packet(1, 1, &payload(16, false, 160)), None);
        assert_eq!(r.on_packet(1, 2, &[1, 2]), None);
    }
}

#[cfg(test)]
mod info_tests {
    use super::info_digit;

    #[test]
    fn dtmf_relay_and_dtmf_bodies_give_their_key() {
        assert_eq!(
            info_digit("dtmf-relay", b"Signal=5\r\nDuration=160\r\n"),
            Some('5')
        );
        assert_eq!(
            info_digit("dtmf-relay", b"signal= #\nDuration=100"),
            Some('#')
        );
        assert_eq!(info_digit("dtmf-relay", b"Signal=11\r\n"), Some('#'));
        assert_eq!(info_digit("dtmf-relay", b"Signal=a\r\n"), Some('A'));
        assert_eq!(info_digit("dtmf", b"7\r\n"), Some('7'));
    }

    #[test]
    fn bodies_that_name_no_key_give_none() {
        assert_eq!(info_digit("dtmf-relay", b"Duration=160\r\n"), None);
        assert_eq!(info_digit("dtmf-relay", b"Signal=55\r\n"), None);
        assert_eq!(info_digit("dtmf-relay", b"Signal=x\r\n"), None);
        assert_eq!(info_digit("dtmf-relay", &[0xff, 0xfe]), None);
        assert_eq!(info_digit("sdp", b"Signal=1"), None);
    }

    #[test]
    fn a_press_sent_is_one_digit_received() {
        let packets = super::press('7', 120).unwrap();
        // 120 ms: updates at 0 and 50 and 100 ms, then three ends.
        assert_eq!(packets.len(), 6);
        let ends: Vec<_> = packets
            .iter()
            .map(|p| super::TelephoneEvent::parse(p).unwrap())
            .collect();
        assert!(ends[..3].iter().all(|e| !e.end && e.event == 7));
        assert!(ends[3..].iter().all(|e| e.end && e.duration == 960));
        let mut r = super::DtmfReceiver::new();
        let got: Vec<char> = packets
            .iter()
            .filter_map(|p| r.on_packet(1, 5000, p).map(|d| d.digit))
            .collect();
        assert_eq!(got, ['7']);
        assert!(super::press('x', 100).is_none());
    }
}
