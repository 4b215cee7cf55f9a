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
