//! Header names: the ones the engine reads get a variant (compact forms map to them, case is
//! ignored); any other name is kept as written.

use std::fmt;

macro_rules! header_names {
    ($( $variant:ident => $canon:literal $(, $compact:literal)? ; )*) => {
        /// A header field name.
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum HeaderName {
            $(
                #[doc = concat!("`", $canon, "`")]
                $variant,
            )*
            /// Any other header, its name as written.
            Other(Box<str>),
        }

        impl HeaderName {
            /// Recognises a name in its long or compact form, in any case.
            pub fn parse(name: &str) -> HeaderName {
                if name.len() == 1 {
                    let c = name.as_bytes()[0].to_ascii_lowercase();
                    $( $( if c == $compact { return HeaderName::$variant; } )? )*
                    return HeaderName::Other(name.into());
                }
                // One jump on length, first and last letter, then one comparison.
                #[allow(non_upper_case_globals)]
                mod keys {
                    $( pub const $variant: u32 = super::key($canon.as_bytes()); )*
                }
                match key(name.as_bytes()) {
                    $( keys::$variant if same_name(name.as_bytes(), $canon.as_bytes()) => HeaderName::$variant, )*
                    _ => HeaderName::Other(name.into()),
                }
            }

            /// The canonical spelling (the long form).
            pub fn as_str(&self) -> &str {
                match self {
                    $( HeaderName::$variant => $canon, )*
                    HeaderName::Other(n) => n,
                }
            }
        }
    };
}

header_names! {
    Accept => "Accept";
    AcceptContact => "Accept-Contact", b'a';
    Allow => "Allow";
    AllowEvents => "Allow-Events", b'u';
    Authorization => "Authorization";
    CallId => "Call-ID", b'i';
    Contact => "Contact", b'm';
    ContentDisposition => "Content-Disposition";
    ContentEncoding => "Content-Encoding", b'e';
    ContentLength => "Content-Length", b'l';
    ContentType => "Content-Type", b'c';
    CSeq => "CSeq";
    Date => "Date";
    Event => "Event", b'o';
    Expires => "Expires";
    From => "From", b'f';
    Identity => "Identity", b'y';
    MaxForwards => "Max-Forwards";
    MinExpires => "Min-Expires";
    MinSe => "Min-SE";
    ProxyAuthenticate => "Proxy-Authenticate";
    ProxyAuthorization => "Proxy-Authorization";
    ProxyRequire => "Proxy-Require";
    RecordRoute => "Record-Route";
    ReferTo => "Refer-To", b'r';
    ReferredBy => "Referred-By", b'b';
    RejectContact => "Reject-Contact", b'j';
    Require => "Require";
    RequestDisposition => "Request-Disposition", b'd';
    RetryAfter => "Retry-After";
    Route => "Route";
    SessionExpires => "Session-Expires", b'x';
    Subject => "Subject", b's';
    Supported => "Supported", b'k';
    To => "To", b't';
    Unsupported => "Unsupported";
    UserAgent => "User-Agent";
    Via => "Via", b'v';
    WwwAuthenticate => "WWW-Authenticate";
}

/// A name's length, first and last octet (letters folded to lower case), for the match in
/// [`HeaderName::parse`].
const fn key(b: &[u8]) -> u32 {
    match b {
        [] => 0,
        [first, .., last] => {
            (b.len() as u32) << 16 | ((*first | 0x20) as u32) << 8 | (*last | 0x20) as u32
        }
        [only] => 1 << 16 | (*only | 0x20) as u32,
    }
}

/// Whether `name` spells `canon` (of the same length), letters in either case: a word at a
/// time, the last word overlapping the one before. Inlined with a literal `canon`, its words
/// and the mask of its letters are constants.
#[inline(always)]
fn same_name(name: &[u8], canon: &[u8]) -> bool {
    if name.len() != canon.len() {
        return false;
    }
    let n = name.len();
    if n < 4 {
        return name.eq_ignore_ascii_case(canon);
    }
    let word = |b: &[u8], i: usize, w: usize| -> u64 {
        if w == 8 {
            b.get(i..i + 8)
                .and_then(|s| <[u8; 8]>::try_from(s).ok())
                .map_or(0, u64::from_le_bytes)
        } else {
            b.get(i..i + 4)
                .and_then(|s| <[u8; 4]>::try_from(s).ok())
                .map_or(0, |a| u32::from_le_bytes(a) as u64)
        }
    };
    // 0x20 where the canonical name has a letter: there case does not matter.
    let letters = |c: u64, w: usize| -> u64 {
        let mut m = 0u64;
        let mut k = 0;
        while k < w {
            if ((c >> (8 * k)) as u8).is_ascii_alphabetic() {
                m |= 0x20 << (8 * k);
            }
            k += 1;
        }
        m
    };
    let w = if n >= 8 { 8 } else { 4 };
    let mut i = 0;
    loop {
        let at = i.min(n - w);
        let c = word(canon, at, w);
        let m = letters(c, w);
        if word(name, at, w) | m != c | m {
            return false;
        }
        if at == n - w {
            return true;
        }
        i += w;
    }
}

impl HeaderName {
    /// Headers that may appear once only (RFC 3261 7.3.1: only comma-list headers may repeat).
    pub fn is_single(&self) -> bool {
        self.single_slot().is_some()
    }

    /// For a header that may appear once only, its own bit (to count them in one word).
    pub(crate) fn single_slot(&self) -> Option<u32> {
        let n = match self {
            HeaderName::CallId => 0,
            HeaderName::ContentLength => 1,
            HeaderName::ContentType => 2,
            HeaderName::CSeq => 3,
            HeaderName::Date => 4,
            HeaderName::Expires => 5,
            HeaderName::From => 6,
            HeaderName::MaxForwards => 7,
            HeaderName::MinExpires => 8,
            HeaderName::MinSe => 9,
            HeaderName::SessionExpires => 10,
            HeaderName::To => 11,
            HeaderName::ReferTo => 12,
            HeaderName::ReferredBy => 13,
            HeaderName::RetryAfter => 14,
            _ => return None,
        };
        Some(1 << n)
    }
}

impl fmt::Display for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_and_case_insensitive() {
        assert_eq!(HeaderName::parse("v"), HeaderName::Via);
        assert_eq!(HeaderName::parse("V"), HeaderName::Via);
        assert_eq!(HeaderName::parse("MaX-fOrWaRdS"), HeaderName::MaxForwards);
        assert_eq!(HeaderName::parse("L"), HeaderName::ContentLength);
        assert_eq!(HeaderName::parse("i"), HeaderName::CallId);
        assert_eq!(HeaderName::parse("x"), HeaderName::SessionExpires);
        assert_eq!(
            HeaderName::parse("NewFangledHeader"),
            HeaderName::Other("NewFangledHeader".into())
        );
        assert_eq!(HeaderName::parse("q"), HeaderName::Other("q".into()));
        assert_eq!(HeaderName::parse("Via2"), HeaderName::Other("Via2".into()));
        assert_eq!(
            HeaderName::parse("Call-IX"),
            HeaderName::Other("Call-IX".into())
        );
        assert_eq!(HeaderName::parse("CONTACT"), HeaderName::Contact);
        assert_eq!(
            HeaderName::parse("www-authenticate"),
            HeaderName::WwwAuthenticate
        );
        assert_eq!(HeaderName::CallId.as_str(), "Call-ID");
    }
}
